package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/internal/function"
	"github.com/keyrotor/keyrotor/internal/function/all"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/providers"
)

// Defaults of the fleet figures (BenchOptions).
const (
	DefaultFleetSecrets     = 200
	DefaultFleetIAMSecrets  = 8
	DefaultFleetConcurrency = 8
	DefaultFleetInFlight    = 32
	DefaultAuditSecrets     = 10000
	// TargetFleet is the README's target: DefaultFleetSecrets emergency
	// rotations on this stack, every old key confirmed dead, within it.
	TargetFleet = 60 * time.Second
)

// FleetResult is what the fleet figure measured.
type FleetResult struct {
	Secrets, Gateway, IAM int
	Concurrency, InFlight int
	// Wall is the time from the first RotateSecret to the last old key
	// confirmed dead at its vendor; Rotated to the last RotateSecret's
	// answer (every new key current).
	Wall, Rotated time.Duration
	// MedianGateway and MedianIAM are the median times of one secret's
	// emergency rotation, from its start to its old key confirmed dead.
	MedianGateway, MedianIAM time.Duration
	Failed                   []string // secret: error
	// Calls are the Secrets Manager calls of the rotation functions, of the
	// revoker and of the driver (the operator's Rotate), over the run.
	FunctionCalls, RevokerCalls, DriverCalls APICalls
	// Dead is how many old keys the vendors no longer know, checked by the
	// bench itself after the run (gateway: its live keys; IAM:
	// ListAccessKeys).
	Dead int
}

// PerSecond is the rotations per second over the wall time.
func (r FleetResult) PerSecond() float64 { return float64(r.Secrets) / r.Wall.Seconds() }

// runFleetBench starts a stack with opts.Concurrency emulators per function,
// creates the fleet (mostly gateway secrets: an IAM rotation waits 15 s for
// its key to settle, rotation/settle.go), and rotates every secret as an
// emergency with at most opts.InFlight at once, until each old key is
// confirmed dead.
func runFleetBench(ctx context.Context, w io.Writer, opts BenchOptions) (_ FleetResult, err error) {
	res := FleetResult{Secrets: opts.FleetSecrets, IAM: min(opts.FleetIAMSecrets, opts.FleetSecrets), Concurrency: opts.Concurrency, InFlight: opts.InFlight}
	res.Gateway = res.Secrets - res.IAM
	fmt.Fprintf(w, "\nfleet: starting the stack with %d emulators per function, creating %d secrets (%d gateway, %d iam)...\n",
		res.Concurrency, res.Secrets, res.Gateway, res.IAM)
	s, err := Start(ctx, Options{
		RepoRoot: opts.RepoRoot, Functions: []string{"gateway", "iam", "revoker"}, NoDemoSecrets: true,
		GracePeriod: time.Second, Logs: opts.Logs, Concurrency: res.Concurrency,
	})
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := s.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	names := make([]string, res.Secrets)
	users := map[string]string{} // IAM secret -> its user
	for i := range names {
		if i < res.IAM {
			names[i] = fmt.Sprintf("fleet/iam-%03d", i)
			users[names[i]] = fmt.Sprintf("keyrotor-fleet-%03d", i)
		} else {
			names[i] = fmt.Sprintf("fleet/gateway-%03d", i)
		}
	}
	setUp := time.Now()
	// The secrets are created (and rotated once, for their first key) as
	// fast as the stack allows; that is not measured.
	for _, o := range rotateFleet(ctx, names, res.InFlight, func(ctx context.Context, name string) (operator.RotateResult, error) {
		var err error
		if u, ok := users[name]; ok {
			_, err = s.CreateIAMSecret(ctx, name, u, time.Second)
		} else {
			_, err = s.CreateGatewaySecret(ctx, name, time.Second)
		}
		return operator.RotateResult{}, err
	}) {
		if o.Err != nil {
			return res, fmt.Errorf("fleet: create %s: %w", o.Secret, o.Err)
		}
	}
	fmt.Fprintf(w, "fleet: %d secrets created in %s; emergency-rotating all of them, at most %d rotations in flight...\n",
		res.Secrets, time.Since(setUp).Round(100*time.Millisecond), res.InFlight)

	rotated := &lastTime{}
	op, driverCalls := fleetOperator(s, res.InFlight, rotated)
	fnBefore, revBefore := s.FunctionAPICalls("gateway"), s.FunctionAPICalls("revoker")
	iamBefore := s.FunctionAPICalls("iam")
	start := time.Now()
	// Every secret's Rotate runs at once; the slots bound the rotations
	// in flight (see rotationSlots), not the waits for the revoker.
	outcomes := rotateFleet(ctx, names, len(names), func(ctx context.Context, name string) (operator.RotateResult, error) {
		return op.Rotate(ctx, name, operator.RotateOptions{Emergency: true, Timeout: 5 * time.Minute})
	})
	res.Wall, res.Rotated = time.Since(start), rotated.get().Sub(start)
	res.FunctionCalls = addCalls(s.FunctionAPICalls("gateway").Sub(fnBefore), s.FunctionAPICalls("iam").Sub(iamBefore)).onlyService("secretsmanager")
	res.RevokerCalls = s.FunctionAPICalls("revoker").Sub(revBefore).onlyService("secretsmanager")
	res.DriverCalls = driverCalls.snapshot().onlyService("secretsmanager")

	var gw, im []time.Duration
	for _, o := range outcomes {
		if _, ok := users[o.Secret]; ok {
			im = append(im, o.Took)
		} else {
			gw = append(gw, o.Took)
		}
		if o.Err != nil {
			res.Failed = append(res.Failed, o.Secret+": "+o.Err.Error())
			continue
		}
		dead, err := s.keyDead(ctx, o.Secret, users[o.Secret], o.Result.OldKeyID)
		if err != nil {
			return res, err
		}
		if dead && o.Result.OldKeyRevoked {
			res.Dead++
		} else {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: the old key %s is still live (the operator said revoked=%v)", o.Secret, o.Result.OldKeyID, o.Result.OldKeyRevoked))
		}
	}
	res.MedianGateway, res.MedianIAM = median(gw), median(im)
	return res, nil
}

// keyDead reports whether the vendor no longer knows keyID, the old key of
// secret (an IAM secret has user; a gateway secret none).
func (s *Stack) keyDead(ctx context.Context, secret, user, keyID string) (bool, error) {
	if keyID == "" {
		return false, nil
	}
	if user != "" {
		ids, err := s.AccessKeyIDs(ctx, user)
		return err == nil && !slices.Contains(ids, keyID), err
	}
	for _, k := range s.LiveKeys(secret) {
		if k.ID == keyID {
			return false, nil
		}
	}
	return true, nil
}

// fleetOutcome is one secret's result in rotateFleet.
type fleetOutcome struct {
	Secret string
	Result operator.RotateResult
	Err    error
	Took   time.Duration
}

// rotateFleet runs rotate on every secret, at most inFlight at once, and
// returns the outcomes in the order of secrets.
//
// It stands in for `keyrotor rotate --emergency` over a selection
// (internal/operator's fleet driver, issue 13 §1), which was being written
// at the same time: like it, it rotates through RotateSecret (the
// operator's Rotate) with a bound on the rotations in flight. Once that
// driver exists, runFleetBench should call it here with the fleet's names
// as the selection, so that the figures measure the command itself
// (including its per-region write budget and backoff).
func rotateFleet(ctx context.Context, secrets []string, inFlight int, rotate func(context.Context, string) (operator.RotateResult, error)) []fleetOutcome {
	out := make([]fleetOutcome, len(secrets))
	slots := make(chan struct{}, max(inFlight, 1))
	var wg sync.WaitGroup
	for i, name := range secrets {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			start := time.Now()
			r, err := rotate(ctx, name)
			out[i] = fleetOutcome{Secret: name, Result: r, Err: err, Took: time.Since(start)}
		}()
	}
	wg.Wait()
	return out
}

// fleetOperator returns the operator the fleet is rotated with, as the CLI
// builds it (the providers of internal/function, against the stack), and
// the count of its AWS calls; rotated learns when each RotateSecret
// answers.
func fleetOperator(s *Stack, inFlight int, rotated *lastTime) (*operator.Operator, *callCounter) {
	calls := &callCounter{}
	cfg := s.Config()
	// Many rotations in flight meet the odd keep-alive connection moto's
	// server drops: retry as the SDK's default does.
	cfg.RetryMaxAttempts = 3
	calls.count(&cfg)
	clients := lambdafn.NewClients(cfg)
	env := func(name string) string {
		if name == "GATEWAY_API_BASE_URL" {
			return s.GatewayURL
		}
		return ""
	}
	var mu sync.Mutex
	built := map[string]providers.Provider{}
	return &operator.Operator{
		SM: rotationSlots{SecretsManager: secretsmanager.NewFromConfig(cfg), slots: make(chan struct{}, max(inFlight, 1)), last: rotated},
		Providers: func(name string) (providers.Provider, error) {
			mu.Lock()
			defer mu.Unlock()
			if p, ok := built[name]; ok {
				return p, nil
			}
			b, ok := all.Builders()[name]
			if !ok {
				return nil, fmt.Errorf("the fleet bench has no provider %q", name)
			}
			p, err := b(env, clients)
			if err != nil {
				return nil, err
			}
			built[name] = p
			return p, nil
		},
		IAM:          iam.NewFromConfig(cfg),
		PollInterval: 250 * time.Millisecond,
	}, calls
}

// rotationSlots bounds the RotateSecret calls in progress. moto runs the
// four steps before RotateSecret answers, so this bounds the rotations in
// flight in the functions (on AWS RotateSecret answers at once and the
// fleet driver must bound them otherwise), while the emergency's wait for
// the revoker holds no slot: the revoker first sees the grace-0 message
// before finishSecret moves the label and looks again after
// revocation.DefaultUnfinishedRetry (30 s), so each old key dies about 30 s
// after its rotation, whatever the fleet's size.
type rotationSlots struct {
	operator.SecretsManager
	slots chan struct{}
	last  *lastTime // when the last RotateSecret answered
}

// lastTime is the latest of the times it was given.
type lastTime struct {
	mu sync.Mutex
	t  time.Time
}

func (l *lastTime) mark() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t = time.Now()
}

func (l *lastTime) get() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t
}

func (r rotationSlots) RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { r.last.mark(); <-r.slots }()
	return r.SecretsManager.RotateSecret(ctx, in, optFns...)
}

// callCounter counts the AWS calls of the clients built from a
// configuration it was given to (count), by service and operation, as the
// SDK names them ("secretsmanager.ListSecrets"); retries are not calls.
type callCounter struct {
	mu    sync.Mutex
	calls APICalls
}

func (c *callCounter) count(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keyrotor-bench-count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			svc := strings.ToLower(strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", ""))
			c.mu.Lock()
			if c.calls == nil {
				c.calls = APICalls{}
			}
			c.calls[svc+"."+awsmiddleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
}

func (c *callCounter) snapshot() APICalls {
	c.mu.Lock()
	defer c.mu.Unlock()
	return addCalls(c.calls)
}

// addCalls returns the sum of the counts.
func addCalls(cs ...APICalls) APICalls {
	out := APICalls{}
	for _, c := range cs {
		for k, v := range c {
			out[k] += v
		}
	}
	return out
}

func (a APICalls) total() int {
	n := 0
	for _, v := range a {
		n += v
	}
	return n
}

func printFleet(w io.Writer, r FleetResult) {
	per := func(a APICalls) string { return fmt.Sprintf("%.1f", float64(a.total())/float64(r.Secrets)) }
	writes := func(a APICalls) int {
		return a["secretsmanager.PutSecretValue"] + a["secretsmanager.UpdateSecretVersionStage"]
	}
	verdict := "within"
	if r.Wall > TargetFleet || len(r.Failed) > 0 {
		verdict = "OVER"
	}
	fmt.Fprintf(w, "\nkeyrotor bench: fleet emergency rotation on the local stack (%d CPUs)\n\n", runtime.NumCPU())
	fmt.Fprintf(w, "  secrets                        %d (%d gateway, %d iam: an IAM rotation settles for 15 s)\n", r.Secrets, r.Gateway, r.IAM)
	fmt.Fprintf(w, "  emulators per function         %d; rotations (RotateSecret) in flight at most %d\n", r.Concurrency, r.InFlight)
	fmt.Fprintf(w, "  wall, until every old key dead %.1f s (%s the target of %d in %s)\n", r.Wall.Seconds(), verdict, DefaultFleetSecrets, TargetFleet)
	fmt.Fprintf(w, "  rotations per second           %.2f (every new key current after %.1f s: %.2f/s)\n",
		r.PerSecond(), r.Rotated.Seconds(), float64(r.Secrets)/r.Rotated.Seconds())
	fmt.Fprintf(w, "  one secret, start to old key dead (median)  gateway %.1f s, iam %.1f s\n", r.MedianGateway.Seconds(), r.MedianIAM.Seconds())
	fmt.Fprintf(w, "  old keys dead (checked at the vendors)      %d of %d\n", r.Dead, r.Secrets)
	fmt.Fprintf(w, "  Secrets Manager calls per rotation          %s: rotation functions %s, revoker %s, driver %s\n",
		fmt.Sprintf("%.1f", float64(r.FunctionCalls.total()+r.RevokerCalls.total()+r.DriverCalls.total())/float64(r.Secrets)),
		per(r.FunctionCalls), per(r.RevokerCalls), per(r.DriverCalls))
	fmt.Fprintf(w, "  writes per rotation (PutSecretValue + UpdateSecretVersionStage, the 50/s quota)  %.1f\n",
		float64(writes(r.FunctionCalls)+writes(r.RevokerCalls)+writes(r.DriverCalls))/float64(r.Secrets))
	fmt.Fprintf(w, "\n  rotation functions: %s\n  revoker: %s\n  driver: %s\n", r.FunctionCalls, r.RevokerCalls, r.DriverCalls)
	for i, f := range r.Failed {
		if i == 10 {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Failed)-10)
			break
		}
		fmt.Fprintf(w, "  FAILED %s\n", f)
	}
	fmt.Fprintln(w, "\nThe driver is the bench's own loop over the operator's emergency Rotate (TagResource,")
	fmt.Fprintln(w, "RotateSecret, then polling until the vendor no longer knows the old key), standing in for")
	fmt.Fprintln(w, "`keyrotor rotate --emergency` over a selection. Each old key dies about 30 s after its")
	fmt.Fprintln(w, "rotation (the revoker's first look precedes finishSecret's label move and it looks again")
	fmt.Fprintln(w, "after revocation.DefaultUnfinishedRetry), so the wall time is the rotations plus ~30 s.")
	fmt.Fprintln(w, "On AWS the write quota bounds a region at 16.7 rotations/s (docs/operations.md); here one")
	fmt.Fprintln(w, "moto process on the machine's cores does.")
}

// AuditResult is what the audit figure measured: the auditor and `keyrotor
// status` over Secrets managed secrets in moto.
type AuditResult struct {
	Secrets                 int
	AuditCalls, StatusCalls APICalls
	AuditWall, StatusWall   time.Duration
	Metrics                 int
	StatusProblems          int
}

// ListBudget and PutBudget are the auditor's call budgets: one ListSecrets
// per page of 100 secrets, one PutMetricData per 1,000 metrics.
func (r AuditResult) ListBudget() int { return ceilDiv(r.Secrets, 100) }
func (r AuditResult) PutBudget() int  { return ceilDiv(r.Metrics, audit.MaxMetricsPerCall) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// runAuditBench starts moto alone, creates n managed secrets (each with a
// gateway key value and a 30-day rotation), and runs the auditor (in
// process, the code of functions/auditor) and `keyrotor status` without
// vendor checks over all of them, counting their calls. It fails when the
// auditor exceeds its budgets.
func runAuditBench(ctx context.Context, w io.Writer, n int, logs io.Writer) (_ AuditResult, err error) {
	res := AuditResult{Secrets: n}
	fmt.Fprintf(w, "\naudit: starting moto and creating %d managed secrets...\n", n)
	dir, err := os.MkdirTemp("", "keyrotor-audit-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	p, endpoint, err := startLauncher(dir, "http://127.0.0.1:1", logs)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := p.stop(3 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	base, err := awsConfig(ctx, endpoint, Region)
	if err != nil {
		return res, err
	}
	setup := base.Copy()
	setup.RetryMaxAttempts = 3
	sm := secretsmanager.NewFromConfig(setup)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("audit/%05d", i)
	}
	start := time.Now()
	for _, o := range rotateFleet(ctx, names, 8, func(ctx context.Context, name string) (operator.RotateResult, error) {
		_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name:         aws.String(name),
			SecretString: aws.String(`{"provider":"gateway","key_id":"key_` + strings.TrimPrefix(name, "audit/") + `","key":"bench-not-a-key"}`),
			Tags: []smtypes.Tag{
				{Key: aws.String("keyrotor:managed"), Value: aws.String("true")},
				{Key: aws.String("keyrotor:grace-period"), Value: aws.String("1h")},
			},
		})
		return operator.RotateResult{}, err
	}) {
		if o.Err != nil {
			return res, fmt.Errorf("audit: create %s: %w", o.Secret, o.Err)
		}
	}
	fmt.Fprintf(w, "audit: %d secrets created in %s; running the auditor and keyrotor status...\n", n, time.Since(start).Round(100*time.Millisecond))

	auditCalls := &callCounter{}
	cfg := base.Copy()
	auditCalls.count(&cfg)
	a := audit.New(secretsmanager.NewFromConfig(cfg), function.NewCloudWatch(func(string) string { return "" }, cfg),
		audit.Options{Namespace: "KeyRotationBench", Logger: slog.New(slog.DiscardHandler)})
	start = time.Now()
	rep, err := a.Run(ctx)
	res.AuditWall = time.Since(start)
	if err != nil {
		return res, err
	}
	res.AuditCalls, res.Metrics = auditCalls.snapshot(), rep.Metrics
	if rep.Secrets != n {
		return res, fmt.Errorf("audit: the auditor saw %d managed secrets, want %d", rep.Secrets, n)
	}

	statusCalls := &callCounter{}
	cfg = base.Copy()
	statusCalls.count(&cfg)
	op := &operator.Operator{SM: secretsmanager.NewFromConfig(cfg)}
	start = time.Now()
	sts, err := op.Status(ctx, nil, operator.StatusOptions{NoVendor: true})
	res.StatusWall = time.Since(start)
	if err != nil {
		return res, err
	}
	res.StatusCalls = statusCalls.snapshot()
	if len(sts) != n {
		return res, fmt.Errorf("audit: keyrotor status listed %d secrets, want %d", len(sts), n)
	}
	for _, st := range sts {
		if len(st.Problems) > 0 {
			res.StatusProblems++
		}
	}
	if l, p := res.AuditCalls["secretsmanager.ListSecrets"], res.AuditCalls["cloudwatch.PutMetricData"]; l > res.ListBudget() || p > res.PutBudget() {
		return res, fmt.Errorf("audit: the auditor made %d ListSecrets and %d PutMetricData calls for %d secrets and %d metrics, over its budget of %d and %d",
			l, p, n, res.Metrics, res.ListBudget(), res.PutBudget())
	}
	return res, nil
}

func printAudit(w io.Writer, r AuditResult) {
	fmt.Fprintf(w, "\nkeyrotor bench: %d managed secrets on moto\n\n", r.Secrets)
	fmt.Fprintf(w, "  auditor          %.1f s, %d calls: ListSecrets %d (budget ceil(%d/100) = %d), PutMetricData %d (budget ceil(%d metrics/1000) = %d)\n",
		r.AuditWall.Seconds(), r.AuditCalls.total(), r.AuditCalls["secretsmanager.ListSecrets"], r.Secrets, r.ListBudget(),
		r.AuditCalls["cloudwatch.PutMetricData"], r.Metrics, r.PutBudget())
	fmt.Fprintf(w, "  keyrotor status  %.1f s, %d calls (%s), no vendor checks\n", r.StatusWall.Seconds(), r.StatusCalls.total(), r.StatusCalls)
}
