package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// memorySecret stands in for Secrets Manager in the example; an application
// passes secretsmanager.NewFromConfig(cfg).
type memorySecret struct {
	mu      sync.Mutex
	version int
	value   string
}

func (m *memorySecret) put(k gateway.CreatedKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	m.value = fmt.Sprintf(`{"provider":"gateway","key":%q,"key_id":%q}`, k.Key, k.ID)
}

func (m *memorySecret) GetSecretValue(_ context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &secretsmanager.GetSecretValueOutput{
		VersionId:    aws.String(fmt.Sprint("v", m.version)),
		SecretString: aws.String(m.value),
	}, nil
}

// An application whose key is rotated, and the old key revoked, while its
// cache still holds the old key: Transport's refresh on 401 keeps every
// request succeeding.
func Example() {
	gw := gateway.NewServer(gateway.ServerOptions{AdminToken: "admin-token"})
	vendor := httptest.NewServer(gw)
	defer vendor.Close()
	old, _ := gw.CreateKey("app-1", "")
	sm := &memorySecret{}
	sm.put(old)
	start := time.Now()
	clock := start // the example moves time by hand

	// The application.
	keys := client.New(sm, &client.Options{
		TTL:     2 * time.Hour, // longer than the grace period: a mistake Transport survives
		Now:     func() time.Time { return clock },
		OnEvent: func(e client.Event) { fmt.Println("event:", e.Kind, e.SecretID, e.Status) },
	})
	api := &http.Client{Transport: keys.Transport(nil, "prod/gateway-key", client.Bearer, vendor.Listener.Addr().String())}
	ping := func() {
		resp, err := api.Get(vendor.URL + "/v1/ping")
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}

	ping()
	// An hour later the key is rotated and, the grace period over, the old
	// one is revoked.
	clock = start.Add(time.Hour)
	next, _ := gw.CreateKey("app-2", "")
	sm.put(next)
	gw.RevokeKey(old.ID)
	ping()
	ping()

	cred, _ := keys.Key(context.Background(), "prod/gateway-key")
	fmt.Println("now using the new key:", cred.KeyID == next.ID, cred.VersionID)
	// Output:
	// 200 OK
	// event: AuthFailure prod/gateway-key 401
	// event: ForcedRefresh prod/gateway-key 0
	// 200 OK
	// 200 OK
	// now using the new key: true v2
}
