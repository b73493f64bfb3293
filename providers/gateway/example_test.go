package gateway_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// adminToken stands in for adminsecret.Reader, which reads the token from
// the Secrets Manager secret named by the owner's admin_secret_id.
type adminToken string

func (a adminToken) Read(context.Context, string, providers.Credential) (adminsecret.Credential, error) {
	return adminsecret.Credential{Key: string(a)}, nil
}

func Example() {
	srv := httptest.NewServer(gateway.NewServer(gateway.ServerOptions{AdminToken: "admin-token", MaxKeys: 2}))
	defer srv.Close()

	p, err := gateway.New(gateway.Config{BaseURL: srv.URL, Admin: adminToken("admin-token")})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	owner, _ := providers.Credential{Provider: "gateway"}.WithAttr(providers.FieldAdminSecretID, "gateway/admin")
	secret := "payments/app-key"
	cred, err := p.Create(ctx, providers.CreateRequest{SecretName: secret, KeyName: keyrotor.KeyName(keyrotor.Identity{Name: secret}, "token-1"), Owner: owner})
	if err != nil {
		panic(err)
	}
	fmt.Println("verify:", p.Verify(ctx, cred))
	keys, _ := p.ListKeys(ctx, owner, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: secret}))
	fmt.Println("keys:", len(keys))
	fmt.Println("revoke:", p.Revoke(ctx, owner, cred.KeyID))
	fmt.Println("verify after revoke:", providers.KindOf(p.Verify(ctx, cred)))
	// Output:
	// verify: <nil>
	// keys: 1
	// revoke: <nil>
	// verify after revoke: permission
}
