package smfake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/smfake"
)

// list returns the version ids of every page, following NextToken.
func list(t *testing.T, f *smfake.SM, in *secretsmanager.ListSecretVersionIdsInput) (ids []string, pages int) {
	t.Helper()
	for {
		out, err := f.ListSecretVersionIds(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range out.Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
		if out.NextToken == nil {
			return ids, pages
		}
		in.NextToken = out.NextToken
	}
}

func TestListSecretVersionIds(t *testing.T) {
	f := smfake.New()
	f.Create("s", `{"v":1}`, nil)
	ctx := context.Background()
	for _, tok := range []string{"t2", "t3", "t4"} {
		f.StartRotation("s", tok)
		if _, err := f.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), ClientRequestToken: aws.String(tok),
			SecretString: aws.String(tok), VersionStages: []string{"AWSCURRENT"}}); err != nil {
			t.Fatal(err)
		}
	}
	// v1 and t2 lost their labels, t3 is AWSPREVIOUS, t4 AWSCURRENT.
	if ids, _ := list(t, f, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s")}); fmt.Sprint(ids) != "[t3 t4]" {
		t.Fatalf("without IncludeDeprecated: %v, want the labelled versions [t3 t4]", ids)
	}
	ids, pages := list(t, f, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(3)})
	if fmt.Sprint(ids) != "[v1 t2 t3 t4]" || pages != 2 {
		t.Fatalf("with IncludeDeprecated by pages of 3: %v in %d pages, want [v1 t2 t3 t4] in 2", ids, pages)
	}
	f.PageSize = 1
	if ids, pages := list(t, f, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(true)}); len(ids) != 4 || pages != 4 {
		t.Fatalf("PageSize 1: %v in %d pages", ids, pages)
	}
	var bad *smtypes.InvalidNextTokenException
	if _, err := f.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), NextToken: aws.String("x")}); !errors.As(err, &bad) {
		t.Fatalf("bad NextToken: %v", err)
	}
	var nf *smtypes.ResourceNotFoundException
	if _, err := f.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("nope")}); !errors.As(err, &nf) {
		t.Fatalf("unknown secret: %v", err)
	}
	if f.Calls("ListSecretVersionIds") != 9 {
		t.Fatalf("%d calls counted, want 9", f.Calls("ListSecretVersionIds"))
	}
}
