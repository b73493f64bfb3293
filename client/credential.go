package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyrotor/keyrotor/providers"
)

// Credential is a key read from Secrets Manager. Its String, GoString,
// LogValue and MarshalJSON never show Key, so it can end up in a log line or
// an error by mistake without leaking the key.
type Credential struct {
	Key       string    // the secret key applications send
	KeyID     string    // the vendor's id of the key (not secret); some vendors need it beside Key
	Provider  string    // the secret's "provider" field
	CreatedAt time.Time // when the rotator created the key (zero if the secret does not say)
	VersionID string    // the Secrets Manager version the key was read from
	Stage     string    // AWSCURRENT or AWSPREVIOUS
	FetchedAt time.Time // when it was read from Secrets Manager
	// Stale is set when the value is older than the TTL and is served only
	// because refreshing it failed.
	Stale bool

	value providers.Credential
}

// Attr returns the secret's string field name (a provider field such as
// "user_name"), or "" if it is absent or not a string.
func (c Credential) Attr(name string) string { return c.value.Attr(name) }

// String describes c without its key.
func (c Credential) String() string {
	key := "<none>"
	if c.Key != "" {
		key = "<redacted>"
	}
	return fmt.Sprintf("client.Credential{provider=%s key_id=%s key=%s version=%s stage=%s stale=%t}",
		c.Provider, c.KeyID, key, c.VersionID, c.Stage, c.Stale)
}

// GoString is String, so %#v does not print the key either.
func (c Credential) GoString() string { return c.String() }

// LogValue lets slog log a Credential without its key.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("provider", c.Provider),
		slog.String("key_id", c.KeyID),
		slog.String("version_id", c.VersionID),
		slog.Bool("stale", c.Stale),
	)
}

// MarshalJSON writes c without its key.
func (c Credential) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Provider  string    `json:"provider,omitempty"`
		KeyID     string    `json:"key_id,omitempty"`
		VersionID string    `json:"version_id,omitempty"`
		Stage     string    `json:"stage,omitempty"`
		FetchedAt time.Time `json:"fetched_at"`
		Stale     bool      `json:"stale,omitempty"`
	}{c.Provider, c.KeyID, c.VersionID, c.Stage, c.FetchedAt, c.Stale})
}
