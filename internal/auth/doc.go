// Package auth verifies the signed tokens (JWT) clients present to the
// gateway: which id a client may connect as, the topics it may join, and
// until when. Keys are an HS256 secret (a file of at least 32 bytes) and
// public keys (PEM or JWKS: RS256, ES256/384/512, EdDSA), each key
// allowing only the algorithm of its type, so a token signed with HS256
// using an RSA public key as the secret, or with alg "none", is refused.
// Nothing is kept per connection: the gateway keeps only the expiry, in
// the session's slot.
package auth
