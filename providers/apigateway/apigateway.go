// Package apigateway rotates Amazon API Gateway (REST API) API keys. A new key
// joins the usage plans of the current key; the old key leaves its plans and
// is deleted.
//
// The secret value is
//
//	{"provider":"apigateway","key":"<value>","key_id":"<api key id>","usage_plan_ids":["<plan id>",...]}
//
// usage_plan_ids is optional once the secret holds a key: Create attaches the
// new key to every plan the current key is in plus every plan listed there,
// and records that union in the new value, which Verify then checks. On
// bootstrap (no key_id yet) usage_plan_ids is required; [] means no plan.
// To take a secret's keys out of a plan, remove the plan from usage_plan_ids
// and the current key from the plan.
//
// # Verification: management API, then the data plane
//
// API Gateway's management API has no call that authenticates with an API
// key, so Verify first reads the key through it: the key must exist, be
// enabled, hold the value of the credential and belong to every expected
// plan. That is not enough: the management API knows a new key before the
// gateway's data plane enforces its usage plans, and an application that
// reads the new key right after finishSecret would get 403 for a while.
//
// So a provider may carry a data-plane canary (WithCanary, NewCanary): Verify
// then also sends GET <canary URL> with the key in x-api-key and requires the
// gateway to let it through. The URL is a method of a stage of the key's
// usage plans that requires an API key (a cheap GET, ideally a mock
// integration); it comes from the deployment's configuration (the rotation
// function's APIGATEWAY_CANARY_URL), never from the secret's value, which
// must not be able to send the key elsewhere. 401 and 403 mean "not yet"
// (Permission: testSecret retries until its budget runs out), any other
// answer that is not a redirect means the request got past the key check, and
// 429, 5xx and network errors are Transient. A URL that is wrong answers 403
// forever on API Gateway ("Missing Authentication Token"), so a
// misconfigured canary fails testSecret rather than passing it.
//
// Without a canary Verify is management-only (the function says so in its
// log at start-up): testSecret may pass before the gateway enforces the new
// key, and applications that read it right after finishSecret may get 403s
// for a while. The grace period does not help them: it keeps the old key
// alive, not the new one usable.
package apigateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/providers"
)

// Name is the provider id.
const Name = "apigateway"

// FieldUsagePlanIDs names the secret field listing the usage plans of the
// secret's keys.
const FieldUsagePlanIDs = "usage_plan_ids"

// API is the part of the API Gateway client the provider calls.
type API interface {
	CreateApiKey(ctx context.Context, in *apigateway.CreateApiKeyInput, optFns ...func(*apigateway.Options)) (*apigateway.CreateApiKeyOutput, error)
	GetApiKey(ctx context.Context, in *apigateway.GetApiKeyInput, optFns ...func(*apigateway.Options)) (*apigateway.GetApiKeyOutput, error)
	GetApiKeys(ctx context.Context, in *apigateway.GetApiKeysInput, optFns ...func(*apigateway.Options)) (*apigateway.GetApiKeysOutput, error)
	DeleteApiKey(ctx context.Context, in *apigateway.DeleteApiKeyInput, optFns ...func(*apigateway.Options)) (*apigateway.DeleteApiKeyOutput, error)
	GetUsagePlans(ctx context.Context, in *apigateway.GetUsagePlansInput, optFns ...func(*apigateway.Options)) (*apigateway.GetUsagePlansOutput, error)
	CreateUsagePlanKey(ctx context.Context, in *apigateway.CreateUsagePlanKeyInput, optFns ...func(*apigateway.Options)) (*apigateway.CreateUsagePlanKeyOutput, error)
	DeleteUsagePlanKey(ctx context.Context, in *apigateway.DeleteUsagePlanKeyInput, optFns ...func(*apigateway.Options)) (*apigateway.DeleteUsagePlanKeyOutput, error)
}

// Provider rotates API Gateway API keys.
type Provider struct {
	api    API
	canary *Canary // nil: Verify reads the key through the management API only
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Lister   = (*Provider)(nil)
)

// New returns a provider that calls API Gateway with cfg. optFns tune the
// client (endpoint, retries) as in apigateway.NewFromConfig.
func New(cfg aws.Config, optFns ...func(*apigateway.Options)) *Provider {
	return NewWithAPI(apigateway.NewFromConfig(cfg, optFns...))
}

// NewWithAPI returns a provider over api (a client or a test fake).
func NewWithAPI(api API) *Provider { return &Provider{api: api} }

// WithCanary returns a copy of p whose Verify also asks the data plane,
// through c, whether it accepts the key (nil: management API only).
func (p *Provider) WithCanary(c *Canary) *Provider {
	q := *p
	q.canary = c
	return &q
}

// Canary returns the data-plane canary of p, nil if it has none.
func (p *Provider) Canary() *Canary { return p.canary }

// Name returns "apigateway".
func (p *Provider) Name() string { return Name }

// Create creates an enabled key named req.KeyName and attaches it to the
// usage plans of the current key and of the secret's usage_plan_ids. If an
// attachment fails, the new key is deleted before the error is returned.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = "apigateway.Create"
	plans, err := p.plansFor(ctx, op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	out, err := p.api.CreateApiKey(ctx, &apigateway.CreateApiKeyInput{
		Name:        aws.String(req.KeyName),
		Description: aws.String("keyrotor: key of secret " + req.SecretName),
		Enabled:     true,
	})
	if err != nil {
		return providers.Credential{}, classify(op, fmt.Errorf("create API key %s: %w", req.KeyName, err))
	}
	id, value := aws.ToString(out.Id), aws.ToString(out.Value)
	if id == "" || value == "" {
		return providers.Credential{}, providers.E(op, providers.Other, fmt.Errorf("create API key %s: the answer has no id or value", req.KeyName))
	}
	for _, plan := range plans {
		if err := p.attach(ctx, plan, id); err != nil {
			err = classify(op, fmt.Errorf("add API key %s to usage plan %s: %w", id, plan, err))
			if derr := p.revoke(context.WithoutCancel(ctx), op, id); derr != nil {
				return providers.Credential{}, errors.Join(err, fmt.Errorf("delete API key %s after the failure: %w", id, derr))
			}
			return providers.Credential{}, err
		}
	}
	cred, err := req.Owner.WithAttr(FieldUsagePlanIDs, plans)
	if err != nil {
		return providers.Credential{}, providers.E(op, providers.Other, err)
	}
	cred.Provider = Name
	cred.Key = value
	cred.KeyID = id
	cred.CreatedAt = aws.ToTime(out.CreatedDate)
	return cred, nil
}

// plansFor returns the sorted union of the current key's usage plans and the
// owner's usage_plan_ids. On bootstrap usage_plan_ids must be present.
func (p *Provider) plansFor(ctx context.Context, op string, owner providers.Credential) ([]string, error) {
	var pinned []string
	present, err := owner.AttrInto(FieldUsagePlanIDs, &pinned)
	if err != nil {
		return nil, providers.E(op, providers.Invalid, err)
	}
	if owner.KeyID == "" && !present {
		return nil, providers.E(op, providers.Invalid, fmt.Errorf("the secret has no key_id and no %q field: list the usage plans of its first key ([] for none)", FieldUsagePlanIDs))
	}
	plans := slices.Clone(pinned)
	if owner.KeyID != "" {
		current, err := p.plansOf(ctx, owner.KeyID)
		if err != nil {
			return nil, classify(op, fmt.Errorf("list usage plans of API key %s: %w", owner.KeyID, err))
		}
		plans = append(plans, current...)
	}
	plans = slices.DeleteFunc(plans, func(s string) bool { return s == "" })
	slices.Sort(plans)
	return slices.Compact(plans), nil
}

// plansOf returns the ids of the usage plans keyID belongs to.
func (p *Provider) plansOf(ctx context.Context, keyID string) ([]string, error) {
	var ids []string
	in := &apigateway.GetUsagePlansInput{KeyId: aws.String(keyID), Limit: aws.Int32(500)}
	for {
		out, err := p.api.GetUsagePlans(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, plan := range out.Items {
			ids = append(ids, aws.ToString(plan.Id))
		}
		if aws.ToString(out.Position) == "" || len(out.Items) == 0 {
			return ids, nil
		}
		in.Position = out.Position
	}
}

// attach adds keyID to plan. A key already in the plan (a retried call)
// counts as attached.
func (p *Provider) attach(ctx context.Context, plan, keyID string) error {
	_, err := p.api.CreateUsagePlanKey(ctx, &apigateway.CreateUsagePlanKeyInput{
		UsagePlanId: aws.String(plan),
		KeyId:       aws.String(keyID),
		KeyType:     aws.String("API_KEY"),
	})
	if err != nil && errorCode(err) == "ConflictException" {
		return nil
	}
	return err
}

// Verify checks that cred's key exists, is enabled, has the value cred.Key
// and belongs to every plan of cred's usage_plan_ids. A key that fails any
// of these is refused with a Permission error, as the gateway would refuse it.
// With a canary, the data plane must then accept the key too (see Canary): a
// key the management API knows but the gateway does not enforce yet is a
// Permission error, which testSecret retries.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = "apigateway.Verify"
	if cred.KeyID == "" || cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the credential has no key or key_id"))
	}
	var want []string
	if _, err := cred.AttrInto(FieldUsagePlanIDs, &want); err != nil {
		return providers.E(op, providers.Invalid, err)
	}
	out, err := p.api.GetApiKey(ctx, &apigateway.GetApiKeyInput{ApiKey: aws.String(cred.KeyID), IncludeValue: aws.Bool(true)})
	if err != nil {
		e := classify(op, fmt.Errorf("read API key %s: %w", cred.KeyID, err))
		if e.Kind == providers.NotFound {
			e.Kind = providers.Permission // a deleted key is refused
		}
		return e
	}
	if subtle.ConstantTimeCompare([]byte(aws.ToString(out.Value)), []byte(cred.Key)) != 1 {
		return providers.E(op, providers.Permission, fmt.Errorf("API key %s has another value than the credential", cred.KeyID))
	}
	if !out.Enabled {
		return providers.E(op, providers.Permission, fmt.Errorf("API key %s is disabled", cred.KeyID))
	}
	have, err := p.plansOf(ctx, cred.KeyID)
	if err != nil {
		return classify(op, fmt.Errorf("list usage plans of API key %s: %w", cred.KeyID, err))
	}
	for _, plan := range want {
		if plan != "" && !slices.Contains(have, plan) {
			return providers.E(op, providers.Permission, fmt.Errorf("API key %s is not in usage plan %s", cred.KeyID, plan))
		}
	}
	if p.canary != nil {
		return p.canary.check(ctx, op, cred.KeyID, cred.Key)
	}
	return nil
}

// Revoke removes keyID from its usage plans, then deletes it. A key that is
// already gone is success.
func (p *Provider) Revoke(ctx context.Context, _ providers.Credential, keyID string) error {
	return p.revoke(ctx, "apigateway.Revoke", keyID)
}

func (p *Provider) revoke(ctx context.Context, op, keyID string) error {
	// API Gateway removes a deleted key from its plans; moto does not, and an
	// explicit removal first also stops the key at once where deletion lags.
	plans, err := p.plansOf(ctx, keyID)
	if err != nil && kindOf(err) != providers.NotFound {
		return classify(op, fmt.Errorf("list usage plans of API key %s: %w", keyID, err))
	}
	for _, plan := range plans {
		_, err := p.api.DeleteUsagePlanKey(ctx, &apigateway.DeleteUsagePlanKeyInput{UsagePlanId: aws.String(plan), KeyId: aws.String(keyID)})
		if err != nil && kindOf(err) != providers.NotFound {
			return classify(op, fmt.Errorf("remove API key %s from usage plan %s: %w", keyID, plan, err))
		}
	}
	_, err = p.api.DeleteApiKey(ctx, &apigateway.DeleteApiKeyInput{ApiKey: aws.String(keyID)})
	if err != nil && kindOf(err) != providers.NotFound {
		return classify(op, fmt.Errorf("delete API key %s: %w", keyID, err))
	}
	return nil
}

// ListKeys returns the keys whose names start with namePrefix.
func (p *Provider) ListKeys(ctx context.Context, _ providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	const op = "apigateway.ListKeys"
	var keys []providers.KeyInfo
	in := &apigateway.GetApiKeysInput{NameQuery: aws.String(namePrefix), Limit: aws.Int32(500), IncludeValues: aws.Bool(false)}
	for {
		out, err := p.api.GetApiKeys(ctx, in)
		if err != nil {
			return nil, classify(op, fmt.Errorf("list API keys named %s*: %w", namePrefix, err))
		}
		for _, k := range out.Items {
			if name := aws.ToString(k.Name); strings.HasPrefix(name, namePrefix) {
				keys = append(keys, providers.KeyInfo{ID: aws.ToString(k.Id), Name: name, CreatedAt: aws.ToTime(k.CreatedDate)})
			}
		}
		if aws.ToString(out.Position) == "" || len(out.Items) == 0 {
			return keys, nil
		}
		in.Position = out.Position
	}
}

// kindByCode classifies API Gateway error codes. LimitExceededException and
// TooManyRequestsException are both throttling (HTTP 429, "retry after the
// specified time period" in the API reference), so they are Transient; a
// key that is already in a plan is a ConflictException.
var kindByCode = map[string]providers.Kind{
	"NotFoundException":           providers.NotFound,
	"ConflictException":           providers.Conflict,
	"LimitExceededException":      providers.Transient,
	"TooManyRequestsException":    providers.Transient,
	"ServiceUnavailableException": providers.Transient,
	"BadRequestException":         providers.Invalid,
	"UnauthorizedException":       providers.Permission,
	"AccessDeniedException":       providers.Permission,
	"AccessDenied":                providers.Permission,
	"UnrecognizedClientException": providers.Permission,
	"InvalidSignatureException":   providers.Permission,
	"ExpiredTokenException":       providers.Permission,
}

// kindOf classifies an SDK error: by its code, then by its HTTP status, then
// as a context or network error.
func kindOf(err error) providers.Kind {
	if k, ok := kindByCode[errorCode(err)]; ok {
		return k
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch s := re.HTTPStatusCode(); {
		case s == 429 || s >= 500:
			return providers.Transient
		case s == 401 || s == 403:
			return providers.Permission
		case s == 404:
			return providers.NotFound
		case s == 409:
			return providers.Conflict
		case s >= 400:
			return providers.Invalid
		}
	}
	return providers.KindOf(err)
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classify wraps err into a *providers.Error for op with its Kind, HTTP
// status and request id.
func classify(op string, err error) *providers.Error {
	e := providers.E(op, kindOf(err), err)
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
		e.RequestID = re.ServiceRequestID()
	}
	return e
}
