package local

import (
	"context"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
)

// DefaultDataPlaneLag is how long the stack's API Gateway data plane
// refuses a key after it first finds it usable, unless
// Options.APIGatewayDataPlaneLag says otherwise.
const DefaultDataPlaneLag = 2 * time.Second

// DataPlaneAPI is the part of moto's API Gateway management API the data
// plane stand-in reads.
type DataPlaneAPI interface {
	GetApiKeys(ctx context.Context, in *apigateway.GetApiKeysInput, optFns ...func(*apigateway.Options)) (*apigateway.GetApiKeysOutput, error)
	GetUsagePlans(ctx context.Context, in *apigateway.GetUsagePlansInput, optFns ...func(*apigateway.Options)) (*apigateway.GetUsagePlansOutput, error)
}

// APIGatewayDataPlane stands in for API Gateway's data plane, which moto
// does not have: it answers a request as a method that requires an API key
// would, with the key's enforcement lagging behind the management API as
// it does on AWS. That lag is what the apigateway provider's data-plane
// canary (APIGATEWAY_CANARY_URL) waits out.
//
// A request whose x-api-key is the value of an API key that moto knows, is
// enabled and is in at least one usage plan is a usable key. A usable key
// is refused (403) until Lag has passed since the stand-in first found it
// usable, then accepted (200). Anything else is refused at once, and a key
// that stops being usable starts its lag again when it comes back. The path
// is ignored. When moto cannot be read the answer is 503. Answers carry no
// key, and nothing is logged.
//
// The lag counts from the first request that finds the key usable, not from
// the key's creation (moto's dates have one-second resolution): the canary's
// first Verify of a new key always sees a 403, which is what the test wants.
type APIGatewayDataPlane struct {
	api DataPlaneAPI
	lag time.Duration
	now func() time.Time

	mu      sync.Mutex
	since   map[string]time.Time // key id → when it was first found usable
	answers map[string][]int     // key id → the statuses answered for it
}

// NewAPIGatewayDataPlane returns a data plane over api that accepts a key
// lag after it first finds it usable. now is the clock (nil: time.Now).
func NewAPIGatewayDataPlane(api DataPlaneAPI, lag time.Duration, now func() time.Time) *APIGatewayDataPlane {
	if now == nil {
		now = time.Now
	}
	return &APIGatewayDataPlane{api: api, lag: lag, now: now, since: map[string]time.Time{}, answers: map[string][]int{}}
}

// Answers returns the statuses the data plane answered for the API key
// keyID, in order.
func (d *APIGatewayDataPlane) Answers(keyID string) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.answers[keyID]...)
}

// ServeHTTP answers as the type's doc says.
func (d *APIGatewayDataPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := http.StatusForbidden
	id, usable, err := d.usable(r.Context(), r.Header.Get("x-api-key"))
	now := d.now()
	d.mu.Lock()
	switch {
	case err != nil:
		status = http.StatusServiceUnavailable
	case !usable:
		delete(d.since, id)
	default:
		since, ok := d.since[id]
		if !ok {
			since = now
			d.since[id] = now
		}
		if now.Sub(since) >= d.lag {
			status = http.StatusOK
		}
	}
	if id != "" {
		d.answers[id] = append(d.answers[id], status)
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch status {
	case http.StatusOK:
		_, _ = w.Write([]byte(`{"message":"ok"}`))
	case http.StatusForbidden:
		_, _ = w.Write([]byte(`{"message":"Forbidden"}`))
	default:
		_, _ = w.Write([]byte(`{"message":"Service Unavailable"}`))
	}
}

// usable returns the id of the API key whose value is key ("" if none) and
// whether it is enabled and in a usage plan.
func (d *APIGatewayDataPlane) usable(ctx context.Context, key string) (id string, usable bool, err error) {
	if key == "" {
		return "", false, nil
	}
	in := &apigateway.GetApiKeysInput{IncludeValues: aws.Bool(true), Limit: aws.Int32(500)}
	var enabled bool
	for id == "" {
		out, err := d.api.GetApiKeys(ctx, in)
		if err != nil {
			return "", false, err
		}
		for _, k := range out.Items {
			if subtle.ConstantTimeCompare([]byte(aws.ToString(k.Value)), []byte(key)) == 1 {
				id, enabled = aws.ToString(k.Id), k.Enabled
				break
			}
		}
		if aws.ToString(out.Position) == "" || len(out.Items) == 0 {
			break
		}
		in.Position = out.Position
	}
	if id == "" || !enabled {
		return id, false, nil
	}
	plans, err := d.api.GetUsagePlans(ctx, &apigateway.GetUsagePlansInput{KeyId: aws.String(id), Limit: aws.Int32(1)})
	if err != nil {
		return id, false, err
	}
	return id, len(plans.Items) > 0, nil
}
