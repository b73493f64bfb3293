// Package cloudflare builds the Cloudflare API token provider from a
// function's environment: CLOUDFLARE_API_BASE_URL or API_BASE_URL, when set,
// replaces https://api.cloudflare.com/client/v4 (include the /client/v4
// path).
package cloudflare

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/cloudflare"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the Cloudflare provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(provider.Config{BaseURL: lambdafn.APIBaseURL(env, Name), Admin: c.Admin})
}
