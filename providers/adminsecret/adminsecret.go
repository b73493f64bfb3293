// Package adminsecret reads management credentials (a vendor admin key, a
// Twilio auth token) from the Secrets Manager secret named by a managed
// secret's admin_secret_id field. The value of such a secret is
// {"key": "...", "key_id": "..."}; key_id is optional.
//
// A managed secret's value chooses its admin secret, so the value alone must
// not be enough to use one: an admin secret may be used only by managed
// secrets whose name matches a pattern of its tag keyrotor:admin-for
// (keyrotor.MatchAdminFor), which only those who may tag the admin secret can
// set. Read checks it on every call (the tag is cached with the value), and
// refuses an owner whose identity keyrotor did not set.
package adminsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// SecretsManager is the two calls the reader makes.
type SecretsManager interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Credential is a management credential. KeyID can be secret too: Datadog
// keeps its application key there. So String, GoString and LogValue show
// neither field, and encoding/json leaves both out: a Credential is read
// from Secrets Manager and sent to the vendor, never serialized.
type Credential struct {
	Key   string `json:"-"`
	KeyID string `json:"-"`
}

// String never shows the key or the key id.
func (c Credential) String() string {
	return "adminsecret.Credential{key=" + redacted(c.Key) + " key_id=" + redacted(c.KeyID) + "}"
}

// GoString is String.
func (c Credential) GoString() string { return c.String() }

// LogValue lets slog log a Credential without its key or key id.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redacted(s string) string {
	if s == "" {
		return "<none>"
	}
	return "<redacted>"
}

// Reader reads management credentials. Without a Cache it caches nothing:
// a rotated admin credential is used at the next call.
type Reader struct {
	SM SecretsManager
	// Cache, when set, keeps each admin secret's value for a short time,
	// so that the steps and calls of one rotation (list the keys, create
	// one) read it once. Share one Cache between the Readers of one
	// Secrets Manager client.
	Cache *Cache
}

// DefaultCacheTTL is a Cache's TTL when NewCache is given 0.
const DefaultCacheTTL = time.Minute

// Cache keeps management credentials in process memory for TTL, per admin
// secret id. This is safe because an admin secret is not a key keyrotor
// rotates: its value changes only when an operator rotates the management
// credential, and a stale value then fails at the vendor (a Permission
// error the step reports and Secrets Manager retries) until TTL ends. Never
// cache the value of a managed (rotated) secret: each step must read the
// version its checks name. Errors are not cached. Safe for concurrent use.
type Cache struct {
	ttl     time.Duration
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	cred     Credential
	adminFor string // the keyrotor:admin-for tag
	expires  time.Time
}

// NewCache returns a Cache whose entries live ttl (DefaultCacheTTL if 0).
// now is the clock (nil: time.Now).
func NewCache(ttl time.Duration, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{ttl: ttl, now: now, entries: map[string]cached{}}
}

func (c *Cache) get(id string) (cached, bool) {
	if c == nil {
		return cached{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !c.now().Before(e.expires) {
		delete(c.entries, id)
		return cached{}, false
	}
	return e, true
}

func (c *Cache) put(id string, e cached) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.expires = c.now().Add(c.ttl)
	c.entries[id] = e
}

// Read returns the management credential named by owner's admin_secret_id,
// if the admin secret is bound to owner's secret (its keyrotor:admin-for tag
// matches owner.Secret.Name). op names the vendor operation for errors; a
// refusal wraps providers.ErrUnbound.
func (r Reader) Read(ctx context.Context, op string, owner providers.Credential) (Credential, error) {
	id, err := owner.RequireAttr(op, providers.FieldAdminSecretID)
	if err != nil {
		return Credential{}, err
	}
	if owner.Secret.Name == "" {
		return Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s: %w: the managed secret's identity is unknown", id, providers.ErrUnbound))
	}
	refuse := func(adminFor string) error {
		return providers.E(op, providers.Invalid, fmt.Errorf(
			"admin secret %s may not be used by secret %s: %w (its tag %s=%q matches no pattern of that name); "+
				"whoever owns the admin secret binds it: aws secretsmanager tag-resource --secret-id %s --tags Key=%s,Value=<patterns>",
			id, owner.Secret.Name, providers.ErrUnbound, keyrotor.TagAdminFor, adminFor, id, keyrotor.TagAdminFor))
	}
	e, ok := r.Cache.get(id)
	if !ok {
		// The binding is read first: the value of an admin secret that
		// is not bound to this secret is never read.
		if e.adminFor, err = r.adminFor(ctx, op, id); err != nil {
			return Credential{}, err
		}
		if !keyrotor.MatchAdminFor(e.adminFor, owner.Secret.Name) {
			return Credential{}, refuse(e.adminFor)
		}
		if e.cred, err = r.value(ctx, op, id); err != nil {
			return Credential{}, err
		}
		r.Cache.put(id, e)
	}
	if !keyrotor.MatchAdminFor(e.adminFor, owner.Secret.Name) {
		return Credential{}, refuse(e.adminFor)
	}
	return e.cred, nil
}

// adminFor reads the admin secret's binding tag ("" when it has none).
func (r Reader) adminFor(ctx context.Context, op, id string) (string, error) {
	desc, err := r.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s does not exist", id))
		}
		return "", providers.E(op, providers.KindOf(err), fmt.Errorf("describe admin secret %s (for its %s tag): %w", id, keyrotor.TagAdminFor, err))
	}
	for _, t := range desc.Tags {
		if aws.ToString(t.Key) == keyrotor.TagAdminFor {
			return aws.ToString(t.Value), nil
		}
	}
	return "", nil
}

// value reads the admin secret's AWSCURRENT credential.
func (r Reader) value(ctx context.Context, op, id string) (Credential, error) {
	out, err := r.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s does not exist", id))
		}
		return Credential{}, providers.E(op, providers.KindOf(err), fmt.Errorf("read admin secret %s: %w", id, err))
	}
	var v struct {
		Key   string `json:"key"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v); err != nil || v.Key == "" {
		return Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s is not a JSON object with a \"key\" field", id))
	}
	return Credential{Key: v.Key, KeyID: v.KeyID}, nil
}
