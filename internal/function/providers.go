package function

import (
	"github.com/keyrotor/keyrotor/internal/function/all"
	"github.com/keyrotor/keyrotor/internal/function/build/apigateway"
	"github.com/keyrotor/keyrotor/internal/function/build/cloudflare"
	"github.com/keyrotor/keyrotor/internal/function/build/datadog"
	"github.com/keyrotor/keyrotor/internal/function/build/gateway"
	"github.com/keyrotor/keyrotor/internal/function/build/iam"
	"github.com/keyrotor/keyrotor/internal/function/build/sendgrid"
	"github.com/keyrotor/keyrotor/internal/function/build/twilio"
)

// The providers' builders, as the rotation functions use them (each
// function's main imports its own internal/function/build/<name> instead).
var (
	Gateway    Builder = gateway.Build
	IAM        Builder = iam.Build
	APIGateway Builder = apigateway.Build
	SendGrid   Builder = sendgrid.Build
	Twilio     Builder = twilio.Build
	Datadog    Builder = datadog.Build
	Cloudflare Builder = cloudflare.Build
)

// All returns every provider's builder, by name: what the revoker serves
// (package internal/function/all).
func All() map[string]Builder { return all.Builders() }
