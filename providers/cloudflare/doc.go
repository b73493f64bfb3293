// Package cloudflare rotates Cloudflare API tokens, user tokens
// (/user/tokens) and account-owned tokens (/accounts/{account_id}/tokens),
// by create-copy-delete.
//
// Create reads the old token (GET .../tokens/{id}) and creates a new token
// named keyrotor.KeyName(keyrotor.Identity{Name: secret}, token) with the same policies (effect,
// resources, permission group ids; read-only ids stripped), the same
// condition (client IP ranges) and the same expires_on and not_before. The
// copy keeps the old token's absolute expiry: rotation does not extend a
// token's life, and a token whose expiry has passed is refused with an
// Invalid error. Verify calls GET .../tokens/verify with the new token alone
// and requires the status "active". Revoke deletes the old token (a missing
// token is success).
//
// The provider never calls the "roll" endpoint (PUT .../tokens/{id}/value):
// rolling replaces the token's value at once, so the applications still
// holding the old value would fail before they read the new one.
//
// The management calls use a token with the "API Tokens Write" permission
// (com.cloudflare.api.token.create/read/delete; for account-owned tokens
// the account's "Account API Tokens Write"), read from the secret named by
// admin_secret_id. The secret value:
//
//	{"provider":"cloudflare","key":"...","key_id":"...","admin_secret_id":"cloudflare/admin",
//	 "account_id":"023e105f4ecef8ad9ca31a8372d0c353"}
//
// account_id selects account-owned tokens; without it the tokens are the
// admin user's. With no key_id yet (bootstrap) Create takes the policies
// from the secret's "policies" field (Cloudflare's policy objects) and
// optional "condition", "expires_on" and "not_before".
//
// Cloudflare allows 50 user tokens and 500 account tokens. Its answer at
// the limit is not documented, so when a create is refused Create counts
// the tokens and reports a Conflict at the limit. The token object of the
// API version the contract tests use has no last-use time, so the provider
// is no LastUseReporter.
package cloudflare
