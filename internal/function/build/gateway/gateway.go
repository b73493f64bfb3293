// Package gateway builds the internal gateway provider from a function's
// environment (API_BASE_URL or GATEWAY_API_BASE_URL required).
package gateway

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/gateway"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the gateway provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(provider.Config{BaseURL: lambdafn.APIBaseURL(env, Name), Admin: c.Admin})
}
