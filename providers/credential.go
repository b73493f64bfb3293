package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/keyrotor/keyrotor"
)

// Credential is the value of a managed secret: one JSON object with the
// provider, the key applications use, the vendor's id of that key, when it was
// created, and provider fields (Attrs) that say what to rotate:
//
//	{"provider":"iam","key":"...","key_id":"AKIA...","created_at":"2026-11-25T17:00:00Z","user_name":"payments-bot"}
//
// Its String, GoString and LogValue never show Key, so a Credential can be
// logged or put in an error by mistake without leaking the key.
type Credential struct {
	Provider  string
	Key       string
	KeyID     string
	CreatedAt time.Time
	// Attrs holds every other field of the secret as raw JSON, so that a
	// round trip through keyrotor loses nothing.
	Attrs map[string]json.RawMessage
	// Secret is the identity of the managed secret this value was read
	// from. keyrotor sets it from the ARN that DescribeSecret returns, never
	// from the value (ParseSecret leaves it zero, and it is never written).
	// Bindings are checked against it (the IAM user's keyrotor:secret tag,
	// the admin secret's keyrotor:admin-for patterns); a provider that needs
	// a binding refuses an owner whose Secret is zero.
	Secret keyrotor.Identity
}

// Field names of the secret value that Credential owns.
const (
	FieldProvider  = "provider"
	FieldKey       = "key"
	FieldKeyID     = "key_id"
	FieldCreatedAt = "created_at"
	// FieldAdminSecretID names the secret holding a management credential.
	FieldAdminSecretID = "admin_secret_id"
)

// ErrInvalidSecret is wrapped by ParseSecret's errors.
var ErrInvalidSecret = errors.New("invalid secret value")

// ErrNoProvider is ParseSecret's error for a value without "provider": a
// secret keyrotor does not manage (a plain password, another tool's JSON).
// It wraps ErrInvalidSecret.
var ErrNoProvider = fmt.Errorf("%w: field %q is missing", ErrInvalidSecret, FieldProvider)

// ParseSecret parses a secret value. The error never quotes the value.
func ParseSecret(s string) (Credential, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Credential{}, fmt.Errorf("%w: not a JSON object", ErrInvalidSecret)
	}
	if dec.More() {
		return Credential{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidSecret)
	}
	var c Credential
	str := func(name string, dst *string) error {
		v, ok := raw[name]
		if !ok {
			return nil
		}
		delete(raw, name)
		if string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%w: field %q is not a string", ErrInvalidSecret, name)
		}
		return nil
	}
	var created string
	for _, f := range []struct {
		name string
		dst  *string
	}{{FieldProvider, &c.Provider}, {FieldKey, &c.Key}, {FieldKeyID, &c.KeyID}, {FieldCreatedAt, &created}} {
		if err := str(f.name, f.dst); err != nil {
			return Credential{}, err
		}
	}
	if c.Provider == "" {
		return Credential{}, ErrNoProvider
	}
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return Credential{}, fmt.Errorf("%w: field %q is not an RFC 3339 time", ErrInvalidSecret, FieldCreatedAt)
		}
		c.CreatedAt = t
	}
	if len(raw) > 0 {
		c.Attrs = raw
	}
	return c, nil
}

// MarshalJSON writes the flat secret object; attributes never override the
// fields Credential owns.
func (c Credential) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(c.Attrs)+4)
	for k, v := range c.Attrs {
		out[k] = v
	}
	out[FieldProvider] = c.Provider
	if c.Key != "" {
		out[FieldKey] = c.Key
	} else {
		delete(out, FieldKey)
	}
	if c.KeyID != "" {
		out[FieldKeyID] = c.KeyID
	} else {
		delete(out, FieldKeyID)
	}
	if !c.CreatedAt.IsZero() {
		out[FieldCreatedAt] = c.CreatedAt.UTC().Format(time.RFC3339)
	} else {
		delete(out, FieldCreatedAt)
	}
	return json.Marshal(out)
}

// UnmarshalJSON is ParseSecret.
func (c *Credential) UnmarshalJSON(b []byte) error {
	v, err := ParseSecret(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// SecretString returns the JSON to store in Secrets Manager.
func (c Credential) SecretString() (string, error) {
	b, err := c.MarshalJSON()
	return string(b), err
}

// Attr returns the string attribute name, or "" if it is absent or not a string.
func (c Credential) Attr(name string) string {
	var s string
	if v, ok := c.Attrs[name]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

// AttrInto decodes attribute name into dst. It reports false if it is absent.
func (c Credential) AttrInto(name string, dst any) (bool, error) {
	v, ok := c.Attrs[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return true, fmt.Errorf("%w: field %q: %v", ErrInvalidSecret, name, err)
	}
	return true, nil
}

// WithAttr returns a copy of c with attribute name set to v.
func (c Credential) WithAttr(name string, v any) (Credential, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return c, err
	}
	attrs := make(map[string]json.RawMessage, len(c.Attrs)+1)
	for k, old := range c.Attrs {
		attrs[k] = old
	}
	attrs[name] = b
	c.Attrs = attrs
	return c, nil
}

// RequireAttr returns the string attribute name or an Invalid error naming it.
func (c Credential) RequireAttr(op, name string) (string, error) {
	v := c.Attr(name)
	if v == "" {
		return "", E(op, Invalid, fmt.Errorf("the secret has no %q field", name))
	}
	return v, nil
}

// String describes c without its key.
func (c Credential) String() string {
	keys := make([]string, 0, len(c.Attrs))
	for k := range c.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprintf("Credential{provider=%s key_id=%s key=%s attrs=%v}", c.Provider, c.KeyID, redacted(c.Key), keys)
}

// GoString is String, so %#v does not print the key either.
func (c Credential) GoString() string { return c.String() }

// LogValue lets slog log a Credential without its key.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider", c.Provider), slog.String("key_id", c.KeyID))
}

func redacted(s string) string {
	if s == "" {
		return "<none>"
	}
	return "<redacted>"
}
