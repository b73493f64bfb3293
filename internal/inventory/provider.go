package inventory

import (
	"sort"
	"strings"
	"unicode"
)

// Provider is a provider named in an inventory.
type Provider struct {
	// Name is keyrotor's provider id ("gateway", "sendgrid"): the secret's
	// "provider" field and the rotation function's folder.
	Name string
	// Spelling is how the inventory wrote it ("Internal API Gateway").
	Spelling string
	// KeyAPI is false for vendors that cannot mint keys through an API
	// (Stripe): their keys are imported by hand (keyrotor import) and
	// their schedule is a key-age reminder.
	KeyAPI bool
}

// spellings maps a provider name folded to lower-case letters and digits to
// keyrotor's provider id. It accepts the guide's spellings ("SendGrid",
// "Internal API Gateway", "internal_gateway").
var spellings = map[string]string{
	"gateway":            "gateway",
	"internalgateway":    "gateway",
	"internalapigateway": "gateway",
	"iam":                "iam",
	"awsiam":             "iam",
	"apigateway":         "apigateway",
	"awsapigateway":      "apigateway",
	"amazonapigateway":   "apigateway",
	"sendgrid":           "sendgrid",
	"twilio":             "twilio",
	"datadog":            "datadog",
	"cloudflare":         "cloudflare",
	"stripe":             "stripe",
}

// manual lists the providers without a key API.
var manual = map[string]bool{"stripe": true}

// LookupProvider resolves a provider as an inventory spells it.
func LookupProvider(s string) (Provider, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	name, ok := spellings[b.String()]
	if !ok {
		return Provider{}, false
	}
	return Provider{Name: name, Spelling: s, KeyAPI: !manual[name]}, true
}

// ProviderNames returns keyrotor's provider ids, sorted.
func ProviderNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range spellings {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
