// Package fakeprovider is an in-memory key vendor implementing every
// provider interface, with hooks to fail calls, for fast unit tests of the
// rotation engine and the revoker. Provider packages are tested against
// real or HTTP-faked vendors instead.
package fakeprovider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/providers"
)

// Key is a key at the fake vendor.
type Key struct {
	ID, Name, Secret string
	LastUsed         time.Time
	CreatedAt        time.Time
}

// Provider is the fake vendor and its provider. Name is "fake".
type Provider struct {
	mu      sync.Mutex
	keys    map[string]*Key
	seq     int
	created int
	// MaxKeys, when > 0, makes Create fail with Conflict at that many keys.
	MaxKeys int
	// Before runs before every call with the operation ("Create", "Verify",
	// "Revoke", "ListKeys", "LastUsed"); an error fails the call before it
	// changes anything.
	Before func(op string) error
	// VerifyFailures makes the next N Verify calls fail with Permission
	// (a key that has not propagated yet).
	VerifyFailures int
	Now            func() time.Time
	// Nameless makes the vendor behave like IAM: keys have no names, and
	// ListKeys returns every key with its creation time.
	Nameless bool
	// Owners records the owner each Revoke was called with, by key id.
	Owners map[string]providers.Credential
}

// New returns an empty fake vendor.
func New() *Provider { return &Provider{keys: map[string]*Key{}, Now: time.Now} }

var _ providers.Provider = (*Provider)(nil)
var _ providers.Lister = (*Provider)(nil)
var _ providers.LastUseReporter = (*Provider)(nil)

// Name is "fake".
func (p *Provider) Name() string { return "fake" }

func (p *Provider) hook(op string) error {
	if p.Before != nil {
		if err := p.Before(op); err != nil {
			return err
		}
	}
	return nil
}

// Add puts a key at the vendor, as if minted earlier, and returns it.
func (p *Provider) Add(name string) Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.add(name)
}

func (p *Provider) add(name string) *Key {
	p.seq++
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	if p.Nameless {
		name = ""
	}
	k := &Key{ID: "fk" + strconv.Itoa(1000+p.seq), Name: name, Secret: "fakesecret-" + hex.EncodeToString(b), CreatedAt: p.Now()}
	p.keys[k.ID] = k
	return k
}

// Create mints a key.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return providers.Credential{}, providers.E("fake.Create", providers.Transient, err)
	}
	if err := p.hook("Create"); err != nil {
		return providers.Credential{}, err
	}
	if p.MaxKeys > 0 && len(p.keys) >= p.MaxKeys {
		return providers.Credential{}, providers.E("fake.Create", providers.Conflict, errors.New("key limit reached"))
	}
	k := p.add(req.KeyName)
	p.created++
	return providers.Credential{Provider: "fake", Key: k.Secret, KeyID: k.ID, CreatedAt: k.CreatedAt}, nil
}

// Verify accepts a live key and records its use.
func (p *Provider) Verify(_ context.Context, c providers.Credential) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.hook("Verify"); err != nil {
		return err
	}
	if p.VerifyFailures > 0 {
		p.VerifyFailures--
		return providers.E("fake.Verify", providers.Permission, errors.New("key not active yet"))
	}
	k, ok := p.keys[c.KeyID]
	if !ok || k.Secret != c.Key {
		return providers.E("fake.Verify", providers.Permission, errors.New("unknown key"))
	}
	k.LastUsed = p.Now()
	return nil
}

// Revoke deletes a key; nil if it is gone.
func (p *Provider) Revoke(_ context.Context, owner providers.Credential, keyID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.hook("Revoke"); err != nil {
		return err
	}
	if p.Owners == nil {
		p.Owners = map[string]providers.Credential{}
	}
	p.Owners[keyID] = owner
	delete(p.keys, keyID)
	return nil
}

// ListKeys lists the keys whose names start with prefix.
func (p *Provider) ListKeys(_ context.Context, _ providers.Credential, prefix string) ([]providers.KeyInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.hook("ListKeys"); err != nil {
		return nil, err
	}
	var out []providers.KeyInfo
	for _, k := range p.keys {
		if p.Nameless || strings.HasPrefix(k.Name, prefix) {
			out = append(out, providers.KeyInfo{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt})
		}
	}
	return out, nil
}

// LastUsed reports a key's last use.
func (p *Provider) LastUsed(_ context.Context, _ providers.Credential, keyID string) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.hook("LastUsed"); err != nil {
		return time.Time{}, err
	}
	k, ok := p.keys[keyID]
	if !ok {
		return time.Time{}, providers.E("fake.LastUsed", providers.NotFound, errors.New("no such key"))
	}
	return k.LastUsed, nil
}

// Use records a use of keyID at t.
func (p *Provider) Use(keyID string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.keys[keyID]; ok {
		k.LastUsed = t
	}
}

// Live returns the ids of the live keys.
func (p *Provider) Live() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for id := range p.keys {
		out[id] = true
	}
	return out
}

// Secret returns the secret of a live key ("" if none).
func (p *Provider) Secret(keyID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.keys[keyID]; ok {
		return k.Secret
	}
	return ""
}

// Created returns how many keys Create minted.
func (p *Provider) Created() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.created
}

// Plain wraps a provider so that only the four Provider methods show: no
// listing and no last use.
type Plain struct{ providers.Provider }
