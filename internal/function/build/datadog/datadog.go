// Package datadog builds the Datadog provider from a function's
// environment: DATADOG_API_BASE_URL or API_BASE_URL, when set, replaces
// https://api.<site> for every site.
package datadog

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/datadog"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the Datadog provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(provider.Config{BaseURL: lambdafn.APIBaseURL(env, Name), Admin: c.Admin})
}
