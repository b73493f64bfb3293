package local

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/providers/gateway"
	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
)

//go:embed moto_launcher.py
var motoLauncher []byte

// Region is the stack's region unless Options.Regions names others; the
// credentials are the stack's (moto accepts any credentials; its account is
// 123456789012).
const (
	Region          = "us-east-1"
	AccessKeyID     = "testing"
	SecretAccessKey = "testing"
)

// Names the stack registers in moto.
const (
	RoleName            = "keyrotor-local-lambda"
	QueueName           = "keyrotor-revocations"
	DLQName             = "keyrotor-revocations-dlq"
	GatewayAdminSecret  = "keyrotor/admin/gateway" // under the template's AdminSecretPrefix
	DemoGatewaySecret   = "demo/gateway"
	DemoIAMSecret       = "demo/iam"
	DemoIAMUser         = "keyrotor-demo"
	RotationIntervalDay = 30 // AutomaticallyAfterDays of the secrets the stack configures
)

// Options configure Start. The zero value starts the full stack with the
// defaults below.
type Options struct {
	// RepoRoot is the keyrotor repository to build the functions from
	// (default: found above the working directory).
	RepoRoot string
	// GracePeriod is the keyrotor:grace-period tag of the demo secrets and
	// the functions' GRACE_PERIOD (default 5s).
	GracePeriod time.Duration
	// MaxRevocationDelay is the revoker's MAX_REVOCATION_DELAY (default
	// 1ms): how long past the grace period a revocation may wait for the new
	// key to be used and the old one to fall silent. The revoker looks again
	// only every 5 minutes, so the local default revokes right after the
	// grace period; raise it to watch the revoker defer.
	MaxRevocationDelay time.Duration
	// VisibilityTimeout of the revocation queue (default 10s): how soon a
	// message the revoker failed comes back.
	VisibilityTimeout time.Duration
	// MaxReceiveCount of the queue's RedrivePolicy (default 5, as in the
	// template).
	MaxReceiveCount int
	// BatchSize of the revoker's event-source poller (default 10).
	BatchSize int32
	// AuditInterval is how often the auditor is invoked when it exists
	// (default 1 minute; its first run is right after start).
	AuditInterval time.Duration
	// GatewayPropagationDelay is how long the reference gateway refuses a
	// new key (default 0).
	GatewayPropagationDelay time.Duration
	// APIGatewayDataPlaneLag is how long the API Gateway data plane
	// stand-in (APIGatewayDataPlane, the apigateway function's
	// APIGATEWAY_CANARY_URL) refuses a key after it first finds it usable
	// (0: DefaultDataPlaneLag; negative: no lag).
	APIGatewayDataPlaneLag time.Duration
	// Functions limits the functions the stack builds and runs to these
	// names (default: every folder of functions/, see FunctionNames). A
	// name the repository does not have is an error.
	Functions []string
	// NoDemoSecrets skips demo/gateway and demo/iam.
	NoDemoSecrets bool
	// Regions are the regions the stack runs its functions, queues and
	// pollers in, each as a deployment of the template would (default:
	// Region only). The first is the stack's own: the demo secrets, Env's
	// AWS_REGION and the Stack's fields and methods are in it; the others
	// are reached with InRegion. Every region costs one emulator per
	// function.
	Regions []string
	// LogLevel is the functions' LOG_LEVEL (default info).
	LogLevel string
	// Logs receives every process's output, line by line, prefixed with its
	// name. Nil keeps it in memory only (Function.Logs).
	Logs io.Writer
	// Concurrency is how many emulators run each function (default 1).
	// Lambda runs one instance per concurrent invoke; one emulator handles
	// one invoke at a time, so with 1 the invokes of a function are
	// queued. More lets rotations of many secrets run side by side, and
	// the revoker's queue is polled by as many pollers, as Lambda scales an
	// SQS event source. Each instance is a process pair (emulator and
	// bootstrap) per function and region.
	Concurrency int
	// Activity receives one line per rotation step outcome, scheduled
	// revocation, revocation and audit run of the functions, read from
	// their JSON logs (ActivityLine): what `keyrotor local` prints while it
	// runs. Nil prints nothing.
	Activity io.Writer
}

func (o *Options) defaults() error {
	if o.RepoRoot == "" {
		root, err := FindRepoRoot("")
		if err != nil {
			return err
		}
		o.RepoRoot = root
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = 5 * time.Second
	}
	if o.MaxRevocationDelay <= 0 {
		o.MaxRevocationDelay = time.Millisecond
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 10 * time.Second
	}
	if o.MaxReceiveCount <= 0 {
		o.MaxReceiveCount = 5
	}
	if o.AuditInterval <= 0 {
		o.AuditInterval = time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.APIGatewayDataPlaneLag == 0 {
		o.APIGatewayDataPlaneLag = DefaultDataPlaneLag
	}
	regions, err := checkRegions(o.Regions)
	if err != nil {
		return err
	}
	o.Regions = regions
	return nil
}

// Stack is a running local stack. Every server listens on 127.0.0.1. Its
// queue, function and poller fields are those of its first region (see
// InRegion for the others).
type Stack struct {
	// Endpoint is moto's URL: AWS_ENDPOINT_URL for clients of the stack.
	Endpoint string
	// GatewayURL is the reference gateway's base URL.
	GatewayURL string
	// Gateway is the reference gateway's state (live keys, ping counts).
	Gateway *gateway.Server
	// GatewayFaults makes the gateway's admin API fail (vendor outage).
	GatewayFaults *gateway.FaultInjector
	// SendGrid stands in for SendGrid's API when the stack runs the
	// sendgrid function (else nil); SendGridURL is its base URL, the
	// functions' SENDGRID_API_BASE_URL.
	SendGrid    *sendgridfake.Server
	SendGridURL string
	// QueueURL and DLQURL are the revocation queue and its dead-letter queue.
	QueueURL, DLQURL string
	// Functions are the first region's running functions, by name (gateway,
	// iam, revoker, and auditor when it exists).
	Functions map[string]*Function
	// Revocations is the first region's revoker poller.
	Revocations *Poller
	// WorkDir holds the binaries; Stop removes it.
	WorkDir string

	opts       Options
	adminToken string
	regions    []*RegionStack // Options.Regions, in order
	moto       *process
	rie        string
	paths      map[string]string // the built bootstraps by function
	servers    []*http.Server
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	stopOnce sync.Once
	stopErr  error
}

// Start builds the functions for this machine and starts the stack: moto
// behind the launcher, the reference gateway and, in each region, one
// emulator per function, the revoker's poller and the auditor's schedule; it
// registers the role, the functions, the queues and the gateway's admin
// secret in moto and, unless NoDemoSecrets, creates demo/gateway and
// demo/iam in the first region and rotates each once (their first key).
// On error everything started is stopped. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	s := &Stack{opts: opts}
	if opts.Activity != nil {
		s.opts.Logs = &activityWriter{out: opts.Activity, next: opts.Logs}
	}
	if s.WorkDir, err = os.MkdirTemp("", "keyrotor-local-"); err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	rie, err := FindRIE()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("python3"); err != nil {
		return nil, errors.New("python3 (with moto 5.2.1) is required by the local stack")
	}

	// Build while moto starts.
	names, err := selectFunctions(opts.RepoRoot, opts.Functions)
	if err != nil {
		return nil, err
	}
	type buildResult struct {
		paths map[string]string
		err   error
	}
	built := make(chan buildResult, 1)
	go func() {
		p, err := BuildFunctions(ctx, opts.RepoRoot, filepath.Join(s.WorkDir, "functions"), names)
		built <- buildResult{p, err}
	}()
	buildDone := false
	defer func() {
		if err != nil && !buildDone {
			<-built // let the build finish before the work dir goes
		}
	}()

	front := &frontHandler{}
	frontURL, err := s.serve(front)
	if err != nil {
		return nil, err
	}
	if err := s.startMoto(frontURL); err != nil {
		return nil, err
	}
	for _, name := range opts.Regions {
		r, err := newRegionStack(ctx, s, name)
		if err != nil {
			return nil, err
		}
		s.regions = append(s.regions, r)
	}
	if err := s.startGateway(); err != nil {
		return nil, err
	}
	if err := s.startSendGrid(names); err != nil {
		return nil, err
	}
	for _, r := range s.regions {
		if err := r.createQueues(ctx); err != nil {
			return nil, err
		}
	}

	b := <-built
	buildDone = true
	if b.err != nil {
		return nil, b.err
	}
	s.rie, s.paths = rie, b.paths
	for _, r := range s.regions {
		if err := r.startFunctions(names); err != nil {
			return nil, err
		}
	}
	first := s.primary()
	s.Functions, s.QueueURL, s.DLQURL = first.Functions, first.QueueURL, first.DLQURL
	front.set(s.regions)
	if err := s.registerFunctions(ctx); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, r := range s.regions {
		r.run(runCtx)
	}
	s.Revocations = first.Revocations

	if !opts.NoDemoSecrets {
		if _, err := s.CreateGatewaySecret(ctx, DemoGatewaySecret, opts.GracePeriod); err != nil {
			return nil, err
		}
		if _, ok := s.Functions["iam"]; ok {
			if _, err := s.CreateIAMSecret(ctx, DemoIAMSecret, DemoIAMUser, opts.GracePeriod); err != nil {
				return nil, err
			}
		}
	}
	// The auditor's schedule starts once the demo secrets are rotated, so
	// that its first run does not see their first rotation in progress.
	for _, r := range s.regions {
		r.runAudits(runCtx)
	}
	return s, nil
}

// selectFunctions returns the functions of the repository named in want, or
// all of them when want is empty.
func selectFunctions(repoRoot string, want []string) ([]string, error) {
	all := FunctionNames(repoRoot)
	if len(all) == 0 {
		return nil, fmt.Errorf("start the local stack: no function under %s", filepath.Join(repoRoot, "functions"))
	}
	if len(want) == 0 {
		return all, nil
	}
	have := map[string]bool{}
	for _, n := range all {
		have[n] = true
	}
	var names []string
	for _, n := range want {
		if !have[n] {
			return nil, fmt.Errorf("start the local stack: the repository has no function %q (it has %s)", n, strings.Join(all, ", "))
		}
		names = append(names, n)
	}
	return names, nil
}

// serve serves h on 127.0.0.1 and a free port until Stop; it returns the URL.
func (s *Stack) serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

func (s *Stack) startMoto(frontURL string) error {
	var err error
	s.moto, s.Endpoint, err = startLauncher(s.WorkDir, frontURL, s.opts.Logs)
	return err
}

// startLauncher writes the moto launcher into workDir and starts it on
// 127.0.0.1 and a free port, forwarding Lambda invokes to lambdaEndpoint; it
// returns the process and moto's URL once moto answers.
func startLauncher(workDir, lambdaEndpoint string, logs io.Writer) (*process, string, error) {
	launcher := filepath.Join(workDir, "moto_launcher.py")
	if err := os.WriteFile(launcher, motoLauncher, 0o644); err != nil {
		return nil, "", fmt.Errorf("write the moto launcher: %w", err)
	}
	return runLauncher(launcher, lambdaEndpoint, logs)
}

// runLauncher runs the launcher script (moto_launcher.py, or one that
// imports it) as startLauncher does.
func runLauncher(launcher, lambdaEndpoint string, logs io.Writer) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command("python3", launcher, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "KEYROTOR_LAMBDA_ENDPOINT="+lambdaEndpoint)
	p, err := startProcess("moto", cmd, logs)
	if err != nil {
		return nil, "", err
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHTTP(endpoint+"/moto-api/", p, 30*time.Second); err != nil {
		_ = p.stop(time.Second)
		return nil, "", fmt.Errorf("start moto: %w\n%s", err, p.logs.String())
	}
	return p, endpoint, nil
}

// SetClockOffset moves the clock of the stack's Secrets Manager offset away
// from the real time: the dates it records from now on (version and secret
// creation, rotation) are offset off. Dates already recorded keep their
// value, so a test can create versions "an hour ago" (offset -1h), set the
// offset back to 0 and read them as AWS would show them an hour later. The
// functions and the CLI keep the real clock.
func (s *Stack) SetClockOffset(ctx context.Context, offset time.Duration) error {
	return setClockOffset(ctx, s.Endpoint, offset)
}

func setClockOffset(ctx context.Context, endpoint string, offset time.Duration) error {
	url := fmt.Sprintf("%s/moto-api/keyrotor/clock?offset_seconds=%g", endpoint, offset.Seconds())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return fmt.Errorf("set the Secrets Manager clock: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("set the Secrets Manager clock: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set the Secrets Manager clock: moto answered %s", resp.Status)
	}
	return nil
}

func (s *Stack) startGateway() error {
	s.adminToken = randomToken()
	s.Gateway = gateway.NewServer(gateway.ServerOptions{AdminToken: s.adminToken, PropagationDelay: s.opts.GatewayPropagationDelay})
	s.GatewayFaults = gateway.NewFaultInjector(s.Gateway)
	var err error
	s.GatewayURL, err = s.serve(s.GatewayFaults)
	return err
}

// primary is the stack's first region.
func (s *Stack) primary() *RegionStack { return s.regions[0] }

// InRegion returns the part of the stack in region, or nil when the stack
// does not run in it (Options.Regions).
func (s *Stack) InRegion(region string) *RegionStack {
	for _, r := range s.regions {
		if r.Name == region {
			return r
		}
	}
	return nil
}

// Regions returns the regions the stack runs in, the first one first.
func (s *Stack) Regions() []string {
	out := make([]string, len(s.regions))
	for i, r := range s.regions {
		out[i] = r.Name
	}
	return out
}

// RunAudit asks the first region's scheduler to invoke the auditor now. It
// returns false if the stack runs no auditor.
func (s *Stack) RunAudit() bool { return s.primary().RunAudit() }

// Config returns an AWS configuration for the stack's moto in its first
// region (one attempt per call: moto answers unimplemented actions with
// 500).
func (s *Stack) Config() aws.Config { return s.primary().Config() }

// SecretsManager returns a Secrets Manager client for moto in the first
// region.
func (s *Stack) SecretsManager() *secretsmanager.Client { return s.primary().SecretsManager() }

// Options returns the options the stack runs with, defaults filled in.
func (s *Stack) Options() Options { return s.opts }

// Function returns the first region's function name, or nil.
func (s *Stack) Function(name string) *Function { return s.Functions[name] }

// APICalls returns the AWS API calls the functions of every region made so
// far.
func (s *Stack) APICalls() APICalls {
	out := APICalls{}
	for _, r := range s.regions {
		for _, c := range r.counters {
			for k, v := range c.snapshot() {
				out[k] += v
			}
		}
	}
	return out
}

// FunctionAPICalls returns the AWS API calls the first region's function
// name made so far.
func (s *Stack) FunctionAPICalls(name string) APICalls {
	c, ok := s.primary().counters[name]
	if !ok {
		return APICalls{}
	}
	return c.snapshot()
}

// Metrics returns the metric values every function of every region printed
// as EMF so far.
func (s *Stack) Metrics() []MetricRecord {
	var out []MetricRecord
	for _, r := range s.regions {
		for _, n := range s.functionNames() {
			if f, ok := r.Functions[n]; ok {
				out = append(out, ParseEMF(n, f.Logs())...)
			}
		}
	}
	return out
}

// FunctionNames returns the names of the running functions, sorted (every
// region runs the same).
func (s *Stack) FunctionNames() []string { return s.functionNames() }

func (s *Stack) functionNames() []string {
	names := make([]string, 0, len(s.Functions))
	for n := range s.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EnvVar is one variable of the stack's environment for clients.
type EnvVar struct{ Name, Value string }

// Env returns what points an AWS CLI or SDK (and keyrotor's CLI) at the
// stack: AWS_ENDPOINT_URL and credentials, the gateway URL, the queues and
// the functions' ARNs of the first region and, when the stack runs in more
// regions, KEYROTOR_REGIONS and the other regions' queues and ARNs, suffixed
// with the region (KEYROTOR_REVOCATION_QUEUE_URL_EU_WEST_1).
func (s *Stack) Env() []EnvVar {
	env := []EnvVar{
		{"AWS_ENDPOINT_URL", s.Endpoint},
		{"AWS_REGION", Region},
		{"AWS_DEFAULT_REGION", Region},
		{"AWS_ACCESS_KEY_ID", AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", SecretAccessKey},
		{"KEYROTOR_GATEWAY_URL", s.GatewayURL},
		{"KEYROTOR_REVOCATION_QUEUE_URL", s.QueueURL},
		{"KEYROTOR_REVOCATION_DLQ_URL", s.DLQURL},
		{"KEYROTOR_EVENTS_QUEUE_URL", s.primary().EventsQueueURL},
	}
	for _, n := range s.functionNames() {
		env = append(env, EnvVar{"KEYROTOR_" + strings.ToUpper(n) + "_FUNCTION_ARN", s.Functions[n].ARN})
	}
	if len(s.regions) == 1 {
		return env
	}
	env = append(env, EnvVar{"KEYROTOR_REGIONS", strings.Join(s.Regions(), ",")})
	for _, r := range s.regions[1:] {
		suffix := "_" + strings.ToUpper(strings.ReplaceAll(r.Name, "-", "_"))
		env = append(env,
			EnvVar{"KEYROTOR_REVOCATION_QUEUE_URL" + suffix, r.QueueURL},
			EnvVar{"KEYROTOR_REVOCATION_DLQ_URL" + suffix, r.DLQURL},
			EnvVar{"KEYROTOR_EVENTS_QUEUE_URL" + suffix, r.EventsQueueURL})
		for _, n := range s.functionNames() {
			env = append(env, EnvVar{"KEYROTOR_" + strings.ToUpper(n) + "_FUNCTION_ARN" + suffix, r.Functions[n].ARN})
		}
	}
	return env
}

// Exports returns Env as shell lines: export NAME='value'.
func (s *Stack) Exports() string {
	var b strings.Builder
	for _, v := range s.Env() {
		fmt.Fprintf(&b, "export %s=%s\n", v.Name, shellQuote(v.Value))
	}
	return b.String()
}

func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// Stop stops the poller, the scheduler, every server and every process the
// stack started, checks that none is left, and removes the work dir. It is
// safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		var errs []error
		// Functions first, so that a rotation in flight ends; moto last.
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, r := range s.regions {
			for _, f := range r.Functions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := f.stop(3 * time.Second); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		s.wg.Wait()
		for _, srv := range s.servers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if srv.Shutdown(ctx) != nil {
				_ = srv.Close()
			}
			cancel()
		}
		if s.moto != nil {
			if err := s.moto.stop(3 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if s.WorkDir != "" {
			if err := os.RemoveAll(s.WorkDir); err != nil {
				errs = append(errs, err)
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// PIDs returns the process group ids of every process the stack started
// (moto and the emulators), for checks that none is left after Stop.
func (s *Stack) PIDs() []int {
	var out []int
	if s.moto != nil {
		out = append(out, s.moto.pgid)
	}
	for _, r := range s.regions {
		for _, n := range s.functionNames() {
			if f, ok := r.Functions[n]; ok {
				out = append(out, f.pids()...)
			}
		}
	}
	return out
}

func (s *Stack) logger() *slog.Logger {
	if s.opts.Logs == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(prefixWriter{s.opts.Logs, "[stack] "}, nil))
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// frontHandler is the lambda front, whose functions are set once they run.
type frontHandler struct {
	mu sync.RWMutex
	h  http.Handler
}

func (f *frontHandler) set(regions []*RegionStack) {
	byName := map[string]*Function{}
	for _, r := range regions {
		for _, fn := range r.Functions {
			byName[r.Name+"/"+fn.FunctionName] = fn
		}
	}
	f.mu.Lock()
	f.h = lambdaFront(byName)
	f.mu.Unlock()
}

func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.RLock()
	h := f.h
	f.mu.RUnlock()
	if h == nil {
		h = lambdaFront(nil)
	}
	h.ServeHTTP(w, r)
}

// clients are the stack's AWS clients for moto, built once in Start.
type clients struct {
	sm     *secretsmanager.Client
	sqs    *sqs.Client
	iam    *iam.Client
	lambda *lambda.Client
}

func newClients(cfg aws.Config) clients {
	return clients{
		sm:     secretsmanager.NewFromConfig(cfg),
		sqs:    sqs.NewFromConfig(cfg),
		iam:    iam.NewFromConfig(cfg),
		lambda: lambda.NewFromConfig(cfg),
	}
}

func awsConfig(ctx context.Context, endpoint, region string) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		config.WithBaseEndpoint(endpoint),
		config.WithRetryMaxAttempts(1),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration for moto: %w", err)
	}
	return cfg, nil
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "adm_" + hex.EncodeToString(b[:])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
