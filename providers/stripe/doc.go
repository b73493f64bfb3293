// Package stripe verifies Stripe secret (sk_) and restricted (rk_) keys.
// Stripe has no public API that creates, lists, rolls or deletes API keys,
// so keyrotor cannot rotate them: this provider's Verify is real, while
// Create and Revoke return Invalid errors (ErrCannotMint, ErrCannotRevoke)
// that say what to do by hand. No rotation function pretends to rotate
// Stripe.
//
// Verify calls GET /v1/balance with the key alone. 401 means Stripe does
// not know the key (a Permission error). 403 means Stripe authenticated the
// key but it may not read the balance (a restricted key without that
// permission), so the key is live and Verify returns nil.
//
// # The manual rotation
//
//  1. In the Stripe Dashboard (Developers → API keys), roll the key and
//     choose an expiry for the old one that leaves the applications time to
//     pick up the new key (their cache TTL plus a margin).
//  2. Run `keyrotor import SECRET` and paste the new key on stdin. The
//     command verifies it with this provider's Verify before it writes
//     anything, then stores it as the secret's new AWSCURRENT version
//     ({"provider":"stripe","key":"sk_live_...","created_at":...}) with the
//     old key's expiry recorded in "previous_key_expires_at" (RFC 3339), so
//     the auditor can track key age and the expiry.
//  3. Nothing revokes the old key: Stripe expires it at the time chosen in
//     step 1. Revoke therefore refuses (ErrCannotRevoke) rather than report
//     a revocation that did not happen; import must not enqueue one.
//
// The secret needs no provider fields. API_BASE_URL overrides the API root
// (default https://api.stripe.com).
package stripe
