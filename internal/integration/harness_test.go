package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

const adminToken = "gw-admin-token-for-integration-tests-0123456789"

// faultProxy forwards to a target and can fail the n-th call counted across
// every proxy sharing its counter: before forwarding (the call never took
// effect) or after (it took effect, the response is lost).
type faultProxy struct {
	rp    *httputil.ReverseProxy
	calls *faultPlan
	name  string
}

type faultPlan struct {
	mu     sync.Mutex
	n      int64
	failAt int64
	lost   bool
	fired  bool
	log    []string
	counts map[string]int
	// failWhen, when set, fails (before forwarding) the first call whose
	// X-Amz-Target and body it matches, whatever failAt says.
	failWhen func(target string, body []byte) bool
}

func (p *faultPlan) set(failAt int64, lost bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n, p.failAt, p.lost, p.fired, p.log = 0, failAt, lost, false, nil
}

func (p *faultPlan) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[name]
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := f.calls
	var body []byte
	if p.matcher() != nil && r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.mu.Lock()
	p.n++
	fail := p.n == p.failAt
	lost := p.lost
	if p.failWhen != nil && !p.fired && p.failWhen(r.Header.Get("X-Amz-Target"), body) {
		fail, lost = true, false
	}
	if fail {
		p.fired = true
	}
	p.counts[f.name]++
	p.log = append(p.log, f.name+" "+r.Header.Get("X-Amz-Target")+r.URL.Path)
	p.mu.Unlock()
	if !fail {
		f.rp.ServeHTTP(w, r)
		return
	}
	if lost {
		f.rp.ServeHTTP(httptest.NewRecorder(), r)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func (p *faultPlan) matcher() func(string, []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failWhen
}

func startProxy(t *testing.T, name, target string, plan *faultPlan) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&faultProxy{rp: httputil.NewSingleHostReverseProxy(u), calls: plan, name: name})
	t.Cleanup(srv.Close)
	return srv.URL
}

// stack is moto, the reference gateway and the fault proxy for one test.
type stack struct {
	t        *testing.T
	moto     *testenv.Moto
	sm       *secretsmanager.Client
	sqs      *sqs.Client
	iam      *iam.Client
	gw       *gateway.Server
	faults   *gateway.FaultInjector
	gwURL    string // direct
	plan     *faultPlan
	queueURL string
	env      []string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, moto: testenv.StartMoto(t, nil), plan: &faultPlan{counts: map[string]int{}}}
	cfg := s.moto.Config(t)
	s.sm = secretsmanager.NewFromConfig(cfg)
	s.sqs = sqs.NewFromConfig(cfg)
	s.iam = iam.NewFromConfig(cfg)
	s.gw = gateway.NewServer(gateway.ServerOptions{AdminToken: adminToken})
	s.faults = gateway.NewFaultInjector(s.gw)
	gwSrv := httptest.NewServer(s.faults)
	t.Cleanup(gwSrv.Close)
	s.gwURL = gwSrv.URL
	ctx := context.Background()
	q, err := s.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("keyrotor-revocations")})
	if err != nil {
		t.Fatal(err)
	}
	s.queueURL = aws.ToString(q.QueueUrl)
	if _, err := s.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("keyrotor/admin/gateway"),
		SecretString: aws.String(fmt.Sprintf(`{"key":%q}`, adminToken)),
		Tags:         []smtypes.Tag{{Key: aws.String("keyrotor:admin-for"), Value: aws.String("*")}}}); err != nil {
		t.Fatal(err)
	}
	awsProxy := startProxy(t, "aws", s.moto.URL, s.plan)
	vendorProxy := startProxy(t, "vendor", s.gwURL, s.plan)
	s.env = []string{
		"AWS_ENDPOINT_URL=" + awsProxy,
		"AWS_REGION=" + testenv.Region, "AWS_DEFAULT_REGION=" + testenv.Region,
		"AWS_ACCESS_KEY_ID=" + testenv.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + testenv.SecretAccessKey,
		"AWS_MAX_ATTEMPTS=1",
		"REVOCATION_QUEUE_URL=" + s.queueURL,
		"GATEWAY_API_BASE_URL=" + vendorProxy,
		"GRACE_PERIOD=1h",
		"MAX_REVOCATION_DELAY=1h",
		"LOG_LEVEL=debug",
	}
	return s
}

func (s *stack) function(name string, env ...string) *testenv.Function {
	return testenv.StartFunction(s.t, name, append(append([]string(nil), s.env...), env...))
}

// gatewaySecret creates a managed gateway secret holding a live key.
func (s *stack) gatewaySecret(name string, tags map[string]string) gateway.CreatedKey {
	s.t.Helper()
	k, err := s.gw.CreateKey("initial key of "+name, "")
	if err != nil {
		s.t.Fatal(err)
	}
	s.createSecret(name, fmt.Sprintf(`{"provider":"gateway","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/gateway"}`, k.Key, k.ID), tags)
	return k
}

// createSecret creates a secret tagged keyrotor:managed=true (unless tags
// say otherwise) and returns its ARN.
func (s *stack) createSecret(name, value string, tags map[string]string) string {
	s.t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}
	tags = mergeTags(map[string]string{"keyrotor:managed": "true"}, tags)
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := s.sm.CreateSecret(context.Background(), in)
	if err != nil {
		s.t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func mergeTags(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// beginRotation does what Secrets Manager does before createSecret: an
// AWSPENDING version with no value for token, rotation enabled. moto records
// it before it finds that the (deliberately missing) function does not
// exist.
func (s *stack) beginRotation(secret, token string) {
	s.t.Helper()
	_, err := s.sm.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(secret), ClientRequestToken: aws.String(token),
		RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:driven-by-the-test"),
		RotationRules:     &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
	})
	var nf *smtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		s.t.Fatalf("begin rotation: %v", err)
	}
	if st := s.stages(secret)[token]; fmt.Sprint(st) != "[AWSPENDING]" {
		s.t.Fatalf("begin rotation: version %s has stages %v", token, st)
	}
}

var steps = []string{"createSecret", "setSecret", "testSecret", "finishSecret"}

func (s *stack) step(fn *testenv.Function, step, secret, token string) error {
	_, err := fn.Invoke(context.Background(), events.SecretsManagerSecretRotationEvent{
		Step: step, SecretID: secret, ClientRequestToken: token, RotationToken: rotationTokenFor(token),
	})
	return err
}

// rotationTokenFor is a RotationToken for tests, recognisable in leak checks.
func rotationTokenFor(token string) string { return "rt-SECRET-" + token }

func (s *stack) rotate(fn *testenv.Function, secret, token string) {
	s.t.Helper()
	s.beginRotation(secret, token)
	for _, st := range steps {
		if err := s.step(fn, st, secret, token); err != nil {
			s.t.Fatalf("%s: %v\nfunction logs:\n%s", st, err, fn.Logs())
		}
	}
}

func (s *stack) stages(secret string) map[string][]string {
	s.t.Helper()
	return testenv.Stages(s.t, s.sm, secret)
}

func (s *stack) read(secret, stage string) providers.Credential {
	s.t.Helper()
	return testenv.ReadSecret(s.t, s.sm, secret, stage)
}

// use is an application using the secret's AWSCURRENT key at the gateway
// after its rotation finished: the revoker waits for it (or MaxDelay).
func (s *stack) use(secret string) {
	s.t.Helper()
	if code := s.ping(s.read(secret, "AWSCURRENT").Key); code != 200 {
		s.t.Fatalf("the new key of %s answers %d at the gateway, want 200", secret, code)
	}
}

func (s *stack) ping(key string) int {
	s.t.Helper()
	return testenv.GatewayPing(s.t, s.gwURL, key)
}

func (s *stack) liveGatewayKeys() map[string]bool {
	out := map[string]bool{}
	for _, k := range s.gw.LiveKeys() {
		out[k.ID] = true
	}
	return out
}

// messages receives every visible revocation message (without deleting).
func (s *stack) messages(wait int32) []sqsMessage {
	s.t.Helper()
	var out []sqsMessage
	for {
		r, err := s.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.queueURL),
			MaxNumberOfMessages: 10, WaitTimeSeconds: wait, VisibilityTimeout: 30})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			out = append(out, sqsMessage{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Handle: aws.ToString(m.ReceiptHandle)})
		}
		wait = 0
	}
}

type sqsMessage struct{ ID, Body, Handle string }

// deliver hands messages to the revoker as Lambda's event source mapping
// does, and deletes the ones not reported in batchItemFailures.
func (s *stack) deliver(revoker *testenv.Function, msgs []sqsMessage) events.SQSEventResponse {
	s.t.Helper()
	var ev events.SQSEvent
	for _, m := range msgs {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: m.ID, Body: m.Body, EventSource: "aws:sqs"})
	}
	out, err := revoker.Invoke(context.Background(), ev)
	if err != nil {
		s.t.Fatalf("revoker: %v\n%s", err, revoker.Logs())
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		s.t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		if !failed[m.ID] {
			if _, err := s.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(s.queueURL), ReceiptHandle: aws.String(m.Handle)}); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	return resp
}

// emfLines returns the EMF lines a function printed.
func emfLines(logs string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "{") && strings.Contains(l, `"_aws"`) {
			out = append(out, l)
		}
	}
	return out
}
