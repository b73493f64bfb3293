// Package function is the auditor's wiring (StartAuditor, NewCloudWatch)
// and the AWS configuration keyrotor's tools load with the SDK's whole
// default chain (NewClients). It links no provider: the CLI takes every
// builder from internal/function/all.
//
// The rotation functions and the revoker do not import it: they start
// through package internal/function/lambdafn with their own provider's
// builder (internal/function/build/<name>) or every builder
// (internal/function/all), so that each binary links, and initialises at
// start-up, only the SDK clients it uses. Configuration: see lambdafn.
package function

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

// Env reads a variable; tests pass a map's lookup.
type Env = lambdafn.Env

// Clients are the AWS clients every function shares.
type Clients = lambdafn.Clients

// logger returns the JSON logger at LOG_LEVEL, writing to w.
func logger(env Env, w io.Writer) *slog.Logger { return lambdafn.Logger(env, w) }

// APIBaseURL returns <PROVIDER>_API_BASE_URL, else API_BASE_URL, else "".
func APIBaseURL(env Env, provider string) string { return lambdafn.APIBaseURL(env, provider) }

// NewClients loads the AWS configuration with the SDK's whole default chain
// (environment, shared config files and profiles, SSO): what the operator
// CLI and the auditor use. The rotation functions and the revoker read the
// environment alone (lambdafn.Config).
func NewClients(ctx context.Context) (Clients, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return Clients{}, err
	}
	return lambdafn.NewClients(cfg), nil
}

// loadConfig loads the AWS configuration with the SDK's whole default chain.
func loadConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

func fail(log *slog.Logger, err error) { lambdafn.Fail(log, err) }
