package function

import (
	"log/slog"
	"sort"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/apigateway"
	"github.com/keyrotor/keyrotor/providers/cloudflare"
	"github.com/keyrotor/keyrotor/providers/datadog"
	"github.com/keyrotor/keyrotor/providers/gateway"
	"github.com/keyrotor/keyrotor/providers/iam"
	"github.com/keyrotor/keyrotor/providers/sendgrid"
	"github.com/keyrotor/keyrotor/providers/twilio"
)

// Builder builds one provider from the environment. A rotation function's
// main names its own builder, so that its binary holds that provider only.
type Builder func(env Env, c Clients) (providers.Provider, error)

// Gateway builds the internal gateway provider (API_BASE_URL required).
func Gateway(env Env, c Clients) (providers.Provider, error) {
	return gateway.New(gateway.Config{BaseURL: APIBaseURL(env, "gateway"), Admin: adminsecret.Reader{SM: c.SecretsManager}})
}

// IAM builds the IAM access key provider.
func IAM(_ Env, c Clients) (providers.Provider, error) { return iam.New(c.Config, nil), nil }

// APIGateway builds the API Gateway API key provider (AWS endpoints from
// the SDK's configuration).
func APIGateway(_ Env, c Clients) (providers.Provider, error) {
	return apigateway.New(c.Config), nil
}

// SendGrid builds the SendGrid provider; SENDGRID_API_BASE_URL or
// API_BASE_URL, when set, replaces both the global and the EU API root.
func SendGrid(env Env, c Clients) (providers.Provider, error) {
	return sendgrid.New(sendgrid.Config{BaseURL: APIBaseURL(env, sendgrid.Name), Admin: adminsecret.Reader{SM: c.SecretsManager}})
}

// Twilio builds the Twilio provider; TWILIO_API_BASE_URL or API_BASE_URL,
// when set, replaces both api.twilio.com and iam.twilio.com (their paths
// never overlap).
func Twilio(env Env, c Clients) (providers.Provider, error) {
	base := APIBaseURL(env, twilio.Name)
	return twilio.New(twilio.Config{APIBaseURL: base, IAMBaseURL: base, Admin: adminsecret.Reader{SM: c.SecretsManager}})
}

// Datadog builds the Datadog provider; DATADOG_API_BASE_URL or
// API_BASE_URL, when set, replaces https://api.<site> for every site.
func Datadog(env Env, c Clients) (providers.Provider, error) {
	return datadog.New(datadog.Config{BaseURL: APIBaseURL(env, datadog.Name), Admin: adminsecret.Reader{SM: c.SecretsManager}})
}

// Cloudflare builds the Cloudflare API token provider;
// CLOUDFLARE_API_BASE_URL or API_BASE_URL, when set, replaces
// https://api.cloudflare.com/client/v4 (include the /client/v4 path).
func Cloudflare(env Env, c Clients) (providers.Provider, error) {
	return cloudflare.New(cloudflare.Config{BaseURL: APIBaseURL(env, cloudflare.Name), Admin: adminsecret.Reader{SM: c.SecretsManager}})
}

// All returns every provider's builder, by name: what the revoker serves.
// It is a function, not a variable, so that a rotation function's binary
// links only its own provider.
func All() map[string]Builder {
	return map[string]Builder{
		gateway.Name:    Gateway,
		"iam":           IAM,
		apigateway.Name: APIGateway,
		sendgrid.Name:   SendGrid,
		twilio.Name:     Twilio,
		datadog.Name:    Datadog,
		cloudflare.Name: Cloudflare,
	}
}

// NewProviders builds every provider of All. A provider that cannot be built
// (say, a vendor URL that is not https) is left out and logged; the revoker
// then fails its messages, which end in the alarmed dead-letter queue.
func NewProviders(env Env, c Clients, log *slog.Logger) map[string]providers.Provider {
	all := All()
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	ps := map[string]providers.Provider{}
	for _, name := range names {
		p, err := all[name](env, c)
		if err != nil {
			log.Warn("provider not available to the revoker", "provider", name, "error", err.Error())
			continue
		}
		ps[name] = p
	}
	return ps
}
