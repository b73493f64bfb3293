// Package lambdafn wires one keyrotor Lambda function from its environment:
// it reads the configuration once per process, builds the AWS clients and
// the providers, and starts the handler. It imports no provider: a rotation
// function's main passes its own provider's Builder (internal/function/build/<name>)
// and the revoker passes every builder (internal/function/all), so that each
// binary links, and initialises at start-up, only the SDK clients it uses.
//
// Environment (DESIGN §9): REVOCATION_QUEUE_URL, GRACE_PERIOD (Go duration,
// default 2h), API_BASE_URL or <PROVIDER>_API_BASE_URL (vendor URL
// override), METRICS_NAMESPACE (default KeyRotation), LOG_LEVEL (debug, info,
// warn, error), MAX_REVOCATION_DELAY (revoker, default 24h), EVENT_BUS_NAME
// (the EventBridge bus the events go to, package notify; default "default").
// AWS endpoints
// come from the SDK's AWS_ENDPOINT_URL variables; the AWS configuration from
// the environment alone (Config).
package lambdafn

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// Env reads a variable; tests pass a map's lookup.
type Env func(string) string

// Builder builds one provider from the environment.
type Builder func(env Env, c Clients) (providers.Provider, error)

// Logger returns the JSON logger at LOG_LEVEL, writing to w.
func Logger(env Env, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env("LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Duration reads a Go duration, def when unset.
func Duration(env Env, name string, def time.Duration) (time.Duration, error) {
	v := env(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a Go duration such as 30m or 1h", name, v)
	}
	return d, nil
}

// APIBaseURL returns <PROVIDER>_API_BASE_URL, else API_BASE_URL, else "".
func APIBaseURL(env Env, provider string) string {
	if v := env(strings.ToUpper(provider) + "_API_BASE_URL"); v != "" {
		return v
	}
	return env("API_BASE_URL")
}

// Clients are the AWS clients every function shares, built once per
// process. Clients of one provider or one function (IAM, STS, API Gateway,
// CloudWatch) are built by that provider's or function's own package.
type Clients struct {
	Config         aws.Config
	SecretsManager *secretsmanager.Client
	SQS            *sqs.Client
	// Admin reads vendor management credentials (admin_secret_id), each
	// kept for a minute in this process so that the steps of one rotation
	// read it once.
	Admin adminsecret.Reader
}

// NewClients builds the shared clients over the AWS configuration cfg.
func NewClients(cfg aws.Config) Clients {
	sm := secretsmanager.NewFromConfig(cfg)
	return Clients{Config: cfg, SecretsManager: sm, SQS: sqs.NewFromConfig(cfg),
		Admin: adminsecret.Reader{SM: sm, Cache: adminsecret.NewCache(0, nil)}}
}

// LambdaClients builds the shared clients over the configuration Config
// reads from a function's environment.
func LambdaClients(env Env) (Clients, error) {
	cfg, err := Config(env)
	if err != nil {
		return Clients{}, fmt.Errorf("AWS configuration: %w", err)
	}
	return NewClients(cfg), nil
}

// newRotator builds the rotation engine for the provider build makes.
func newRotator(env Env, c Clients, build Builder, log *slog.Logger) (*rotation.Rotator, error) {
	p, err := build(env, c)
	if err != nil {
		// The builder's errors name their provider ("gateway: ..."); the
		// Builder itself carries no name.
		return nil, fmt.Errorf("build the rotation function's provider: %w", err)
	}
	grace, err := gracePeriod(env)
	if err != nil {
		return nil, err
	}
	var queue rotation.RevocationQueue
	if url := env("REVOCATION_QUEUE_URL"); url != "" {
		queue = revocation.Queue{SQS: c.SQS, URL: url}
	}
	m := metrics.New(os.Stdout, env("METRICS_NAMESPACE"), nil)
	return rotation.New(c.SecretsManager, p, queue, rotation.Options{
		GracePeriod: grace,
		Logger:      log,
		Metrics:     m,
		Events:      eventBus(env, c, log, m),
	}), nil
}

// eventBus is the functions' event publisher: EventBridge's bus
// EVENT_BUS_NAME (notify.DefaultBusName when unset), with its failures
// logged and counted on m.
func eventBus(env Env, c Clients, log *slog.Logger, m *metrics.EMF) *notify.Bus {
	return &notify.Bus{Client: eventbridge.NewFromConfig(c.Config), Name: env("EVENT_BUS_NAME"), Logger: log, Metrics: m}
}

// gracePeriod is the rotation function's default grace period: GRACE_PERIOD,
// else rotation.DefaultGracePeriod (a secret's keyrotor:grace-period tag
// overrides either).
func gracePeriod(env Env) (time.Duration, error) {
	return Duration(env, "GRACE_PERIOD", rotation.DefaultGracePeriod)
}

// newProviders builds the provider of each builder, by name. A provider that
// cannot be built (say, a vendor URL that is not https) is left out and
// logged; the revoker then fails its messages, which end in the alarmed
// dead-letter queue.
func newProviders(env Env, c Clients, builders map[string]Builder, log *slog.Logger) map[string]providers.Provider {
	names := make([]string, 0, len(builders))
	for name := range builders {
		names = append(names, name)
	}
	sort.Strings(names)
	ps := map[string]providers.Provider{}
	for _, name := range names {
		p, err := builders[name](env, c)
		if err != nil {
			log.Warn("provider not available to the revoker", "provider", name, "error", err.Error())
			continue
		}
		ps[name] = p
	}
	return ps
}

// newRevoker builds the revoker's handler with the providers of builders
// that the environment configures.
func newRevoker(env Env, c Clients, builders map[string]Builder, log *slog.Logger) (*revocation.Handler, error) {
	maxDelay, err := Duration(env, "MAX_REVOCATION_DELAY", revocation.DefaultMaxDelay)
	if err != nil {
		return nil, err
	}
	ps := newProviders(env, c, builders, log)
	m := metrics.New(os.Stdout, env("METRICS_NAMESPACE"), nil)
	return revocation.NewHandler(c.SecretsManager, revocation.Queue{SQS: c.SQS, URL: env("REVOCATION_QUEUE_URL")}, ps, revocation.Options{
		MaxDelay: maxDelay,
		Logger:   log,
		Metrics:  m,
		Events:   eventBus(env, c, log, m),
	}), nil
}

// StartRotation is the main of a rotation function over build's provider.
func StartRotation(build Builder) {
	log := Logger(os.Getenv, os.Stderr)
	c, err := LambdaClients(os.Getenv)
	if err != nil {
		Fail(log, err)
	}
	r, err := newRotator(os.Getenv, c, build, log)
	if err != nil {
		Fail(log, err)
	}
	lambda.Start(r.Handle)
}

// StartRevoker is the revoker's main, over the providers of builders.
func StartRevoker(builders map[string]Builder) {
	log := Logger(os.Getenv, os.Stderr)
	c, err := LambdaClients(os.Getenv)
	if err != nil {
		Fail(log, err)
	}
	h, err := newRevoker(os.Getenv, c, builders, log)
	if err != nil {
		Fail(log, err)
	}
	lambda.Start(h.Handle)
}

// Fail logs why a function cannot start and exits.
func Fail(log *slog.Logger, err error) {
	log.Error("cannot start", "error", err.Error())
	os.Exit(1)
}
