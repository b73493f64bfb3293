// Package twilio builds the Twilio provider from a function's environment:
// TWILIO_API_BASE_URL or API_BASE_URL, when set, replaces both
// api.twilio.com and iam.twilio.com (their paths never overlap).
package twilio

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/twilio"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the Twilio provider.
func Build(env lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	base := lambdafn.APIBaseURL(env, Name)
	return provider.New(provider.Config{APIBaseURL: base, IAMBaseURL: base, Admin: c.Admin})
}
