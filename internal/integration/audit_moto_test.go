package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/internal/function"
	"github.com/keyrotor/keyrotor/internal/testenv"
)

// awsCalls is a reverse proxy in front of moto that counts the calls by
// service and operation: X-Amz-Target for the JSON protocols, the Action
// form field for the query protocol.
type awsCalls struct {
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	counts map[string]int // "secretsmanager.ListSecrets", "cloudwatch.PutMetricData"
	failed []string       // calls moto answered with an error status
}

func startCountingProxy(t *testing.T, target string) (*awsCalls, string) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &awsCalls{rp: httputil.NewSingleHostReverseProxy(u), counts: map[string]int{}}
	c.rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode >= 300 {
			c.mu.Lock()
			c.failed = append(c.failed, fmt.Sprintf("%s: HTTP %d", resp.Request.Header.Get("X-Keyrotor-Op"), resp.StatusCode))
			c.mu.Unlock()
		}
		return nil
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *awsCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target") // secretsmanager.ListSecrets
	if op == "" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Header.Get("Content-Encoding") == "gzip" { // PutMetricData compresses large requests
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				body, _ = io.ReadAll(zr)
			}
		}
		form, _ := url.ParseQuery(string(body))
		op = "cloudwatch." + form.Get("Action")
		if form.Get("Action") == "" {
			op = "other " + r.URL.Path
		}
	}
	r.Header.Set("X-Keyrotor-Op", op)
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
	c.rp.ServeHTTP(w, r)
}

func (c *awsCalls) snapshot() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out, append([]string(nil), c.failed...)
}

func (c *awsCalls) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts, c.failed = map[string]int{}, nil
}

// fleetSecret is what the test made of one secret.
type fleetSecret struct {
	name     string
	managed  bool
	days     int64 // AutomaticallyAfterDays; 0: rotation off
	stuck    bool
	since    time.Time
	next     time.Time
	hasSince bool
}

const auditFleetSize = 2000

var rotationDays = []int64{1, 7, 30, 45, 90, 365}

// makeFleet creates auditFleetSize managed secrets (a fifth with rotation
// off, the others with assorted AutomaticallyAfterDays, every seventh with
// a stuck AWSPENDING) and a few unmanaged decoys, one call at a time (moto
// answers 500 to some concurrent CreateSecret calls).
func makeFleet(t *testing.T, sm *secretsmanager.Client) map[string]*fleetSecret {
	ctx := context.Background()
	var all []*fleetSecret
	for i := range auditFleetSize {
		s := &fleetSecret{name: fmt.Sprintf("audit/app-%04d/key", i), managed: true}
		if i%5 != 0 {
			s.days = rotationDays[i%len(rotationDays)]
		}
		s.stuck = i%7 == 0
		all = append(all, s)
	}
	for i := range 40 {
		all = append(all, &fleetSecret{name: fmt.Sprintf("audit/decoy-%02d", i)})
	}
	for _, s := range all {
		if err := createFleetSecret(ctx, sm, s); err != nil {
			t.Fatal(err)
		}
	}
	byName := map[string]*fleetSecret{}
	for _, s := range all {
		byName[s.name] = s
	}
	return byName
}

func createFleetSecret(ctx context.Context, sm *secretsmanager.Client, s *fleetSecret) error {
	tags := []smtypes.Tag{{Key: aws.String("keyrotor:managed"), Value: aws.String("true")}}
	if !s.managed {
		// Decoys the ListSecrets filters let through: the auditor must check the pair.
		tags = []smtypes.Tag{{Key: aws.String("keyrotor:managed"), Value: aws.String("false")}, {Key: aws.String("team"), Value: aws.String("true")}}
	}
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(s.name),
		SecretString: aws.String(`{"provider":"gateway"}`), Tags: tags}); err != nil {
		return fmt.Errorf("create %s: %w", s.name, err)
	}
	if s.days > 0 {
		// No Lambda ARN: moto moves AWSCURRENT itself and records the rules and dates.
		if _, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(s.name),
			RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(s.days)}}); err != nil {
			return fmt.Errorf("rotate %s: %w", s.name, err)
		}
	}
	if s.stuck {
		if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s.name),
			SecretString: aws.String(`{"provider":"gateway"}`), VersionStages: []string{"AWSPENDING"}}); err != nil {
			return fmt.Errorf("stick %s: %w", s.name, err)
		}
	}
	return nil
}

// readDates fills since and next from Secrets Manager (moto stamps them; a
// test cannot choose them).
func readDates(t *testing.T, sm *secretsmanager.Client, fleet map[string]*fleetSecret) {
	p := secretsmanager.NewListSecretsPaginator(sm, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.SecretList {
			s := fleet[aws.ToString(e.Name)]
			if s == nil {
				continue
			}
			switch {
			case e.LastRotatedDate != nil && !e.LastRotatedDate.IsZero():
				s.since, s.hasSince = *e.LastRotatedDate, true
			case e.CreatedDate != nil:
				s.since, s.hasSince = *e.CreatedDate, true
			}
			if e.NextRotationDate != nil {
				s.next = *e.NextRotationDate
			}
		}
	}
}

type datumKey struct{ name, secret string }

// expected computes what the auditor must publish at now, from what the test
// made (rules, stuck states) and the dates moto stamped.
func expected(t *testing.T, fleet map[string]*fleetSecret, now time.Time) map[datumKey]float64 {
	want := map[datumKey]float64{}
	var managed, stuck, disabled, overdue int
	maxRatio := 0.0
	for _, s := range fleet {
		if !s.managed {
			continue
		}
		if !s.hasSince {
			t.Fatalf("%s: moto gave no date", s.name)
		}
		managed++
		age := now.Sub(s.since)
		want[datumKey{audit.MetricKeyAgeDays, s.name}] = age.Hours() / 24
		if s.days > 0 {
			r := float64(age) / float64(time.Duration(s.days)*24*time.Hour)
			want[datumKey{audit.MetricKeyAgeRatio, s.name}] = r
			maxRatio = max(maxRatio, r)
			if now.After(s.next.Add(audit.DefaultRotationWindow)) {
				overdue++
			}
		} else {
			disabled++
		}
		if s.stuck {
			stuck++
		}
	}
	want[datumKey{audit.MetricManagedSecrets, ""}] = float64(managed)
	want[datumKey{audit.MetricStuckRotations, ""}] = float64(stuck)
	want[datumKey{audit.MetricRotationDisabled, ""}] = float64(disabled)
	want[datumKey{audit.MetricRotationOverdue, ""}] = float64(overdue)
	want[datumKey{audit.MetricMaxKeyAgeRatio, ""}] = maxRatio
	want[datumKey{audit.MetricAuditorHeartbeat, ""}] = 1
	if managed != auditFleetSize || stuck == 0 || disabled == 0 || overdue == 0 || overdue == managed-disabled {
		t.Fatalf("the fleet is not assorted: %d managed, %d stuck, %d disabled, %d overdue", managed, stuck, disabled, overdue)
	}
	return want
}

// TestAuditorAgainstMoto audits 2,000 managed secrets in moto, through a
// counting proxy, and checks every published value and the number of calls;
// then runs the compiled auditor once under the runtime emulator.
func TestAuditorAgainstMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 2,000 secrets in moto")
	}
	moto := testenv.StartMoto(t, nil)
	direct := moto.Config(t)
	// Creating 2,000 secrets one call at a time on a loaded machine meets
	// the odd connection moto's server closes under a reused keep-alive
	// connection: the set-up (not what is tested) retries like the SDK's
	// default.
	sm := secretsmanager.NewFromConfig(direct, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 3 })
	fleet := makeFleet(t, sm)
	readDates(t, sm, fleet)

	calls, proxyURL := startCountingProxy(t, moto.URL)
	// moto's configuration, pointed at the proxy (a configuration source
	// wins over a later change of BaseEndpoint).
	cfg := (&testenv.Moto{URL: proxyURL}).Config(t)
	var mu sync.Mutex
	var batches []*cloudwatch.PutMetricDataInput
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("capture", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(*cloudwatch.PutMetricDataInput); ok {
				mu.Lock()
				batches = append(batches, p)
				mu.Unlock()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
	// The CloudWatch client the function builds: the query protocol, since moto is on loopback.
	cw := function.NewCloudWatch(func(string) string { return "" }, cfg)
	const namespace = "KeyRotationAuditTest"
	// Forty days after the fleet was made: keys of every age ratio, some rotations overdue.
	now := time.Now().Add(40 * 24 * time.Hour).Truncate(time.Second)
	a := audit.New(secretsmanager.NewFromConfig(cfg), cw, audit.Options{Namespace: namespace, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	rep, err := a.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	want := expected(t, fleet, now)
	got := map[datumKey]float64{}
	for _, b := range batches {
		if aws.ToString(b.Namespace) != namespace || len(b.MetricData) > audit.MaxMetricsPerCall {
			t.Fatalf("a batch of %d metrics in %q", len(b.MetricData), aws.ToString(b.Namespace))
		}
		for _, d := range b.MetricData {
			k := datumKey{name: aws.ToString(d.MetricName)}
			for _, dim := range d.Dimensions {
				if aws.ToString(dim.Name) != audit.DimensionSecretName {
					t.Fatalf("dimension %s on %s", aws.ToString(dim.Name), k.name)
				}
				k.secret = aws.ToString(dim.Value)
			}
			if _, dup := got[k]; dup {
				t.Fatalf("%v published twice", k)
			}
			got[k] = aws.ToFloat64(d.Value)
		}
	}
	var wrong []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			wrong = append(wrong, fmt.Sprintf("%s %s: got %v (published %v), want %v", k.name, k.secret, g, ok, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			wrong = append(wrong, fmt.Sprintf("%s %s published, not expected", k.name, k.secret))
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 {
		t.Fatalf("%d wrong values, first: %v", len(wrong), wrong[:min(5, len(wrong))])
	}
	if rep.Secrets != auditFleetSize || rep.Metrics != len(want) {
		t.Fatalf("report: %d secrets, %d metrics; want %d, %d", rep.Secrets, rep.Metrics, auditFleetSize, len(want))
	}

	counts, failed := calls.snapshot()
	smCalls, cwCalls := counts["secretsmanager.ListSecrets"], counts["cloudwatch.PutMetricData"]
	t.Logf("audit of %d secrets: %d Secrets Manager and %d CloudWatch calls, %d metrics; all calls: %v", auditFleetSize, smCalls, cwCalls, len(want), counts)
	if len(failed) > 0 {
		t.Fatalf("moto answered errors: %v", failed)
	}
	if len(counts) != 2 {
		t.Fatalf("calls other than ListSecrets and PutMetricData: %v", counts)
	}
	if per := auditFleetSize / 1000; smCalls > 21*per || cwCalls > 2*per || cwCalls != len(batches) {
		t.Fatalf("%d Secrets Manager and %d CloudWatch calls (%d batches captured) for %d secrets: budget 21 and 2 per 1,000",
			smCalls, cwCalls, len(batches), auditFleetSize)
	}
	assertStoredInMoto(t, direct, namespace, now, want)

	// The compiled auditor, under the runtime emulator, against the same moto.
	calls.reset()
	fn := testenv.StartFunction(t, "auditor", append(moto.Env(), "AWS_ENDPOINT_URL="+proxyURL, "AWS_MAX_ATTEMPTS=1", "METRICS_NAMESPACE=KeyRotationRIE"))
	event, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "events", "audit-schedule.json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := fn.Invoke(ctx, event)
	if err != nil {
		t.Fatalf("auditor under the emulator: %v\n%s", err, fn.Logs())
	}
	var fnRep audit.Report
	if err := json.Unmarshal(out, &fnRep); err != nil {
		t.Fatal(err)
	}
	if fnRep.Secrets != auditFleetSize || len(fnRep.Stuck) != int(want[datumKey{audit.MetricStuckRotations, ""}]) ||
		len(fnRep.RotationDisabled) != int(want[datumKey{audit.MetricRotationDisabled, ""}]) || fnRep.Metrics != len(want) {
		t.Fatalf("the compiled auditor reports %d secrets, %d stuck, %d disabled, %d metrics", fnRep.Secrets, len(fnRep.Stuck), len(fnRep.RotationDisabled), fnRep.Metrics)
	}
	counts, failed = calls.snapshot()
	if len(failed) > 0 || counts["cloudwatch.PutMetricData"] == 0 || counts["cloudwatch.PutMetricData"] > 2*auditFleetSize/1000 ||
		counts["secretsmanager.ListSecrets"] > 21*auditFleetSize/1000 || len(counts) != 2 {
		t.Fatalf("the compiled auditor's calls: %v, errors %v\n%s", counts, failed, fn.Logs())
	}
	// The heartbeat the template's auditor-heartbeat alarm watches comes from the compiled function too.
	n := readBack(t, direct, "KeyRotationRIE", time.Now(), []datumKey{{audit.MetricManagedSecrets, ""}, {audit.MetricAuditorHeartbeat, ""}})
	if n[datumKey{audit.MetricManagedSecrets, ""}] != auditFleetSize || n[datumKey{audit.MetricAuditorHeartbeat, ""}] != 1 {
		t.Fatalf("ManagedSecrets and AuditorHeartbeat read back from moto: %v", n)
	}
}

// assertStoredInMoto reads the fleet metrics and a sample of per-secret
// metrics back from moto's CloudWatch (over the query protocol).
func assertStoredInMoto(t *testing.T, cfg aws.Config, namespace string, at time.Time, want map[datumKey]float64) {
	var keys []datumKey
	for k := range want {
		if k.secret == "" || k.secret[len(k.secret)-5:] == "0/key" && len(keys) < 60 {
			keys = append(keys, k)
		}
	}
	got := readBack(t, cfg, namespace, at, keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Fatalf("moto holds %s %s = %v, want %v", k.name, k.secret, got[k], want[k])
		}
	}
}

// readBack returns the Maximum of each metric around at, in one GetMetricData call.
func readBack(t *testing.T, cfg aws.Config, namespace string, at time.Time, keys []datumKey) map[datumKey]float64 {
	cw := function.NewCloudWatch(func(string) string { return "" }, cfg)
	var qs []cwtypes.MetricDataQuery
	for i, k := range keys {
		m := &cwtypes.Metric{Namespace: aws.String(namespace), MetricName: aws.String(k.name)}
		if k.secret != "" {
			m.Dimensions = []cwtypes.Dimension{{Name: aws.String(audit.DimensionSecretName), Value: aws.String(k.secret)}}
		}
		qs = append(qs, cwtypes.MetricDataQuery{Id: aws.String(fmt.Sprintf("q%d", i)), MetricStat: &cwtypes.MetricStat{Metric: m, Period: aws.Int32(60), Stat: aws.String("Maximum")}})
	}
	out, err := cw.GetMetricData(context.Background(), &cloudwatch.GetMetricDataInput{MetricDataQueries: qs,
		StartTime: aws.Time(at.Add(-10 * time.Minute)), EndTime: aws.Time(at.Add(10 * time.Minute))})
	if err != nil {
		t.Fatalf("read metrics back from moto: %v", err)
	}
	got := map[datumKey]float64{}
	for _, r := range out.MetricDataResults {
		var i int
		fmt.Sscanf(aws.ToString(r.Id), "q%d", &i)
		if len(r.Values) > 0 {
			got[keys[i]] = r.Values[0]
		}
	}
	return got
}
