// Package function wires keyrotor's Lambda functions from their environment:
// it reads the configuration once per process, builds the AWS clients and
// the providers, and starts the handler. The functions' mains only name what
// they run.
//
// Environment (DESIGN §9): REVOCATION_QUEUE_URL, GRACE_PERIOD (Go duration,
// default 1h), API_BASE_URL or <PROVIDER>_API_BASE_URL (vendor URL
// override), METRICS_NAMESPACE (default KeyRotation), LOG_LEVEL (debug, info,
// warn, error), MAX_REVOCATION_DELAY (revoker, default 24h). AWS endpoints
// come from the SDK's own AWS_ENDPOINT_URL variables.
package function

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// Env reads a variable; tests pass a map's lookup.
type Env func(string) string

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

// Clients are the AWS clients a function uses, built once per process.
type Clients struct {
	Config         aws.Config
	SecretsManager *secretsmanager.Client
	SQS            *sqs.Client
}

// NewClients loads the AWS configuration from the environment.
func NewClients(ctx context.Context) (Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return Clients{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return Clients{Config: cfg, SecretsManager: secretsmanager.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg)}, nil
}

// NewRotator builds the rotation engine for the provider build makes.
func NewRotator(env Env, c Clients, build Builder, log *slog.Logger) (*rotation.Rotator, error) {
	p, err := build(env, c)
	if err != nil {
		return nil, err
	}
	grace, err := Duration(env, "GRACE_PERIOD", rotation.DefaultGracePeriod)
	if err != nil {
		return nil, err
	}
	var queue rotation.RevocationQueue
	if url := env("REVOCATION_QUEUE_URL"); url != "" {
		queue = revocation.Queue{SQS: c.SQS, URL: url}
	}
	return rotation.New(c.SecretsManager, p, queue, rotation.Options{
		GracePeriod: grace,
		Logger:      log,
		Metrics:     metrics.New(os.Stdout, env("METRICS_NAMESPACE"), nil),
	}), nil
}

// NewRevoker builds the revoker's handler with every provider the
// environment configures.
func NewRevoker(env Env, c Clients, log *slog.Logger) (*revocation.Handler, error) {
	maxDelay, err := Duration(env, "MAX_REVOCATION_DELAY", revocation.DefaultMaxDelay)
	if err != nil {
		return nil, err
	}
	ps := NewProviders(env, c, log)
	return revocation.NewHandler(c.SecretsManager, revocation.Queue{SQS: c.SQS, URL: env("REVOCATION_QUEUE_URL")}, ps, revocation.Options{
		MaxDelay: maxDelay,
		Logger:   log,
		Metrics:  metrics.New(os.Stdout, env("METRICS_NAMESPACE"), nil),
	}), nil
}

// StartRotation is the main of a rotation function.
func StartRotation(build Builder) {
	ctx := context.Background()
	log := Logger(os.Getenv, os.Stderr)
	c, err := NewClients(ctx)
	if err != nil {
		fail(log, err)
	}
	r, err := NewRotator(os.Getenv, c, build, log)
	if err != nil {
		fail(log, err)
	}
	lambda.Start(r.Handle)
}

// StartRevoker is the revoker's main.
func StartRevoker() {
	ctx := context.Background()
	log := Logger(os.Getenv, os.Stderr)
	c, err := NewClients(ctx)
	if err != nil {
		fail(log, err)
	}
	h, err := NewRevoker(os.Getenv, c, log)
	if err != nil {
		fail(log, err)
	}
	lambda.Start(h.Handle)
}

func fail(log *slog.Logger, err error) {
	log.Error("cannot start", "error", err.Error())
	os.Exit(1)
}
