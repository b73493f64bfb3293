// Package all gathers every provider's Builder by name: what the revoker
// serves, since it revokes the old keys of every rotation function. Only the
// revoker (and tools that work on every provider) import it; a rotation
// function imports its own internal/function/build/<name> package alone.
package all

import (
	"github.com/keyrotor/keyrotor/internal/function/build/apigateway"
	"github.com/keyrotor/keyrotor/internal/function/build/cloudflare"
	"github.com/keyrotor/keyrotor/internal/function/build/datadog"
	"github.com/keyrotor/keyrotor/internal/function/build/gateway"
	"github.com/keyrotor/keyrotor/internal/function/build/iam"
	"github.com/keyrotor/keyrotor/internal/function/build/sendgrid"
	"github.com/keyrotor/keyrotor/internal/function/build/twilio"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

// Builders returns every provider's builder, by provider name.
func Builders() map[string]lambdafn.Builder {
	return map[string]lambdafn.Builder{
		gateway.Name:    gateway.Build,
		iam.Name:        iam.Build,
		apigateway.Name: apigateway.Build,
		sendgrid.Name:   sendgrid.Build,
		twilio.Name:     twilio.Build,
		datadog.Name:    datadog.Build,
		cloudflare.Name: cloudflare.Build,
	}
}
