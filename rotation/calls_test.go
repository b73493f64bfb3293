package rotation_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// TestGatewayRotationSecretsManagerCalls counts the Secrets Manager calls of
// a full gateway rotation against the reference gateway on a loopback port:
// four DescribeSecret (one per step), five reads of the secret's versions
// (createSecret: AWSCURRENT and the AWSPENDING probe; testSecret:
// AWSPENDING; finishSecret: AWSPENDING and AWSCURRENT), one PutSecretValue,
// two UpdateSecretVersionStage, and the admin secret's reads: one with an
// adminsecret.Cache (listing the keys and creating one share it), two
// without.
func TestGatewayRotationSecretsManagerCalls(t *testing.T) {
	for _, tc := range []struct {
		cache      *adminsecret.Cache
		total, gsv int
	}{
		// One DescribeSecret of the admin secret per read of it (its
		// keyrotor:admin-for binding): one with the cache, one per
		// vendor call without.
		{adminsecret.NewCache(time.Minute, nil), 14, 6},
		{nil, 18, 8},
	} {
		t.Run(fmt.Sprintf("cache=%v", tc.cache != nil), func(t *testing.T) {
			gw := gateway.NewServer(gateway.ServerOptions{AdminToken: "admin-token", MaxKeys: 2})
			srv := httptest.NewServer(gw)
			defer srv.Close()
			e := newEnv(t, nil)
			e.sm = smfake.New()
			e.sm.Create("keyrotor/admin/gateway", `{"key":"admin-token"}`, map[string]string{keyrotor.TagAdminFor: "prod/*"})
			initial, err := gw.CreateKey(keyrotor.KeyName(testenv.Identity(secretName), "initial"), "")
			if err != nil {
				t.Fatal(err)
			}
			e.sm.Create(secretName, fmt.Sprintf(`{"provider":"gateway","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/gateway"}`, initial.Key, initial.ID), nil)
			p, err := gateway.New(gateway.Config{BaseURL: srv.URL, Admin: adminsecret.Reader{SM: e.sm, Cache: tc.cache}})
			if err != nil {
				t.Fatal(err)
			}
			e.r = e.rotatorWith(e.sm, p, e.q, time.Hour)
			e.rotate(token)
			if cur := e.current(); cur.KeyID == initial.ID || len(e.q.sent) != 1 || e.q.sent[0].msg.KeyID != initial.ID {
				t.Fatalf("the rotation did not complete: current %s, messages %+v", cur.KeyID, e.q.sent)
			}
			calls := map[string]int{}
			for _, op := range []string{"DescribeSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage", "ListSecretVersionIds"} {
				calls[op] = e.sm.Calls(op)
			}
			if n := e.sm.TotalCalls(); n > tc.total || calls["GetSecretValue"] > tc.gsv {
				t.Fatalf("%d Secrets Manager calls for a gateway rotation (%v), want at most %d with %d GetSecretValue", n, calls, tc.total, tc.gsv)
			}
		})
	}
}
