// Package providers defines what keyrotor needs from a key vendor: the Provider
// interface (create, verify, revoke) with its optional abilities (list, last
// use, set), the Credential that a secret holds, and one error type whose Kind
// is decided where the vendor answered.
//
// A provider talks to its vendor only. Everything about Secrets Manager,
// staging labels and idempotency belongs to package rotation; everything about
// grace periods and deferral belongs to package revocation.
//
// # Errors
//
// Every error a provider returns is, or wraps, an *Error whose Kind says what
// the caller may do: retry a Transient error, never retry Permission or
// Invalid, treat NotFound on revoke as success, and report Conflict (a key
// limit) plainly. Read it with KindOf. Error text never carries key material
// or a vendor response body.
package providers
