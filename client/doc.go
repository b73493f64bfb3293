// Package client is what applications import to read API keys that keyrotor
// rotates in AWS Secrets Manager, and to keep working while they rotate.
//
// A Client reads the AWSCURRENT version of a secret (the JSON value described
// in package providers) through a cache with a TTL, refreshes it in the
// background shortly before it expires, lets one refresh per secret run at a
// time, and keeps serving the cached key for a while when Secrets Manager
// cannot be reached. Transport puts the key on outgoing HTTP requests and, when
// the vendor answers 401 or 403 because the key was revoked under the cache,
// refreshes the key once and retries the request once with the new key.
//
// Adopting it takes five lines:
//
//	sm := secretsmanager.NewFromConfig(cfg)
//	keys := client.New(sm, nil) // 5 minute TTL
//	httpClient := &http.Client{
//		Transport: keys.Transport(nil, "prod/payments-api-key", client.Bearer),
//	}
//
// or, without HTTP: cred, err := keys.Key(ctx, "prod/payments-api-key").
//
// # Choosing the TTL
//
// Rotation is zero-downtime when every instance has picked up the new key
// before the old one is revoked, so the secret's grace period
// (keyrotor:grace-period) must exceed the longest TTL of any reader plus the
// deploy lag. Transport covers the case where it does not: a 401 or 403
// forces a refresh that bypasses the cache.
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
