package function

import (
	"log/slog"
	"sort"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/gateway"
	"github.com/keyrotor/keyrotor/providers/iam"
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

// All returns every provider's builder, by name: what the revoker serves.
// It is a function, not a variable, so that a rotation function's binary
// links only its own provider.
func All() map[string]Builder {
	return map[string]Builder{
		"gateway": Gateway,
		"iam":     IAM,
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
