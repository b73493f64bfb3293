// Package providertest is the conformance suite every provider package runs
// against a vendor it starts itself (a reference server, a fake over HTTP, or
// moto): keys are minted with a key and an id, verify, list, report last use,
// revoke idempotently, and fail with the right Kind.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// Harness describes the provider under test.
type Harness struct {
	// New returns the provider, talking to a fresh vendor, and the owner: a
	// secret value (without a key) whose provider fields name an owner that
	// holds no keys yet. It registers its own cleanup with t.
	New func(t *testing.T) (providers.Provider, providers.Credential)
	// MaxKeys is the vendor's key limit per owner, 0 if there is none the
	// suite should reach. With a limit, the suite checks that the next
	// Create fails with a Conflict error.
	MaxKeys int
	// NamelessKeys is set for vendors whose keys have no names (IAM): ListKeys
	// then returns every key of the owner whatever the prefix.
	NamelessKeys bool
	// UnknownKeyID is a well-formed id of a key that does not exist.
	UnknownKeyID string
	// VerifyTimeout bounds how long Verify may take to accept a new key
	// (propagation). Default 5 s.
	VerifyTimeout time.Duration
}

const secretName = "conformance/app-key"

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.VerifyTimeout == 0 {
		h.VerifyTimeout = 5 * time.Second
	}
	ctx := context.Background()

	t.Run("Lifecycle", func(t *testing.T) {
		p, owner := h.New(t)
		if p.Name() == "" || p.Name() != owner.Provider {
			t.Fatalf("Name()=%q, owner provider %q: want equal and non-empty", p.Name(), owner.Provider)
		}
		a := mustCreate(ctx, t, p, owner, "tok-a")
		b := mustCreate(ctx, t, p, owner, "tok-b")
		if a.KeyID == b.KeyID || a.Key == b.Key {
			t.Fatalf("two creates returned the same key or key id (%s, %s)", a.KeyID, b.KeyID)
		}
		for _, c := range []providers.Credential{a, b} {
			if strings.Contains(c.String(), c.Key) || strings.Contains(fmt.Sprintf("%v %+v %#v", c, c, c), c.Key) {
				t.Fatalf("formatting a Credential shows its key")
			}
			verifyEventually(ctx, t, p, c, h.VerifyTimeout)
		}

		if l, ok := p.(providers.Lister); ok {
			keys, err := l.ListKeys(ctx, owner, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: secretName}))
			if err != nil {
				t.Fatalf("ListKeys: %v", err)
			}
			ids := map[string]providers.KeyInfo{}
			for _, k := range keys {
				ids[k.ID] = k
			}
			for _, c := range []providers.Credential{a, b} {
				k, ok := ids[c.KeyID]
				if !ok {
					t.Fatalf("ListKeys does not return created key %s", c.KeyID)
				}
				if !h.NamelessKeys && !strings.HasPrefix(k.Name, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: secretName})) {
					t.Fatalf("listed key %s has name %q, want the prefix %q", k.ID, k.Name, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: secretName}))
				}
			}
			if !h.NamelessKeys {
				other, err := l.ListKeys(ctx, owner, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: "some/other-secret"}))
				if err != nil {
					t.Fatalf("ListKeys(other prefix): %v", err)
				}
				for _, k := range other {
					if k.ID == a.KeyID || k.ID == b.KeyID {
						t.Fatalf("ListKeys with another secret's prefix returned key %s", k.ID)
					}
				}
			}
		}

		if lu, ok := p.(providers.LastUseReporter); ok {
			used, err := lu.LastUsed(ctx, owner, a.KeyID)
			if err != nil {
				t.Fatalf("LastUsed after Verify: %v", err)
			}
			if used.IsZero() {
				t.Fatalf("LastUsed(%s) is zero after the key was used by Verify", a.KeyID)
			}
		}

		if h.MaxKeys == 2 {
			_, err := p.Create(ctx, createReq(owner, "tok-c"))
			if !providers.IsKind(err, providers.Conflict) {
				t.Fatalf("Create beyond the limit of %d keys: err=%v, want a Conflict error", h.MaxKeys, err)
			}
			checkOp(t, err)
		}

		for _, c := range []providers.Credential{a, b} {
			if err := p.Revoke(ctx, owner, c.KeyID); err != nil {
				t.Fatalf("Revoke(%s): %v", c.KeyID, err)
			}
			err := p.Verify(ctx, c)
			if !providers.IsKind(err, providers.Permission) {
				t.Fatalf("Verify of revoked key %s: err=%v, want a Permission error", c.KeyID, err)
			}
			checkOp(t, err)
			if err := p.Revoke(ctx, owner, c.KeyID); err != nil {
				t.Fatalf("second Revoke(%s) = %v, want nil (idempotent)", c.KeyID, err)
			}
		}
		if lu, ok := p.(providers.LastUseReporter); ok {
			_, err := lu.LastUsed(ctx, owner, a.KeyID)
			if !providers.IsKind(err, providers.NotFound) {
				t.Fatalf("LastUsed of a revoked key: err=%v, want NotFound", err)
			}
		}
	})

	t.Run("RevokeUnknownKey", func(t *testing.T) {
		p, owner := h.New(t)
		id := h.UnknownKeyID
		if id == "" {
			id = "keyrotor-conformance-unknown"
		}
		if err := p.Revoke(ctx, owner, id); err != nil {
			t.Fatalf("Revoke(unknown %s) = %v, want nil", id, err)
		}
	})

	t.Run("VerifyRejectsBogusKey", func(t *testing.T) {
		p, owner := h.New(t)
		good := mustCreate(ctx, t, p, owner, "tok-bogus")
		t.Cleanup(func() { _ = p.Revoke(context.Background(), owner, good.KeyID) })
		bogus := good
		bogus.Key = "keyrotor-not-a-real-key-" + strings.Repeat("x", 20)
		err := p.Verify(ctx, bogus)
		if !providers.IsKind(err, providers.Permission) {
			t.Fatalf("Verify(bogus key) err=%v, want Permission", err)
		}
		if strings.Contains(err.Error(), bogus.Key) {
			t.Fatalf("the error quotes the key")
		}
	})

	t.Run("CanceledContextIsTransient", func(t *testing.T) {
		p, owner := h.New(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := p.Create(cctx, createReq(owner, "tok-cancel"))
		if err == nil {
			t.Fatalf("Create with a canceled context succeeded")
		}
		if k := providers.KindOf(err); k != providers.Transient {
			t.Fatalf("Create with a canceled context: kind %v, want transient (%v)", k, err)
		}
	})
}

func createReq(owner providers.Credential, token string) providers.CreateRequest {
	return providers.CreateRequest{SecretName: secretName, KeyName: keyrotor.KeyName(keyrotor.Identity{Name: secretName}, token), Owner: owner}
}

func mustCreate(ctx context.Context, t *testing.T, p providers.Provider, owner providers.Credential, token string) providers.Credential {
	t.Helper()
	c, err := p.Create(ctx, createReq(owner, token))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.Key == "" || c.KeyID == "" {
		t.Fatalf("Create returned key_id=%q and an empty=%v key", c.KeyID, c.Key == "")
	}
	return c
}

func verifyEventually(ctx context.Context, t *testing.T, p providers.Provider, c providers.Credential, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := p.Verify(ctx, c)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Verify(new key %s) still failing after %v: %v", c.KeyID, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkOp(t *testing.T, err error) {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Op == "" {
		t.Fatalf("error %v is not a *providers.Error with an Op", err)
	}
}
