package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/rotation"
)

// Issue 12, item 8: keys of a vendor without a key API (Stripe) and the
// one rule status and the auditor share for them.

// datedSM describes secrets as Secrets Manager does, with their dates and
// without a rotation function unless one was set (fakeSM names one for
// every secret).
type datedSM struct {
	*fakeSM
	created, rotated *time.Time
}

func (d *datedSM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := d.fakeSM.SM.DescribeSecret(ctx, in, opts...)
	if err == nil {
		out.CreatedDate, out.LastRotatedDate = d.created, d.rotated
	}
	return out, err
}

func (d *datedSM) describe(t *testing.T, id string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	out, err := d.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// In a leak of a Stripe key (no rotation function, as inventory apply
// leaves it) the emergency says first what to do at Stripe, not how to set
// a rotation function; a plain rotate says how to roll it by hand.
func TestStripeRotateSaysWhatToDoAtStripeFirst(t *testing.T) {
	e := newEnv(t)
	e.sm.Create("pay/stripe", `{"provider":"stripe","key":"sk_test_x","key_id":"k1"}`, map[string]string{rotation.TagManaged: "true", audit.TagManual: "true"})
	e.op.SM = &datedSM{fakeSM: e.sm}
	for _, emergency := range []bool{true, false} {
		_, err := e.op.Rotate(context.Background(), "pay/stripe", RotateOptions{Emergency: emergency})
		var r *RefusedError
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "stripe keys cannot be rotated by API") || !strings.Contains(r.Reason, "keyrotor import pay/stripe") ||
			strings.Contains(r.Reason, "inventory apply") {
			t.Errorf("emergency %v: %v, want what to do at stripe", emergency, err)
		}
	}
	if n := e.sm.Calls("RotateSecret") + e.sm.Calls("TagResource"); n != 0 {
		t.Errorf("%d changes made", n)
	}
}

// A manual key's age is the latest of LastRotatedDate, CreatedDate and the
// keyrotor:key-created-at tag, in status and in the auditor alike.
func TestManualKeyAgeIsTheLatestDate(t *testing.T) {
	e := newEnv(t)
	now := e.now
	at := func(days int) *time.Time { t := now.Add(-time.Duration(days) * 24 * time.Hour); return &t }
	for _, tc := range []struct {
		name             string
		created, rotated *time.Time
		tag              *time.Time
		want             *time.Time
	}{
		{"created after the last rotation", at(2), at(10), nil, at(2)},
		{"rotated last", at(40), at(10), nil, at(10)},
		{"imported last", at(40), at(10), at(3), at(3)},
		{"created after the import", at(1), at(10), at(3), at(1)},
	} {
		e := newEnv(t)
		tags := map[string]string{rotation.TagManaged: "true", audit.TagManual: "true", audit.TagRotationFrequency: "30d"}
		if tc.tag != nil {
			tags[audit.TagKeyCreatedAt] = tc.tag.Format(time.RFC3339)
		}
		e.sm.Create("pay/stripe", `{"provider":"stripe","key":"sk_test_x","key_id":"k1"}`, tags)
		d := &datedSM{fakeSM: e.sm, created: tc.created, rotated: tc.rotated}
		e.op.SM = d
		sts, err := e.op.Status(context.Background(), []string{"pay/stripe"}, StatusOptions{NoVendor: true})
		if err != nil {
			t.Fatal(err)
		}
		a := audit.Inspect(listEntry(d.describe(t, "pay/stripe")), e.now)
		if st := sts[0]; st.KeyCreatedAt == nil || !st.KeyCreatedAt.Equal(*tc.want) || !a.Since.Equal(*tc.want) {
			t.Errorf("%s: status %v, auditor %v, want %v", tc.name, st.KeyCreatedAt, a.Since, *tc.want)
		}
	}
}

// Status and the auditor agree on whether a manual secret's rotation is
// disabled: a Stripe key tagged keyrotor:manual is a reminder for both; one
// without the tag is "rotation disabled" for both, and status says how to
// tag it.
func TestManualKeyRotationDisabledAgrees(t *testing.T) {
	for _, tagged := range []bool{true, false} {
		e := newEnv(t)
		tags := map[string]string{rotation.TagManaged: "true", audit.TagRotationFrequency: "30d"}
		if tagged {
			tags[audit.TagManual] = "true"
		}
		e.sm.Create("pay/stripe", `{"provider":"stripe","key":"sk_test_x","key_id":"k1"}`, tags)
		d := &datedSM{fakeSM: e.sm}
		e.op.SM = d
		sts, err := e.op.Status(context.Background(), []string{"pay/stripe"}, StatusOptions{NoVendor: true})
		if err != nil {
			t.Fatal(err)
		}
		st, a := sts[0], audit.Inspect(listEntry(d.describe(t, "pay/stripe")), e.now)
		if disabled := st.Rotation == RotationDisabled; disabled != auditDisabled(a) || disabled == tagged {
			t.Errorf("tagged %v: status rotation %s, auditor rotation disabled %v", tagged, st.Rotation, auditDisabled(a))
		}
		if !tagged && (len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "Key=keyrotor:manual,Value=true")) {
			t.Errorf("untagged: problems %q, want how to tag it", st.Problems)
		}
	}
}
