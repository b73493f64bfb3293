package iam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// fakeIAM answers every call with err when it is set, and otherwise with the
// canned outputs.
type fakeIAM struct {
	err       error
	created   *iamtypes.AccessKey
	lastUsed  *awsiam.GetAccessKeyLastUsedOutput
	listPages []*awsiam.ListAccessKeysOutput
	calls     []string
	// boundTo is the user's keyrotor:secret tag (testARN when empty;
	// "-" for no tag); tagErr fails ListUserTags.
	boundTo string
	tagErr  error
}

const testARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/payments-iam-AbCdEf"

// ListUserTags is not recorded in calls: it precedes every other call.
func (f *fakeIAM) ListUserTags(_ context.Context, in *awsiam.ListUserTagsInput, _ ...func(*awsiam.Options)) (*awsiam.ListUserTagsOutput, error) {
	if f.tagErr != nil {
		return nil, f.tagErr
	}
	out := &awsiam.ListUserTagsOutput{Tags: []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("payments")}}}
	switch f.boundTo {
	case "-":
	case "":
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(keyrotor.TagSecret), Value: aws.String(testARN)})
	default:
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(keyrotor.TagSecret), Value: aws.String(f.boundTo)})
	}
	return out, nil
}

func (f *fakeIAM) CreateAccessKey(_ context.Context, in *awsiam.CreateAccessKeyInput, _ ...func(*awsiam.Options)) (*awsiam.CreateAccessKeyOutput, error) {
	f.calls = append(f.calls, "CreateAccessKey "+aws.ToString(in.UserName))
	if f.err != nil {
		return nil, f.err
	}
	return &awsiam.CreateAccessKeyOutput{AccessKey: f.created}, nil
}

func (f *fakeIAM) DeleteAccessKey(_ context.Context, in *awsiam.DeleteAccessKeyInput, _ ...func(*awsiam.Options)) (*awsiam.DeleteAccessKeyOutput, error) {
	f.calls = append(f.calls, "DeleteAccessKey "+aws.ToString(in.UserName)+" "+aws.ToString(in.AccessKeyId))
	if f.err != nil {
		return nil, f.err
	}
	return &awsiam.DeleteAccessKeyOutput{}, nil
}

func (f *fakeIAM) ListAccessKeys(_ context.Context, in *awsiam.ListAccessKeysInput, _ ...func(*awsiam.Options)) (*awsiam.ListAccessKeysOutput, error) {
	f.calls = append(f.calls, "ListAccessKeys "+aws.ToString(in.UserName)+" "+aws.ToString(in.Marker))
	if f.err != nil {
		return nil, f.err
	}
	if len(f.listPages) == 0 {
		return &awsiam.ListAccessKeysOutput{}, nil
	}
	page := f.listPages[0]
	f.listPages = f.listPages[1:]
	return page, nil
}

func (f *fakeIAM) GetAccessKeyLastUsed(_ context.Context, in *awsiam.GetAccessKeyLastUsedInput, _ ...func(*awsiam.Options)) (*awsiam.GetAccessKeyLastUsedOutput, error) {
	f.calls = append(f.calls, "GetAccessKeyLastUsed "+aws.ToString(in.AccessKeyId))
	if f.err != nil {
		return nil, f.err
	}
	return f.lastUsed, nil
}

// sdkError wraps an API error code the way the SDK's IAM client returns it.
func sdkError(op string, status int, code string) error {
	return &smithy.OperationError{ServiceID: "IAM", OperationName: op, Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "message from IAM"},
		},
		RequestID: "req-123",
	}}
}

func owner(t *testing.T) providers.Credential {
	t.Helper()
	c, err := providers.ParseSecret(`{"provider":"iam","key":"old-secret","key_id":"AKIAOLD","user_name":"payments-bot","team":"payments"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret, err = keyrotor.ParseARN(testARN); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBinding: the secret's value names the user, but only a user tagged
// keyrotor:secret=<this secret's ARN> is touched: a user bound to another
// secret, a user without the tag, or an owner whose identity keyrotor did not
// set is refused before any key call, with an error that names the fix.
func TestBinding(t *testing.T) {
	other := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/payments-iam-AbCdEf"
	for name, tc := range map[string]struct {
		boundTo  string
		identity bool
	}{
		"NoTag":         {"-", true},
		"OtherSecret":   {other, true},
		"NoIdentity":    {"", false},
		"ARNPrefixOnly": {strings.TrimSuffix(testARN, "-AbCdEf"), true},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeIAM{boundTo: tc.boundTo, created: &iamtypes.AccessKey{AccessKeyId: aws.String("AKIANEW"), SecretAccessKey: aws.String("s")}}
			p := New(aws.Config{Region: "us-east-1"}, &Options{IAM: f})
			o := owner(t)
			if !tc.identity {
				o.Secret = keyrotor.Identity{}
			}
			for op, err := range callAll(p, o) {
				if !errors.Is(err, providers.ErrUnbound) || providers.KindOf(err) != providers.Invalid {
					t.Errorf("%s: err = %v, want an Invalid error wrapping ErrUnbound", op, err)
				}
				if tc.identity && !strings.Contains(err.Error(), "aws iam tag-user --user-name payments-bot --tags Key=keyrotor:secret,Value="+testARN) {
					t.Errorf("%s: the error does not give the command that binds the user: %v", op, err)
				}
			}
			if len(f.calls) != 0 {
				t.Fatalf("calls %v made for an unbound user", f.calls)
			}
		})
	}
	f := &fakeIAM{created: &iamtypes.AccessKey{AccessKeyId: aws.String("AKIANEW"), SecretAccessKey: aws.String("s")}}
	p := New(aws.Config{Region: "us-east-1"}, &Options{IAM: f})
	if _, err := p.Create(context.Background(), providers.CreateRequest{Owner: owner(t)}); err != nil {
		t.Fatalf("bound user: %v", err)
	}
}

// calls runs every IAM-backed method of p and returns each one's error,
// keyed by op.
func callAll(p *Provider, o providers.Credential) map[string]error {
	ctx := context.Background()
	_, createErr := p.Create(ctx, providers.CreateRequest{Owner: o})
	_, listErr := p.ListKeys(ctx, o, "")
	_, lastErr := p.LastUsed(ctx, o, "AKIAKEY")
	return map[string]error{
		"iam.CreateAccessKey":      createErr,
		"iam.DeleteAccessKey":      p.Revoke(ctx, o, "AKIAKEY"),
		"iam.ListAccessKeys":       listErr,
		"iam.GetAccessKeyLastUsed": lastErr,
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		code   string
		status int
		want   providers.Kind
	}{
		{"LimitExceeded", 409, providers.Conflict},
		{"NoSuchEntity", 404, providers.NotFound},
		{"AccessDenied", 403, providers.Permission},
		{"InvalidClientTokenId", 403, providers.Permission},
		{"SignatureDoesNotMatch", 403, providers.Permission},
		{"UnrecognizedClient", 403, providers.Permission},
		{"Throttling", 400, providers.Transient},
		{"ServiceUnavailable", 503, providers.Transient},
		{"RequestLimitExceeded", 400, providers.Transient},
		{"InternalFailure", 500, providers.Transient},
		{"ValidationError", 400, providers.Invalid},
		{"InvalidInput", 400, providers.Invalid},
		// Codes missing from the table fall back on the HTTP status.
		{"SomethingNew", 400, providers.Other},
		{"SomethingNew", 502, providers.Transient},
		{"SomethingNew", 429, providers.Transient},
		{"", 403, providers.Permission},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%d", tt.code, tt.status), func(t *testing.T) {
			for op, err := range callAll(New(aws.Config{}, &Options{IAM: &fakeIAM{err: sdkError("Op", tt.status, tt.code)}}), owner(t)) {
				if op == "iam.DeleteAccessKey" && tt.want == providers.NotFound {
					if err != nil {
						t.Errorf("%s: %v, want nil for a key already gone", op, err)
					}
					continue
				}
				var pe *providers.Error
				if !errors.As(err, &pe) {
					t.Fatalf("%s: %v is not a *providers.Error", op, err)
				}
				if pe.Kind != tt.want || pe.Op != op || pe.Status != tt.status || pe.RequestID != "req-123" {
					t.Errorf("%s: got op %q kind %v status %d request %q, want op %q kind %v status %d request req-123",
						op, pe.Op, pe.Kind, pe.Status, pe.RequestID, op, tt.want, tt.status)
				}
				if !strings.Contains(err.Error(), "payments-bot") {
					t.Errorf("%s: %v does not name the user", op, err)
				}
			}
		})
	}
}

func TestTransportAndContextErrorsAreTransient(t *testing.T) {
	errs := map[string]error{
		"connection refused": &smithy.OperationError{ServiceID: "IAM", OperationName: "Op", Err: &smithyhttp.RequestSendError{
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
		}},
		"canceled": &smithy.OperationError{ServiceID: "IAM", OperationName: "Op", Err: &smithy.CanceledError{Err: context.Canceled}},
		"deadline": fmt.Errorf("wrapped: %w", context.DeadlineExceeded),
	}
	for name, sdkErr := range errs {
		t.Run(name, func(t *testing.T) {
			for op, err := range callAll(New(aws.Config{}, &Options{IAM: &fakeIAM{err: sdkErr}}), owner(t)) {
				if k := providers.KindOf(err); k != providers.Transient {
					t.Errorf("%s: kind %v, want transient (%v)", op, k, err)
				}
				if !errors.Is(err, sdkErr) {
					t.Errorf("%s: %v does not wrap the SDK error", op, err)
				}
			}
		})
	}
}

func TestMissingUserNameIsInvalid(t *testing.T) {
	o, err := providers.ParseSecret(`{"provider":"iam"}`)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIAM{}
	p := New(aws.Config{}, &Options{IAM: f})
	for op, err := range callAll(p, o) {
		if !providers.IsKind(err, providers.Invalid) || !strings.Contains(err.Error(), FieldUserName) {
			t.Errorf("%s: %v, want Invalid naming %s", op, err, FieldUserName)
		}
	}
	if err := p.Verify(context.Background(), o); !providers.IsKind(err, providers.Invalid) {
		t.Errorf("Verify: %v, want Invalid", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("IAM was called without a user: %v", f.calls)
	}
}

func TestCreate(t *testing.T) {
	created := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	f := &fakeIAM{created: &iamtypes.AccessKey{AccessKeyId: aws.String("AKIANEW"), SecretAccessKey: aws.String("new-secret"), CreateDate: &created, UserName: aws.String("payments-bot")}}
	o := owner(t)
	c, err := New(aws.Config{}, &Options{IAM: f}).Create(context.Background(), providers.CreateRequest{SecretName: "app", KeyName: "ignored", Owner: o})
	if err != nil {
		t.Fatal(err)
	}
	if c.Provider != "iam" || c.Key != "new-secret" || c.KeyID != "AKIANEW" || !c.CreatedAt.Equal(created) {
		t.Fatalf("Create = %v created %v", c, c.CreatedAt)
	}
	if c.Attr(FieldUserName) != "payments-bot" || c.Attr("team") != "payments" {
		t.Fatalf("Create did not copy the owner's fields: %v", c)
	}
	if got := strings.Join(f.calls, ";"); got != "CreateAccessKey payments-bot" {
		t.Fatalf("calls %q", got)
	}
	c.Attrs["team"][1] = 'X'
	if o.Attr("team") != "payments" {
		t.Fatalf("the new credential shares its attributes with the owner")
	}
}

func TestCreateLimitMessage(t *testing.T) {
	f := &fakeIAM{err: sdkError("CreateAccessKey", 409, "LimitExceeded")}
	_, err := New(aws.Config{}, &Options{IAM: f}).Create(context.Background(), providers.CreateRequest{Owner: owner(t)})
	if !providers.IsKind(err, providers.Conflict) {
		t.Fatalf("err %v, want Conflict", err)
	}
	for _, want := range []string{"payments-bot", "already has 2 access keys", "grace period"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

func TestListKeysPages(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeIAM{listPages: []*awsiam.ListAccessKeysOutput{
		{AccessKeyMetadata: []iamtypes.AccessKeyMetadata{{AccessKeyId: aws.String("AKIA1"), CreateDate: &t1}}, IsTruncated: true, Marker: aws.String("m1")},
		{AccessKeyMetadata: []iamtypes.AccessKeyMetadata{{AccessKeyId: aws.String("AKIA2"), Status: iamtypes.StatusTypeInactive}}},
	}}
	keys, err := New(aws.Config{}, &Options{IAM: f}).ListKeys(context.Background(), owner(t), "keyrotor-some-prefix-")
	if err != nil {
		t.Fatal(err)
	}
	want := []providers.KeyInfo{{ID: "AKIA1", CreatedAt: t1}, {ID: "AKIA2"}}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("ListKeys = %v, want %v", keys, want)
	}
	if got := strings.Join(f.calls, ";"); got != "ListAccessKeys payments-bot ;ListAccessKeys payments-bot m1" {
		t.Fatalf("calls %q", got)
	}
}

func TestLastUsed(t *testing.T) {
	used := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		out      *awsiam.GetAccessKeyLastUsedOutput
		want     time.Time
		wantKind providers.Kind
	}{
		{"used", &awsiam.GetAccessKeyLastUsedOutput{UserName: aws.String("payments-bot"), AccessKeyLastUsed: &iamtypes.AccessKeyLastUsed{LastUsedDate: &used, ServiceName: aws.String("sts"), Region: aws.String("us-east-1")}}, used, 0},
		{"never used", &awsiam.GetAccessKeyLastUsedOutput{UserName: aws.String("payments-bot"), AccessKeyLastUsed: &iamtypes.AccessKeyLastUsed{ServiceName: aws.String("N/A"), Region: aws.String("N/A")}}, time.Time{}, 0},
		{"no last-use block", &awsiam.GetAccessKeyLastUsedOutput{UserName: aws.String("payments-bot")}, time.Time{}, 0},
		{"key of another user", &awsiam.GetAccessKeyLastUsedOutput{UserName: aws.String("someone-else"), AccessKeyLastUsed: &iamtypes.AccessKeyLastUsed{LastUsedDate: &used}}, time.Time{}, providers.NotFound},
		{"no user", &awsiam.GetAccessKeyLastUsedOutput{}, time.Time{}, providers.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(aws.Config{}, &Options{IAM: &fakeIAM{lastUsed: tt.out}}).LastUsed(context.Background(), owner(t), "AKIAKEY")
			if tt.wantKind != 0 {
				if !providers.IsKind(err, tt.wantKind) {
					t.Fatalf("err %v, want %v", err, tt.wantKind)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("LastUsed = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// stsServer answers GetCallerIdentity with arn, or with an error code whose
// message is msg, after checking that the request is signed with keyID.
func stsServer(t *testing.T, keyID, arn, code, msg string) aws.Config {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "GetCallerIdentity" {
			t.Errorf("STS got %s %v", r.Method, r.Form)
		}
		if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "Credential="+keyID+"/") {
			t.Errorf("GetCallerIdentity is not signed with the key under test %s: %q", keyID, auth)
		}
		w.Header().Set("Content-Type", "text/xml")
		if code != "" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-9</RequestId></ErrorResponse>`, code, msg)
			return
		}
		fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>%s</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>req-9</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, arn)
	}))
	t.Cleanup(srv.Close)
	return aws.Config{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	}
}

func TestVerifyChecksTheUser(t *testing.T) {
	cred := owner(t)
	tests := []struct {
		name string
		arn  string
		want providers.Kind // 0: success
	}{
		{"the user", "arn:aws:iam::123456789012:user/payments-bot", 0},
		{"the user under a path", "arn:aws:iam::123456789012:user/bots/payments/payments-bot", 0},
		{"another user", "arn:aws:iam::123456789012:user/admin", providers.Invalid},
		{"a user whose path ends with the name", "arn:aws:iam::123456789012:user/payments-bot/admin", providers.Invalid},
		{"a name with the user as suffix", "arn:aws:iam::123456789012:user/old-payments-bot", providers.Invalid},
		{"an assumed role of that name", "arn:aws:sts::123456789012:assumed-role/payments-bot/session", providers.Invalid},
		{"a role", "arn:aws:iam::123456789012:role/payments-bot", providers.Invalid},
		{"not an ARN", "payments-bot", providers.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(stsServer(t, cred.KeyID, tt.arn, "", ""), &Options{IAM: &fakeIAM{}}).Verify(context.Background(), cred)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !providers.IsKind(err, tt.want) || !strings.Contains(err.Error(), "sts.GetCallerIdentity") {
				t.Fatalf("Verify: %v, want %v from sts.GetCallerIdentity", err, tt.want)
			}
		})
	}
}

func TestVerifyRefusedKeyIsPermission(t *testing.T) {
	cred := owner(t)
	for _, code := range []string{"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "UnrecognizedClient"} {
		t.Run(code, func(t *testing.T) {
			err := New(stsServer(t, cred.KeyID, "", code, "refused"), nil).Verify(context.Background(), cred)
			if !providers.IsKind(err, providers.Permission) {
				t.Fatalf("Verify: %v, want Permission", err)
			}
		})
	}
}

func TestErrorsNeverQuoteTheSecretKey(t *testing.T) {
	cred := owner(t)
	// A server that echoes the secret access key in its error message.
	err := New(stsServer(t, cred.KeyID, "", "SignatureDoesNotMatch", "bad key "+cred.Key), nil).Verify(context.Background(), cred)
	if !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Verify: %v, want Permission", err)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%v %+v %#v %q", err, err, err, err)} {
		if strings.Contains(s, cred.Key) {
			t.Fatalf("the error quotes the secret access key: %s", s)
		}
	}
	if !strings.Contains(err.Error(), "<redacted>") || !strings.Contains(err.Error(), cred.KeyID) {
		t.Fatalf("%v: want the key redacted and the key id named", err)
	}
}
