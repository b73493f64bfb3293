package apigateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/apigateway"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/apigateway"
	"github.com/keyrotor/keyrotor/providers/providertest"
)

// motoVendor is one moto_server for the package's tests.
type motoVendor struct {
	client *sdk.Client
	p      *apigateway.Provider
}

func startMoto(t *testing.T) motoVendor {
	t.Helper()
	cfg := testenv.StartMoto(t, nil).Config(t)
	return motoVendor{client: sdk.NewFromConfig(cfg), p: apigateway.New(cfg)}
}

// plan creates a usage plan and returns its id.
func (m motoVendor) plan(t *testing.T, name string) string {
	t.Helper()
	out, err := m.client.CreateUsagePlan(context.Background(), &sdk.CreateUsagePlanInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateUsagePlan: %v", err)
	}
	return aws.ToString(out.Id)
}

// planKeys returns the ids of the keys in plan.
func (m motoVendor) planKeys(t *testing.T, plan string) []string {
	t.Helper()
	out, err := m.client.GetUsagePlanKeys(context.Background(), &sdk.GetUsagePlanKeysInput{UsagePlanId: aws.String(plan)})
	if err != nil {
		t.Fatalf("GetUsagePlanKeys(%s): %v", plan, err)
	}
	var ids []string
	for _, k := range out.Items {
		ids = append(ids, aws.ToString(k.Id))
	}
	return ids
}

func owner(t *testing.T, keyID string, plans ...string) providers.Credential {
	t.Helper()
	b, err := json.Marshal(map[string]any{"provider": "apigateway", "key_id": keyID, apigateway.FieldUsagePlanIDs: plans})
	if err != nil {
		t.Fatal(err)
	}
	c, err := providers.ParseSecret(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	m := startMoto(t)
	n := 0
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			n++
			return m.p, owner(t, "", m.plan(t, fmt.Sprintf("gold-%d", n)), m.plan(t, fmt.Sprintf("silver-%d", n)))
		},
		UnknownKeyID: "abcdefghij",
	})
}

// TestRotationKeepsUsagePlans is the end-to-end rotation at the provider
// level: the new key joins the plans of the current key, the old one leaves
// them and is deleted.
func TestRotationKeepsUsagePlans(t *testing.T) {
	ctx := context.Background()
	m := startMoto(t)
	gold, silver, other := m.plan(t, "gold"), m.plan(t, "silver"), m.plan(t, "other")

	first, err := m.p.Create(ctx, providers.CreateRequest{SecretName: "app", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app"}, "t1"), Owner: owner(t, "", gold)})
	if err != nil {
		t.Fatalf("bootstrap Create: %v", err)
	}
	// An operator adds the current key to another plan by hand: the next
	// key must follow it there.
	if _, err := m.client.CreateUsagePlanKey(ctx, &sdk.CreateUsagePlanKeyInput{UsagePlanId: aws.String(silver), KeyId: aws.String(first.KeyID), KeyType: aws.String("API_KEY")}); err != nil {
		t.Fatal(err)
	}
	if err := m.p.Verify(ctx, first); err != nil {
		t.Fatalf("Verify(first): %v", err)
	}

	second, err := m.p.Create(ctx, providers.CreateRequest{SecretName: "app", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app"}, "t2"), Owner: first})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	var recorded []string
	if _, err := second.AttrInto(apigateway.FieldUsagePlanIDs, &recorded); err != nil {
		t.Fatal(err)
	}
	want := []string{gold, silver}
	slices.Sort(want)
	if !slices.Equal(recorded, want) {
		t.Fatalf("usage_plan_ids of the new value = %v, want %v", recorded, want)
	}
	for _, plan := range []string{gold, silver} {
		if keys := m.planKeys(t, plan); !slices.Contains(keys, second.KeyID) || !slices.Contains(keys, first.KeyID) {
			t.Fatalf("plan %s holds %v, want both keys during the grace period", plan, keys)
		}
	}
	if keys := m.planKeys(t, other); len(keys) != 0 {
		t.Fatalf("plan %s holds %v, want no key", other, keys)
	}
	if err := m.p.Verify(ctx, second); err != nil {
		t.Fatalf("Verify(second): %v", err)
	}

	if err := m.p.Revoke(ctx, second, first.KeyID); err != nil {
		t.Fatalf("Revoke(first): %v", err)
	}
	for _, plan := range []string{gold, silver} {
		if keys := m.planKeys(t, plan); slices.Contains(keys, first.KeyID) || !slices.Contains(keys, second.KeyID) {
			t.Fatalf("after revoke, plan %s holds %v, want only %s", plan, keys, second.KeyID)
		}
	}
	if _, err := m.client.GetApiKey(ctx, &sdk.GetApiKeyInput{ApiKey: aws.String(first.KeyID)}); err == nil {
		t.Fatalf("the revoked key still exists")
	}
	if err := m.p.Verify(ctx, first); !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Verify(revoked) = %v, want Permission", err)
	}

	// A key removed from one of its plans by hand no longer verifies.
	if _, err := m.client.DeleteUsagePlanKey(ctx, &sdk.DeleteUsagePlanKeyInput{UsagePlanId: aws.String(silver), KeyId: aws.String(second.KeyID)}); err != nil {
		t.Fatal(err)
	}
	if err := m.p.Verify(ctx, second); !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Verify(key out of a plan) = %v, want Permission", err)
	}
}

func TestBootstrapWithoutPlansIsInvalid(t *testing.T) {
	f := &fakeAPI{}
	cur, err := providers.ParseSecret(`{"provider":"apigateway"}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = apigateway.NewWithAPI(f).Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: cur})
	if !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Create = %v, want Invalid", err)
	}
	if f.created != 0 {
		t.Fatalf("a key was created")
	}
}
