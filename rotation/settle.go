package rotation

import "time"

// Settle says when a new key counts as usable where applications use it.
// Vendors accept a new key in one place before another: API Gateway's
// management API knows it before its data plane enforces the usage plan; an
// IAM key answers STS before other services and regions accept it. A single
// successful verification would make the key AWSCURRENT too early, and the
// applications that refresh right then would fail (the grace period keeps
// only the old key alive). testSecret therefore requires Successes
// consecutive successful verifications spanning at least Window; a failure
// starts over.
type Settle struct {
	// Successes is how many verifications in a row must pass (at least 1).
	Successes int
	// Window is the least time between the first and the last of them.
	Window time.Duration
	// Why says what the rule is for (docs/vendors.md repeats it).
	Why string
}

// SettleRules are the settle rules per provider, the one table
// docs/vendors.md describes. A provider not listed uses DefaultSettle.
var SettleRules = map[string]Settle{
	"gateway": {Successes: 1, Why: "the reference gateway enforces a key as soon as it is created"},
	"iam": {Successes: 3, Window: 15 * time.Second,
		Why: "IAM is eventually consistent: a new access key answers STS in one region before other services and regions accept it"},
	"apigateway": {Successes: 3, Window: 20 * time.Second,
		Why: "the data plane enforces a new key and its usage plan after the management API knows it; with a canary URL, Verify asks the data plane"},
	"sendgrid":   {Successes: 2, Window: 5 * time.Second, Why: "a new key is replicated across SendGrid's API hosts"},
	"twilio":     {Successes: 2, Window: 5 * time.Second, Why: "a new API key is replicated across Twilio's regions"},
	"datadog":    {Successes: 2, Window: 5 * time.Second, Why: "a new key is replicated across Datadog's intake and API hosts"},
	"cloudflare": {Successes: 2, Window: 5 * time.Second, Why: "a new token propagates across Cloudflare's edge"},
}

// DefaultSettle is the rule of a provider SettleRules does not list.
var DefaultSettle = Settle{Successes: 2, Window: 5 * time.Second, Why: "a new key may reach one of the vendor's hosts before another"}

// settleFor returns the rule for a provider.
func settleFor(rules map[string]Settle, provider string) Settle {
	s, ok := rules[provider]
	if !ok {
		s = DefaultSettle
	}
	s.Successes = max(s.Successes, 1)
	return s
}
