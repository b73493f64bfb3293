package testenv

import (
	"net/http"
	"testing"
)

// GatewayPing calls GET /v1/ping of the reference gateway at url with key
// (Authorization: Bearer) and returns the status it answered.
func GatewayPing(t testing.TB, url, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/v1/ping", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
