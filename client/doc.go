// Package client is what applications import to read API keys that keyrotor
// rotates in AWS Secrets Manager, and to keep working while they rotate.
//
// A Client reads the AWSCURRENT version of a secret (the JSON value described
// in package providers) through a cache with a TTL, refreshes it in the
// background shortly before it expires, lets one refresh per secret run at a
// time, and keeps serving the cached key for a while when Secrets Manager
// cannot be reached. Transport puts the key on outgoing HTTP requests and, when
// the vendor answers 401 because the key was revoked under the cache,
// refreshes the key once and retries the request once with the new key.
//
// Adopting it takes five lines:
//
//	sm := secretsmanager.NewFromConfig(cfg)
//	keys := client.New(sm, nil) // 5 minute TTL
//	httpClient := &http.Client{
//		Transport: keys.Transport(nil, "prod/payments-api-key", client.Bearer, "api.example.com"),
//	}
//
// or, without HTTP: cred, err := keys.Key(ctx, "prod/payments-api-key").
//
// # Where the key goes
//
// Transport authenticates only requests to the vendor: the hosts it was given
// or, when none were, the host of its first request, over https (plain http
// only to a loopback host, for tests and the local stack). Every other
// request, such as one that an http.Client follows after a redirect to
// another host, is sent without the key, and its answer triggers nothing.
// net/http drops an Authorization header the caller set when it follows a
// redirect to another domain, but a RoundTripper adds its header to every hop,
// so Transport has to make that choice itself. Naming the hosts is safer than
// learning one: a Transport shared by code that talks to other hosts first
// would learn the wrong one (and then never send the key to the vendor).
//
// # What counts as a refused key
//
// Only a 401, by default. Many vendors answer 403 to a live key that lacks a
// permission (Stripe's restricted keys, SendGrid's scopes), where refreshing
// cannot help and replaying would only add noise; set
// Transport.ForbiddenMeansRevoked for the vendors that answer 403 to a revoked
// key (Datadog, AWS API Gateway's API keys, Fastly). A refused request is
// replayed with the new key only if it is idempotent (GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE, or an Idempotency-Key header); set
// Transport.ReplayNonIdempotent for a vendor that checks the key before acting
// on a POST or PATCH.
//
// # Choosing the TTL
//
// Rotation is zero-downtime when every instance has picked up the new key
// before the old one is revoked, so the secret's grace period
// (keyrotor:grace-period) must exceed the longest TTL of any reader plus the
// deploy lag. Transport covers the case where it does not: a 401 forces a
// refresh that bypasses the cache.
//
// # Signals
//
// Options.OnEvent receives every authentication failure Transport sees, every
// refresh it forces, and every stale serve. EMF turns them into CloudWatch
// Embedded Metric Format lines (metrics AuthFailures, ForcedRefreshes,
// StaleServes with the dimension SecretName) for the "authentication failures
// spike" and "old key still in use" alarms.
//
// The client never logs, and a Credential never prints its key.
//
// docs/client.md in the repository says more: the options, what Transport
// does on a refusal, and how to choose a TTL.
package client
