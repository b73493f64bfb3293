// Package apigateway builds the API Gateway API key provider from a
// function's environment (AWS endpoints from the SDK's configuration).
package apigateway

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/apigateway"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the API Gateway provider.
func Build(_ lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(c.Config), nil
}
