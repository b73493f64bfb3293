package apigateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	sdk "github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/apigateway"
)

// fakeAPI is an in-memory API Gateway whose calls can be made to fail.
type fakeAPI struct {
	apigateway.API // unused methods panic

	created, deleted int
	attached         []string // plan/key
	detached         []string
	plans            []string // plans of every key
	failAttach       error
	failDelete       error
	disabled         bool // GetApiKey answers a disabled key
}

func (f *fakeAPI) CreateApiKey(_ context.Context, in *sdk.CreateApiKeyInput, _ ...func(*sdk.Options)) (*sdk.CreateApiKeyOutput, error) {
	f.created++
	return &sdk.CreateApiKeyOutput{Id: aws.String("newkey"), Value: aws.String("value-of-the-new-key-1234"), Name: in.Name, Enabled: in.Enabled}, nil
}

func (f *fakeAPI) GetUsagePlans(_ context.Context, in *sdk.GetUsagePlansInput, _ ...func(*sdk.Options)) (*sdk.GetUsagePlansOutput, error) {
	out := &sdk.GetUsagePlansOutput{}
	for _, p := range f.plans {
		out.Items = append(out.Items, types.UsagePlan{Id: aws.String(p)})
	}
	return out, nil
}

func (f *fakeAPI) CreateUsagePlanKey(_ context.Context, in *sdk.CreateUsagePlanKeyInput, _ ...func(*sdk.Options)) (*sdk.CreateUsagePlanKeyOutput, error) {
	if f.failAttach != nil && aws.ToString(in.UsagePlanId) == "p2" {
		return nil, f.failAttach
	}
	f.attached = append(f.attached, aws.ToString(in.UsagePlanId)+"/"+aws.ToString(in.KeyId))
	return &sdk.CreateUsagePlanKeyOutput{}, nil
}

func (f *fakeAPI) DeleteUsagePlanKey(_ context.Context, in *sdk.DeleteUsagePlanKeyInput, _ ...func(*sdk.Options)) (*sdk.DeleteUsagePlanKeyOutput, error) {
	f.detached = append(f.detached, aws.ToString(in.UsagePlanId)+"/"+aws.ToString(in.KeyId))
	return &sdk.DeleteUsagePlanKeyOutput{}, nil
}

func (f *fakeAPI) DeleteApiKey(_ context.Context, _ *sdk.DeleteApiKeyInput, _ ...func(*sdk.Options)) (*sdk.DeleteApiKeyOutput, error) {
	if f.failDelete != nil {
		return nil, f.failDelete
	}
	f.deleted++
	return &sdk.DeleteApiKeyOutput{}, nil
}

// apiError is an SDK error as the client returns it: a modeled or generic
// API error inside a ResponseError with a status and a request id.
func apiError(code string, status int) error {
	return &smithy.OperationError{ServiceID: "API Gateway", OperationName: "Op", Err: &awshttp.ResponseError{
		RequestID: "req-123",
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
		},
	}}
}

func TestCreateDeletesTheKeyWhenAttachingFails(t *testing.T) {
	f := &fakeAPI{plans: []string{"p1", "p2"}, failAttach: apiError("TooManyRequestsException", 429)}
	_, err := apigateway.NewWithAPI(f).Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner(t, "oldkey")})
	if !providers.IsKind(err, providers.Transient) {
		t.Fatalf("Create = %v, want the Transient attach error", err)
	}
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.RequestID != "req-123" || pe.Status != 429 {
		t.Fatalf("error %v does not keep the status and request id", err)
	}
	if f.deleted != 1 {
		t.Fatalf("the new key was deleted %d times, want 1", f.deleted)
	}
	if strings.Join(f.detached, ",") != "p1/newkey,p2/newkey" {
		t.Fatalf("detached %v, want the new key out of its plans", f.detached)
	}
}

func TestCreateTreatsAKeyAlreadyInAPlanAsAttached(t *testing.T) {
	f := &fakeAPI{plans: []string{"p1", "p2"}, failAttach: apiError("ConflictException", 409)}
	cred, err := apigateway.NewWithAPI(f).Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner(t, "oldkey")})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	if cred.KeyID != "newkey" || f.deleted != 0 {
		t.Fatalf("key %s, %d deleted", cred.KeyID, f.deleted)
	}
}

func TestRevokeOfAGoneKeyIsSuccess(t *testing.T) {
	f := &fakeAPI{failDelete: apiError("NotFoundException", 404)}
	if err := apigateway.NewWithAPI(f).Revoke(context.Background(), owner(t, "k"), "gone"); err != nil {
		t.Fatalf("Revoke = %v, want nil", err)
	}
	f.failDelete = apiError("UnauthorizedException", 401)
	err := apigateway.NewWithAPI(f).Revoke(context.Background(), owner(t, "k"), "other")
	if !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Revoke = %v, want Permission", err)
	}
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		code   string
		status int
		want   providers.Kind
	}{
		{"NotFoundException", 404, providers.NotFound},
		{"ConflictException", 409, providers.Conflict},
		{"LimitExceededException", 429, providers.Transient},
		{"TooManyRequestsException", 429, providers.Transient},
		{"ServiceUnavailableException", 503, providers.Transient},
		{"BadRequestException", 400, providers.Invalid},
		{"UnauthorizedException", 401, providers.Permission},
		{"AccessDeniedException", 403, providers.Permission},
		{"SomethingNew", 502, providers.Transient},
		{"SomethingNew", 418, providers.Invalid},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			f := &fakeAPI{failDelete: apiError(c.code, c.status)}
			err := apigateway.NewWithAPI(f).Revoke(context.Background(), owner(t, "k"), "key1")
			if c.want == providers.NotFound {
				if err != nil {
					t.Fatalf("Revoke = %v, want nil for NotFound", err)
				}
				return
			}
			if got := providers.KindOf(err); got != c.want {
				t.Fatalf("kind %v, want %v (%v)", got, c.want, err)
			}
			if !strings.HasPrefix(err.Error(), "apigateway.Revoke: ") {
				t.Fatalf("error %q does not start with its op", err)
			}
		})
	}
}
