// Package sendgrid rotates Twilio SendGrid API keys through the v3 API keys
// API (POST/GET/DELETE /v3/api_keys).
//
// A new key is a copy of the old one: Create reads the old key's scopes with
// GET /v3/api_keys/{id} and creates a key with the same scopes, named
// keyrotor.KeyName(keyrotor.Identity{Name: secret}, token). Verify calls GET /v3/scopes with the new
// key alone and checks that every scope recorded in the secret was granted.
// Revoke deletes the key (a missing key is success); SendGrid notes a small
// propagation delay before a deleted key stops authenticating.
//
// SendGrid creates a Full Access key when the scopes are omitted, so Create
// never does that: with no old key (bootstrap) the scopes come from the
// secret's "scopes" field, and with neither it fails with an Invalid error.
//
// The management calls use an admin key with the api_keys.* scopes, read
// from the secret named by admin_secret_id. The secret value:
//
//	{"provider":"sendgrid","key":"SG...","key_id":"...","admin_secret_id":"sendgrid/admin",
//	 "region":"eu","on_behalf_of":"subuser-name","scopes":["mail.send"]}
//
// region "eu" selects https://api.eu.sendgrid.com (EU regional subusers);
// on_behalf_of sends the on-behalf-of header on management calls (keys of
// a subuser managed with the parent's admin key). Both are optional.
//
// At most 100 keys exist per user: SendGrid answers 403 at the limit, the
// same status as a refused admin key, so on a 403 Create counts the keys and
// reports a Conflict when the limit is reached. SendGrid does not report
// when a key was last used, so the provider is no LastUseReporter.
package sendgrid
