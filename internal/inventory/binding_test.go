package inventory

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// fakeIAM holds IAM users' tags; a user not in tags does not exist.
type fakeIAM struct {
	tags   map[string]map[string]string
	tagged int
}

func (f *fakeIAM) ListUserTags(_ context.Context, in *iam.ListUserTagsInput, _ ...func(*iam.Options)) (*iam.ListUserTagsOutput, error) {
	tags, ok := f.tags[aws.ToString(in.UserName)]
	if !ok {
		return nil, &iamtypes.NoSuchEntityException{Message: aws.String("no such user")}
	}
	out := &iam.ListUserTagsOutput{}
	for k, v := range tags {
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

func (f *fakeIAM) TagUser(_ context.Context, in *iam.TagUserInput, _ ...func(*iam.Options)) (*iam.TagUserOutput, error) {
	f.tagged++
	for _, t := range in.Tags {
		f.tags[aws.ToString(in.UserName)][aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return &iam.TagUserOutput{}, nil
}

const iamInventory = `api_keys:
  - name: payments-bot-key
    provider: AWS IAM
    environment: production
    vault_path: prod/payments-iam
    rotation_frequency: 30d
    iam_user: payments-bot
`

func iamEntries(t *testing.T) []Entry {
	t.Helper()
	inv, err := Parse("inventory.yaml", []byte(iamInventory))
	if err != nil {
		t.Fatalf("an inventory naming its IAM user: %v", err)
	}
	return inv.Entries()
}

func secretTags(t *testing.T, f *rotateSM, id string) map[string]string {
	t.Helper()
	d, err := f.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range d.Tags {
		out[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return out
}

// apply binds the IAM user the inventory names (iam_user) to the secret,
// once; validate lists the binding as missing until then.
func TestApplyBindsTheNamedIAMUser(t *testing.T) {
	ctx := context.Background()
	entries := iamEntries(t)
	f := newRotateSM()
	arn := f.Create("prod/payments-iam", `{"provider":"iam","key":"s","key_id":"AKIA1","user_name":"payments-bot"}`, nil)
	users := &fakeIAM{tags: map[string]map[string]string{"payments-bot": {"team": "payments"}}}
	described, err := Check(ctx, f, "inventory.yaml", entries)
	if err != nil {
		t.Fatal(err)
	}
	err = validateBindings(ctx, f, users, entries, described)
	if err == nil || !strings.Contains(err.Error(), "aws iam tag-user --user-name payments-bot --tags Key=keyrotor:secret,Value="+arn) {
		t.Fatalf("validate before apply: %v, want the missing binding and its command", err)
	}
	changes, err := planIAM(ctx, f, users, entries, described)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyIAM(ctx, f, users, changes); err != nil {
		t.Fatal(err)
	}
	if got := users.tags["payments-bot"]["keyrotor:secret"]; got != arn {
		t.Fatalf("user payments-bot tagged keyrotor:secret=%q, want %s", got, arn)
	}
	if err := validateBindings(ctx, f, users, entries, described); err != nil {
		t.Fatalf("validate after apply: %v", err)
	}
	again, err := planIAM(ctx, f, users, entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if !c.Empty() {
			t.Fatalf("a second plan wants %+v", c)
		}
	}
}

// apply refuses, changing nothing at all, when the secret's value names
// another user than iam_user, or the user is bound to another secret.
func TestApplyRefusesAnotherUsersBinding(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		value   string
		userTag map[string]string
		want    string
	}{
		"ValueNamesAnotherUser": {`{"provider":"iam","user_name":"Administrator"}`, map[string]string{}, "names IAM user Administrator"},
		"UserBoundElsewhere":    {`{"provider":"iam","user_name":"payments-bot"}`, map[string]string{"keyrotor:secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"}, "bound to another secret"},
	} {
		t.Run(name, func(t *testing.T) {
			entries := iamEntries(t)
			f := newRotateSM()
			f.Create("prod/payments-iam", tc.value, nil)
			users := &fakeIAM{tags: map[string]map[string]string{"payments-bot": tc.userTag, "Administrator": {}}}
			described, err := Check(ctx, f, "inventory.yaml", entries)
			if err != nil {
				t.Fatal(err)
			}
			changes, err := planIAM(ctx, f, users, entries, described)
			if err != nil {
				t.Fatal(err)
			}
			err = applyIAM(ctx, f, users, changes)
			if !isRefused(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: %v, want refused: %s", err, tc.want)
			}
			if users.tagged != 0 || f.rotations != 0 || len(secretTags(t, f, "prod/payments-iam")) != 0 {
				t.Fatalf("a refused apply changed something: %d TagUser, %d RotateSecret, tags %v", users.tagged, f.rotations, secretTags(t, f, "prod/payments-iam"))
			}
		})
	}
}

// apply never writes an admin secret's keyrotor:admin-for: the plan notes
// the command instead.
func TestApplyNeverWritesAdminFor(t *testing.T) {
	ctx := context.Background()
	f := newRotateSM()
	f.Create("admin/gw", `{"token":"t"}`, nil)
	f.Create(applySecret, `{"provider":"gateway","key":"k","key_id":"id","admin_secret_id":"admin/gw"}`, nil)
	entries := []Entry{applyEntry(t)}
	described, err := Check(ctx, f, "inventory.yaml", entries)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := planIAM(ctx, f, nil, entries, described)
	if err != nil {
		t.Fatal(err)
	}
	want := "aws secretsmanager tag-resource --secret-id admin/gw --tags Key=keyrotor:admin-for,Value=" + applySecret
	if notes := strings.Join(changes[0].Notes, "\n"); !strings.Contains(notes, want) {
		t.Fatalf("notes %q, want %s", notes, want)
	}
	if err := applyIAM(ctx, f, nil, changes); err != nil {
		t.Fatal(err)
	}
	if tags := secretTags(t, f, "admin/gw"); len(tags) != 0 {
		t.Fatalf("apply tagged the admin secret: %v", tags)
	}
}
