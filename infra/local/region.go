package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
)

// RegionStack is the part of the stack that lives in one AWS region, as a
// deployment of template.yaml does: the functions (each under its own
// emulator, with AWS_REGION set to the region), the revocation queue and its
// dead-letter queue, the revoker's event-source poller and the auditor's
// schedule, and the gateway's admin secret. The reference gateway (the
// vendor) and IAM are shared by every region.
//
// moto serves every region on one endpoint and tells them apart by the
// region in the request's signature, as AWS does by endpoint. The launcher
// forwards an invoke to the function of the invoked function's region, so
// that `aws --region eu-west-1 secretsmanager rotate-secret` runs
// eu-west-1's rotation function, whose revocation queue is in eu-west-1.
type RegionStack struct {
	// Name is the region (us-east-1).
	Name string
	// QueueURL and DLQURL are the region's revocation queue and its
	// dead-letter queue.
	QueueURL, DLQURL string
	// EventsQueueURL is the queue the region's keyrotor events reach (events.go).
	EventsQueueURL string
	// Functions are the region's running functions, by name (gateway, iam,
	// revoker, and auditor when it exists).
	Functions map[string]*Function
	// Revocations is the region's revoker poller (nil without a revoker).
	Revocations *Poller
	// APIGatewayDataPlane stands in for the region's API Gateway data plane
	// when the region runs the apigateway function (else nil), and
	// APIGatewayCanaryURL is the URL its APIGATEWAY_CANARY_URL points at.
	APIGatewayDataPlane *APIGatewayDataPlane
	APIGatewayCanaryURL string

	stack    *Stack
	aws      aws.Config
	clients  clients
	counters map[string]*apiCounter // by function: its own counting proxy to moto
	audits   chan struct{}
}

func newRegionStack(ctx context.Context, s *Stack, region string) (*RegionStack, error) {
	cfg, err := awsConfig(ctx, s.Endpoint, region)
	if err != nil {
		return nil, err
	}
	return &RegionStack{
		Name: region, Functions: map[string]*Function{}, stack: s, aws: cfg, clients: newClients(cfg),
		counters: map[string]*apiCounter{}, audits: make(chan struct{}, 1),
	}, nil
}

// checkRegions returns regions, or [Region] when it is empty, and refuses
// an empty or repeated name.
func checkRegions(regions []string) ([]string, error) {
	if len(regions) == 0 {
		return []string{Region}, nil
	}
	var out []string
	for _, r := range regions {
		r = strings.TrimSpace(r)
		if r == "" || strings.ContainsAny(r, "/ ") {
			return nil, fmt.Errorf("start the local stack: %q is not a region name", r)
		}
		if slices.Contains(out, r) {
			return nil, fmt.Errorf("start the local stack: region %s is given twice", r)
		}
		out = append(out, r)
	}
	return out, nil
}

// Config returns an AWS configuration for the region on the stack's moto.
func (r *RegionStack) Config() aws.Config { return r.aws.Copy() }

// SecretsManager returns a Secrets Manager client for the region.
func (r *RegionStack) SecretsManager() *secretsmanager.Client { return r.clients.sm }

// Function returns the region's function name, or nil.
func (r *RegionStack) Function(name string) *Function { return r.Functions[name] }

// functionLabel names a function's process in the logs: its name in the
// first region, region/name in the others.
func (r *RegionStack) functionLabel(name string) string {
	if r == r.stack.primary() {
		return name
	}
	return r.Name + "/" + name
}

// functionEnv is the environment of a function of the region whose AWS
// calls go to endpoint (the emulator adds its own AWS_LAMBDA_* variables).
func (r *RegionStack) functionEnv(endpoint string) []string {
	o := r.stack.opts
	env := []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_REGION=" + r.Name,
		"AWS_DEFAULT_REGION=" + r.Name,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"REVOCATION_QUEUE_URL=" + r.QueueURL,
		"GRACE_PERIOD=" + o.GracePeriod.String(),
		"GATEWAY_API_BASE_URL=" + r.stack.GatewayURL,
		"MAX_REVOCATION_DELAY=" + o.MaxRevocationDelay.String(),
		"METRICS_NAMESPACE=KeyRotation",
		"LOG_LEVEL=" + o.LogLevel,
	}
	if r.APIGatewayCanaryURL != "" {
		env = append(env, "APIGATEWAY_CANARY_URL="+r.APIGatewayCanaryURL)
	}
	if u := r.stack.SendGridURL; u != "" {
		// The sendgrid function and the revoker (which revokes its keys).
		env = append(env, "SENDGRID_API_BASE_URL="+u)
	}
	return env
}

// startAPIGatewayDataPlane serves the region's API Gateway data plane
// stand-in over moto's API Gateway in the region.
func (r *RegionStack) startAPIGatewayDataPlane() error {
	r.APIGatewayDataPlane = NewAPIGatewayDataPlane(apigateway.NewFromConfig(r.aws), max(r.stack.opts.APIGatewayDataPlaneLag, 0), nil)
	u, err := r.stack.serve(r.APIGatewayDataPlane)
	if err != nil {
		return err
	}
	r.APIGatewayCanaryURL = u + "/local/ping"
	return nil
}

// startFunctions starts the region's functions, each reaching moto through
// its own counting proxy.
func (r *RegionStack) startFunctions(names []string) error {
	s := r.stack
	if slices.Contains(names, "apigateway") {
		if err := r.startAPIGatewayDataPlane(); err != nil {
			return err
		}
	}
	for _, n := range names {
		c, err := newAPICounter(s.Endpoint)
		if err != nil {
			return err
		}
		endpoint, err := s.serve(c)
		if err != nil {
			return err
		}
		r.counters[n] = c
		f, err := startFunction(n, r.functionLabel(n), r.Name, s.paths[n], s.rie, s.opts.Concurrency, r.functionEnv(endpoint), s.opts.Logs)
		if err != nil {
			return err
		}
		f.Endpoint = endpoint
		r.Functions[n] = f
	}
	return nil
}

// run starts the region's revoker poller, polling the queue in
// Options.Concurrency loops side by side (Lambda scales an SQS event
// source's pollers with the function's concurrency); the auditor's schedule
// starts with runAudits.
func (r *RegionStack) run(ctx context.Context) {
	s := r.stack
	rev, ok := r.Functions["revoker"]
	if !ok {
		return
	}
	r.Revocations = &Poller{
		SQS: r.clients.sqs, QueueURL: r.QueueURL, QueueARN: queueARN(r.Name, QueueName), Region: r.Name,
		Function: rev, BatchSize: s.opts.BatchSize, WaitTime: 2 * time.Second, Logger: s.logger(),
	}
	for range max(s.opts.Concurrency, 1) {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); r.Revocations.Run(ctx) }()
	}
}

// runAudits starts the auditor's schedule when the region runs one.
func (r *RegionStack) runAudits(ctx context.Context) {
	if aud, ok := r.Functions["auditor"]; ok {
		r.stack.wg.Add(1)
		go func() { defer r.stack.wg.Done(); r.schedule(ctx, aud) }()
	}
}

// schedule invokes the auditor now and then every AuditInterval (or when
// RunAudit asks), as an EventBridge schedule would.
func (r *RegionStack) schedule(ctx context.Context, f *Function) {
	s := r.stack
	t := time.NewTicker(s.opts.AuditInterval)
	defer t.Stop()
	for {
		ev := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"%s","region":"%s","resources":["arn:aws:events:%s:123456789012:rule/keyrotor-audit"],"detail":{}}`,
			newUUID(), time.Now().UTC().Format(time.RFC3339), r.Name, r.Name)
		if _, err := f.Invoke(ctx, []byte(ev)); err != nil && ctx.Err() == nil {
			s.logger().Warn("scheduled audit failed", "region", r.Name, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.audits:
		}
	}
}

// RunAudit asks the region's scheduler to invoke its auditor now. It
// returns false if the region runs no auditor.
func (r *RegionStack) RunAudit() bool {
	if _, ok := r.Functions["auditor"]; !ok {
		return false
	}
	select {
	case r.audits <- struct{}{}:
	default:
	}
	return true
}

func queueARN(region, name string) string { return "arn:aws:sqs:" + region + ":123456789012:" + name }

// startSendGrid serves a SendGrid stand-in (sendgridfake, which holds
// sendgridfake.AdminKey from the start) on 127.0.0.1 when names include the
// sendgrid function: like the reference gateway, one vendor shared by every
// region. Its admin secret is the operator's to create, as on AWS.
func (s *Stack) startSendGrid(names []string) error {
	if !slices.Contains(names, "sendgrid") {
		return nil
	}
	s.SendGrid = sendgridfake.New()
	u, err := s.serve(s.SendGrid)
	if err != nil {
		return err
	}
	s.SendGridURL = u
	return nil
}
