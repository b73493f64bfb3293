// Package sendgrid builds the SendGrid provider from a function's
// environment: SENDGRID_API_BASE_URL or API_BASE_URL, when set, replaces
// both the global and the EU API root.
package sendgrid

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/sendgrid"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the SendGrid provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(provider.Config{BaseURL: lambdafn.APIBaseURL(env, Name), Admin: c.Admin})
}
