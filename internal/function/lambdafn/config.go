package lambdafn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// Config builds the functions' AWS configuration from the environment
// Lambda gives a function, without package config: that package links the
// SSO, SSO OIDC, STS and sign-in clients of the shared-config credential
// chain, whose package init costs a rotation function's every cold start
// several milliseconds, for credentials a function never reads from files.
//
// It reads AWS_REGION (else AWS_DEFAULT_REGION); AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (the execution role's
// credentials, always set by Lambda); AWS_ENDPOINT_URL and the
// per-service AWS_ENDPOINT_URL_<SERVICE> variables, unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true; AWS_MAX_ATTEMPTS,
// AWS_RETRY_MODE; AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT; and
// AWS_CA_BUNDLE. Shared config files and profiles are not read.
func Config(env Env) (aws.Config, error) {
	region := env("AWS_REGION")
	if region == "" {
		region = env("AWS_DEFAULT_REGION")
	}
	if region == "" {
		return aws.Config{}, errors.New("AWS_REGION is not set")
	}
	creds := aws.Credentials{
		AccessKeyID:     env("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: env("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    env("AWS_SESSION_TOKEN"),
		Source:          "EnvironmentVariables",
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return aws.Config{}, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them to the execution role's credentials)")
	}
	src := envSource{env: env}
	for _, name := range []string{"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"} {
		if _, _, err := src.boolean(name); err != nil {
			return aws.Config{}, err
		}
	}
	cfg := aws.Config{
		Region: region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		ConfigSources: []any{src},
	}
	if !src.ignoreEndpoints() {
		if v := env("AWS_ENDPOINT_URL"); v != "" {
			cfg.BaseEndpoint = aws.String(v)
		}
	}
	if v := env("AWS_MAX_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return aws.Config{}, fmt.Errorf("AWS_MAX_ATTEMPTS=%q is not a positive integer", v)
		}
		cfg.RetryMaxAttempts = n
	}
	if v := env("AWS_RETRY_MODE"); v != "" {
		mode, err := aws.ParseRetryMode(v)
		if err != nil {
			return aws.Config{}, fmt.Errorf("AWS_RETRY_MODE: %w", err)
		}
		cfg.RetryMode = mode
	}
	if path := env("AWS_CA_BUNDLE"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return aws.Config{}, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return aws.Config{}, fmt.Errorf("AWS_CA_BUNDLE=%s holds no PEM certificate", path)
		}
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		})
	}
	return cfg, nil
}

// envSource answers the SDK clients' questions about the configuration
// (cfg.ConfigSources) from the environment, as package config's
// environment source does.
type envSource struct{ env Env }

func (s envSource) ignoreEndpoints() bool {
	v, _ := strconv.ParseBool(s.env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
	return v
}

// GetIgnoreConfiguredEndpoints reads AWS_IGNORE_CONFIGURED_ENDPOINT_URLS.
func (s envSource) GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error) {
	return s.ignoreEndpoints(), s.env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") != "", nil
}

// GetServiceBaseEndpoint reads AWS_ENDPOINT_URL_<SERVICE>, the service's SDK
// ID in upper case with spaces as underscores (AWS_ENDPOINT_URL_SECRETS_MANAGER).
func (s envSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v := s.env("AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(sdkID), " ", "_"))
	return v, v != "", nil
}

// GetUseFIPSEndpoint reads AWS_USE_FIPS_ENDPOINT.
func (s envSource) GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error) {
	on, set, err := s.boolean("AWS_USE_FIPS_ENDPOINT")
	if !set || err != nil {
		return aws.FIPSEndpointStateUnset, false, err
	}
	if on {
		return aws.FIPSEndpointStateEnabled, true, nil
	}
	return aws.FIPSEndpointStateDisabled, true, nil
}

// GetUseDualStackEndpoint reads AWS_USE_DUALSTACK_ENDPOINT.
func (s envSource) GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error) {
	on, set, err := s.boolean("AWS_USE_DUALSTACK_ENDPOINT")
	if !set || err != nil {
		return aws.DualStackEndpointStateUnset, false, err
	}
	if on {
		return aws.DualStackEndpointStateEnabled, true, nil
	}
	return aws.DualStackEndpointStateDisabled, true, nil
}

func (s envSource) boolean(name string) (value, set bool, err error) {
	v := s.env(name)
	if v == "" {
		return false, false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("%s=%q is not true or false", name, v)
	}
	return b, true, nil
}
