package local

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigateway/types"
)

// fakeKeys is moto's API Gateway as the data plane reads it.
type fakeKeys struct {
	keys  []types.ApiKey
	plans map[string]bool // key id → in a usage plan
	fail  error
}

func (f *fakeKeys) GetApiKeys(_ context.Context, in *apigateway.GetApiKeysInput, _ ...func(*apigateway.Options)) (*apigateway.GetApiKeysOutput, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	if !aws.ToBool(in.IncludeValues) {
		return nil, errors.New("the data plane must ask for the keys' values")
	}
	return &apigateway.GetApiKeysOutput{Items: f.keys}, nil
}

func (f *fakeKeys) GetUsagePlans(_ context.Context, in *apigateway.GetUsagePlansInput, _ ...func(*apigateway.Options)) (*apigateway.GetUsagePlansOutput, error) {
	out := &apigateway.GetUsagePlansOutput{}
	if f.plans[aws.ToString(in.KeyId)] {
		out.Items = []types.UsagePlan{{Id: aws.String("plan1")}}
	}
	return out, nil
}

// TestAPIGatewayDataPlaneLag: a usable key is refused until the lag has
// passed since the data plane first found it usable, then accepted; a key
// that is unknown, disabled or in no plan is refused at once, and one that
// leaves its plan starts its lag again. The clock is injected: no sleeps.
func TestAPIGatewayDataPlaneLag(t *testing.T) {
	const lag = 2 * time.Second
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeKeys{
		keys: []types.ApiKey{
			{Id: aws.String("k1"), Value: aws.String("value-of-k1"), Enabled: true},
			{Id: aws.String("k2"), Value: aws.String("value-of-k2"), Enabled: false},
		},
		plans: map[string]bool{"k1": true, "k2": true},
	}
	d := NewAPIGatewayDataPlane(f, lag, func() time.Time { return now })
	ask := func(key string) int {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/prod/ping", nil)
		if key != "" {
			r.Header.Set("x-api-key", key)
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if key != "" && strings.Contains(w.Body.String(), key) {
			t.Fatalf("the answer quotes the key: %s", w.Body)
		}
		return w.Code
	}
	step := func(what string, key string, want int) {
		t.Helper()
		if got := ask(key); got != want {
			t.Fatalf("%s: %d, want %d", what, got, want)
		}
	}

	step("no key", "", 403)
	step("an unknown key", "no-such-value", 403)
	step("a disabled key", "value-of-k2", 403)
	step("a new key, first seen", "value-of-k1", 403)
	now = now.Add(lag - time.Nanosecond)
	step("a new key, just before the lag", "value-of-k1", 403)
	now = now.Add(time.Nanosecond)
	step("a new key, after the lag", "value-of-k1", 200)
	now = now.Add(time.Hour)
	step("the key an hour later", "value-of-k1", 200)

	f.plans["k1"] = false
	step("the key out of its plan", "value-of-k1", 403)
	f.plans["k1"] = true
	step("the key back in its plan", "value-of-k1", 403)
	now = now.Add(lag)
	step("the key back in its plan, after the lag", "value-of-k1", 200)

	f.fail = errors.New("moto is down")
	step("moto unreachable", "value-of-k1", 503)

	if got, want := d.Answers("k1"), []int{403, 403, 200, 200, 403, 403, 200}; !slices.Equal(got, want) {
		t.Fatalf("answers for k1 %v, want %v", got, want)
	}
}
