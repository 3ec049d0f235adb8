package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/obs"
)

// Config says where a Verifier's keys are.
type Config struct {
	// SecretFile holds the HS256 secret: the file's bytes, without a
	// trailing newline; at least 32 of them.
	SecretFile string
	// KeysFile holds public keys: PEM blocks (PUBLIC KEY, RSA PUBLIC KEY
	// or CERTIFICATE; a "kid" PEM header names one) or a JWKS document
	// ({"keys": [...]}).
	KeysFile string
	// Leeway is the clock skew allowed on exp and nbf. Default 0.
	Leeway time.Duration
	// MaxTokenLen refuses longer tokens before parsing them. Default
	// 8192.
	MaxTokenLen int
	// AllowNoExp accepts tokens without an "exp" claim (they never
	// expire). Default false: a token must say when it expires.
	AllowNoExp bool
	// Audience and Issuer, if set, are asked of every token's "aud"
	// (one of its values) and "iss". Default "": not checked.
	Audience, Issuer string
	// MaxLifetime refuses a token whose "exp" is further than this from
	// now: a token leaked from a log or a page cannot be kept for ever.
	// Default 24h; negative: no bound.
	MaxLifetime time.Duration
}

// DefaultMaxLifetime is Config.MaxLifetime's default.
const DefaultMaxLifetime = 24 * time.Hour

// Enabled reports whether c names any key.
func (c Config) Enabled() bool { return c.SecretFile != "" || c.KeysFile != "" }

// DefaultMaxTokenLen is Config.MaxTokenLen's default.
const DefaultMaxTokenLen = 8192

// minSecret is the shortest HS256 secret accepted: as many bytes as the
// hash (RFC 7518 section 3.2).
const minSecret = 32

// Claims is what a valid token allows.
type Claims struct {
	// ID is the id the client may connect as (the "sub" claim).
	ID int64
	// Topics the client may join and publish to ("topics"); empty: none
	// beyond its own id.
	Topics []string
	// Send: the client may send to ids ("send": true) over the WebSocket
	// client protocol, where the gateway lets clients send at all.
	Send bool
	// Expires is the token's "exp"; zero if it has none.
	Expires time.Time
}

// Error is a refused token: the HTTP status to answer (401 for a
// missing or invalid token, 403 for a valid one that does not allow the
// request) and a one-line reason.
type Error struct {
	Status int
	// Code names the kind of refusal for counters: no_token, scheme,
	// too_large, malformed, algorithm, signature, expired, not_yet_valid,
	// unverifiable, subject, invalid; forbidden_id and the like for 403s.
	Code   string
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Unauthorized is a missing or invalid token (401).
func Unauthorized(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Forbidden is a valid token that does not allow what was asked (403).
func Forbidden(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: code, Reason: fmt.Sprintf(format, args...)}
}

// ErrNoToken is the request carried no token.
var ErrNoToken = Unauthorized("no_token", "no token: send Authorization: Bearer <token>, ?token=<token> or the token cookie")

// Verifier checks tokens against its keys.
type Verifier struct {
	keys     []key
	algs     []string
	parser   *jwt.Parser
	maxLen   int
	lifetime time.Duration // 0: no bound
	leeway   time.Duration
}

// key is one verification key and the one algorithm it allows.
type key struct {
	kid string
	alg string
	pub any // []byte for HS256, else *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
}

// Load reads c's keys.
func Load(c Config) (*Verifier, error) {
	if !c.Enabled() {
		return nil, errors.New("auth: no keys: give a secret file or a keys file")
	}
	v := &Verifier{maxLen: c.MaxTokenLen}
	if v.maxLen <= 0 {
		v.maxLen = DefaultMaxTokenLen
	}
	if c.SecretFile != "" {
		b, err := ReadSecret(c.SecretFile)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, key{alg: "HS256", pub: b})
	}
	if c.KeysFile != "" {
		b, err := os.ReadFile(c.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("auth: keys: %w", err)
		}
		ks, err := ParseKeys(b)
		if err != nil {
			return nil, fmt.Errorf("auth: keys %s: %w", c.KeysFile, err)
		}
		v.keys = append(v.keys, ks...)
	}
	seen := map[string]bool{}
	for _, k := range v.keys {
		if !seen[k.alg] {
			seen[k.alg] = true
			v.algs = append(v.algs, k.alg)
		}
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.algs), jwt.WithLeeway(c.Leeway), jwt.WithIssuedAt()}
	if !c.AllowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	v.leeway = c.Leeway
	switch {
	case c.MaxLifetime == 0:
		v.lifetime = DefaultMaxLifetime
	case c.MaxLifetime > 0:
		v.lifetime = c.MaxLifetime
	}
	return v, nil
}

// Algorithms lists the algorithms v accepts.
func (v *Verifier) Algorithms() []string { return v.algs }

// tokenClaims is the claims a token may carry.
type tokenClaims struct {
	jwt.RegisteredClaims
	Topics []string `json:"topics,omitempty"`
	Send   bool     `json:"send,omitempty"`
}

// Verify checks tok's signature and times and returns what it allows, or
// an *Error.
func (v *Verifier) Verify(tok string) (Claims, error) {
	if tok == "" {
		return Claims{}, ErrNoToken
	}
	if len(tok) > v.maxLen {
		return Claims{}, Unauthorized("too_large", "token too large: %d bytes, the limit is %d", len(tok), v.maxLen)
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(tok, &tc, v.keyFor)
	if err != nil {
		return Claims{}, refusal(err)
	}
	if tc.Subject == "" {
		return Claims{}, Unauthorized("subject", "token has no sub (the id it is for)")
	}
	id, err := ids.Parse(tc.Subject)
	if err != nil {
		return Claims{}, Unauthorized("subject", "token sub %q is not an id: %v", clip(tc.Subject), err)
	}
	c := Claims{ID: id, Topics: tc.Topics, Send: tc.Send}
	if tc.ExpiresAt != nil {
		c.Expires = tc.ExpiresAt.Time
		if v.lifetime > 0 && time.Until(c.Expires) > v.lifetime+v.leeway {
			return Claims{}, Unauthorized("lifetime", "token expires in %s: more than the %s the gateway accepts", time.Until(c.Expires).Round(time.Second), v.lifetime)
		}
	}
	return c, nil
}

// keyFor picks the keys that may have signed t: those of its algorithm,
// and of its key id if it names one.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions a recipient does not understand
		// make the token invalid; this gateway understands none.
		return nil, errCrit
	}
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if k.alg == alg && (kid == "" || k.kid == "" || k.kid == kid) {
			set.Keys = append(set.Keys, k.pub)
		}
	}
	if len(set.Keys) == 0 {
		if kid != "" {
			return nil, fmt.Errorf("no %s key with kid %q", alg, clip(kid))
		}
		return nil, fmt.Errorf("no %s key", alg)
	}
	if len(set.Keys) == 1 {
		return set.Keys[0], nil
	}
	return set, nil
}

var errCrit = errors.New("token names critical extensions (crit) this gateway does not understand")

// refusal turns a parse error into the reason a client is told.
func refusal(err error) *Error {
	switch {
	case errors.Is(err, errCrit):
		return Unauthorized("crit", "%v", errCrit)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "exp claim"):
		return Unauthorized("no_exp", "token has no exp: the gateway asks every token to expire")
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "aud claim"):
		return Unauthorized("audience", "token audience (aud) is not this gateway's")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "iss claim"):
		return Unauthorized("issuer", "token issuer (iss) is not the one the gateway trusts")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Unauthorized("malformed", "token malformed")
	case errors.Is(err, jwt.ErrTokenExpired):
		return Unauthorized("expired", "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return Unauthorized("not_yet_valid", "token not valid yet")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if strings.Contains(err.Error(), "signing method") {
			return Unauthorized("algorithm", "token algorithm not accepted")
		}
		return Unauthorized("signature", "token signature invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return Unauthorized("unverifiable", "token unverifiable: %s", clip(strings.TrimPrefix(err.Error(), "token is unverifiable: error while executing keyfunc: ")))
	}
	return Unauthorized("invalid", "token invalid")
}

// clip keeps a client's text in a reason short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Codes lists every Code a Verifier or the gateway gives, for counters.
var Codes = []string{"no_token", "scheme", "too_large", "malformed", "algorithm", "signature", "expired",
	"not_yet_valid", "unverifiable", "subject", "invalid", "no_exp", "audience", "issuer", "lifetime", "crit",
	"forbidden_id", "forbidden_topic", "origin"}

// IsLoopback reports whether a listen address (host:port) accepts only
// connections from this machine: a loopback IP or "localhost". An empty
// host, 0.0.0.0 or :: listens everywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && obs.LoopbackName(host)
}

// ReadSecret reads an HS256 secret: the file's bytes without a trailing
// newline, at least 32 of them.
func ReadSecret(path string) ([]byte, error) {
	if err := obs.CheckSecretFile(path); err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) < minSecret {
		return nil, fmt.Errorf("auth: secret %s: %d bytes, want at least %d (HS256 needs a key as long as its hash)", path, len(b), minSecret)
	}
	return b, nil
}

var hs256Head = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// AppendHS256 appends an HS256 token for id, expiring at exp (zero: no
// exp), signed with secret: what an application's server hands its
// clients, here for load tools and tests.
func AppendHS256(dst, secret []byte, id int64, exp time.Time) []byte {
	var payload []byte
	payload = strconv.AppendInt(append(payload, `{"sub":"`...), id, 10)
	payload = append(payload, '"')
	if !exp.IsZero() {
		payload = strconv.AppendInt(append(payload, `,"exp":`...), exp.Unix(), 10)
	}
	payload = append(payload, '}')
	start := len(dst)
	dst = append(dst, hs256Head...)
	dst = append(dst, '.')
	dst = base64.RawURLEncoding.AppendEncode(dst, payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write(dst[start:])
	dst = append(dst, '.')
	return base64.RawURLEncoding.AppendEncode(dst, mac.Sum(nil))
}
