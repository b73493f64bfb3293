// Package gateway rotates the keys of our internal API gateway, and holds a
// reference implementation of that gateway for the local stack, the demo and
// tests.
//
// The gateway is our own contract, written down in openapi.yaml beside this
// file: an admin API (POST, GET and DELETE /v1/keys) authenticated with an
// admin token, and a data plane whose one protected endpoint, GET /v1/ping,
// answers 200 {"ok":true,"key_id":"..."} for a live key and 401 otherwise.
// Errors are JSON {"error":"code","message":"..."} and every response carries
// an X-Request-Id header.
//
// # Secrets
//
// A gateway secret holds the key applications send as a bearer token, the
// gateway's id of that key, and the name of the secret holding the admin token:
//
//	{"provider":"gateway","key":"gw_...","key_id":"key_...","admin_secret_id":"gateway/admin"}
//
// The admin secret's value is {"key":"<admin token>"} (see package
// adminsecret). It is read at every admin call, so rotating it takes effect at
// once and no admin token ever sits in an environment variable.
//
// # Authentication
//
// Provider sends Authorization: Bearer <admin token> to the admin API, and
// Verify sends Authorization: Bearer <key> to /v1/ping with nothing else, so a
// passing Verify proves the new key works on its own. Keys are named
// keyrotor.KeyName(keyrotor.Identity{Name: secret}, token), and ListKeys asks for (and filters on)
// the secret's name prefix. The provider never retries: the rotation engine
// and the revoker decide, from the Kind of its errors. It never follows a
// redirect either (vendorhttp.NoRedirects, as every HTTP vendor): a redirect
// could carry the admin token to another host, so a 3xx is an error of the
// call.
//
// # Reference server
//
// Server (NewServer) keeps keys in memory, stores only a hash of each value,
// logs nothing, can cap the number of keys (409 key_limit_reached) and delay
// a new key's acceptance (propagation). FaultInjector wraps it to make the
// admin API fail with 503, 429 or a hang while /v1/ping keeps working.
package gateway
