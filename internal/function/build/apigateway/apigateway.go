// Package apigateway builds the API Gateway API key provider from a
// function's environment (AWS endpoints from the SDK's configuration).
//
// APIGATEWAY_CANARY_URL, when set, is the data-plane canary of Verify
// (providers/apigateway.Canary): a GET method of a stage of the keys' usage
// plans that requires an API key. It must be https unless its host is
// loopback; a function whose canary URL is not valid does not start. Unset,
// Verify reads keys through the management API only; the builder logs
// which of the two it built.
package apigateway

import (
	"fmt"
	"io"
	"os"

	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/apigateway"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider's name.
const Name = provider.Name

// CanaryURLVar names the variable holding the data-plane canary's URL.
const CanaryURLVar = "APIGATEWAY_CANARY_URL"

// Build builds the API Gateway provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return build(env, c, os.Stderr)
}

// build is Build logging to w.
func build(env lambdafn.Env, c lambdafn.Clients, w io.Writer) (*provider.Provider, error) {
	p := provider.New(c.Config)
	log := lambdafn.Logger(env, w)
	raw := env(CanaryURLVar)
	if raw == "" {
		log.Info(CanaryURLVar + " is not set: API Gateway keys are verified through the management API only, not at the data plane where applications use them")
		return p, nil
	}
	canary, err := provider.NewCanary(raw, vendorhttp.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CanaryURLVar, err)
	}
	log.Info("API Gateway keys are verified at the data plane too", "canary_url", canary.URL())
	return p.WithCanary(canary), nil
}
