package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test")

type keyset struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	pem  []byte // the three public keys, kids rsa1, ec1, ed1
	jwks []byte
}

func newKeyset(t testing.TB) keyset {
	t.Helper()
	var ks keyset
	var err error
	if ks.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if ks.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, ks.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		kid string
		pub any
	}{{"rsa1", &ks.rsa.PublicKey}, {"ec1", &ks.ec.PublicKey}, {"ed1", ks.ed.Public()}} {
		der, err := x509.MarshalPKIXPublicKey(p.pub)
		if err != nil {
			t.Fatal(err)
		}
		ks.pem = append(ks.pem, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": p.kid}, Bytes: der})...)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	ecb, _ := ks.ec.PublicKey.Bytes()
	doc := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": b64(ks.rsa.N.Bytes()), "e": b64(big.NewInt(int64(ks.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b64(ecb[1:33]), "y": b64(ecb[33:])},
		{"kty": "OKP", "kid": "ed1", "crv": "Ed25519", "x": b64(ks.ed.Public().(ed25519.PublicKey))},
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
	}}
	ks.jwks, _ = json.Marshal(doc)
	return ks
}

func write(t testing.TB, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sign(t testing.TB, m jwt.SigningMethod, k any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signHeader signs claims HS256 with extra header members.
func signHeader(t testing.TB, k []byte, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Audience, issuer and tokens that never expire are the operator's
// choice: each is refused or let through as configured.
func TestTokenPolicy(t *testing.T) {
	p := write(t, "secret", secret)
	strict, err := Load(Config{SecretFile: p, Audience: "comet", Issuer: "https://auth.example", MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	lax, err := Load(Config{SecretFile: p, AllowNoExp: true, MaxLifetime: -1})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(30 * time.Minute).Unix()
	for _, c := range []struct {
		name   string
		v      *Verifier
		claims jwt.MapClaims
		code   string // "": accepted
	}{
		{"audience and issuer", strict, jwt.MapClaims{"sub": "1", "exp": exp, "aud": []string{"x", "comet"}, "iss": "https://auth.example"}, ""},
		{"no audience", strict, jwt.MapClaims{"sub": "1", "exp": exp, "iss": "https://auth.example"}, "audience"},
		{"another audience", strict, jwt.MapClaims{"sub": "1", "exp": exp, "aud": "other", "iss": "https://auth.example"}, "audience"},
		{"another issuer", strict, jwt.MapClaims{"sub": "1", "exp": exp, "aud": "comet", "iss": "https://evil.example"}, "issuer"},
		{"past the max lifetime", strict, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(2 * time.Hour).Unix(), "aud": "comet", "iss": "https://auth.example"}, "lifetime"},
		{"no exp allowed", lax, jwt.MapClaims{"sub": "1"}, ""},
		{"a year allowed", lax, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(365 * 24 * time.Hour).Unix()}, ""},
	} {
		_, err := c.v.Verify(sign(t, jwt.SigningMethodHS256, secret, "", c.claims))
		got := ""
		if e, ok := err.(*Error); ok {
			got = e.Code
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.code {
			t.Errorf("%s: refused %q (%v), want %q", c.name, got, err, c.code)
		}
	}
}

func claims(sub string, exp time.Duration) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub}
	if exp != 0 {
		c["exp"] = time.Now().Add(exp).Unix()
	}
	return c
}

func TestVerify(t *testing.T) {
	ks := newKeyset(t)
	for _, form := range []string{"pem", "jwks"} {
		keys := ks.pem
		if form == "jwks" {
			keys = ks.jwks
		}
		v, err := Load(Config{SecretFile: write(t, "secret", append(append([]byte{}, secret...), '\n')), KeysFile: write(t, "keys", keys)})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(v.Algorithms(), ","); got != "HS256,RS256,ES256,EdDSA" {
			t.Fatalf("%s: algorithms %s", form, got)
		}
		good := []struct {
			name string
			tok  string
		}{
			{"HS256", sign(t, jwt.SigningMethodHS256, secret, "", claims("42", time.Hour))},
			{"RS256", sign(t, jwt.SigningMethodRS256, ks.rsa, "rsa1", claims("42", time.Hour))},
			{"RS256 without kid", sign(t, jwt.SigningMethodRS256, ks.rsa, "", claims("42", time.Hour))},
			{"ES256", sign(t, jwt.SigningMethodES256, ks.ec, "ec1", claims("42", time.Hour))},
			{"EdDSA", sign(t, jwt.SigningMethodEdDSA, ks.ed, "ed1", claims("42", time.Hour))},
		}
		for _, g := range good {
			c, err := v.Verify(g.tok)
			if err != nil || c.ID != 42 {
				t.Errorf("%s %s: %+v, %v", form, g.name, c, err)
			}
		}
		c, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "7", "topics": []string{"lobby", "news"}, "exp": time.Now().Add(time.Minute).Unix()}))
		if err != nil || c.ID != 7 || strings.Join(c.Topics, ",") != "lobby,news" || time.Until(c.Expires) < 50*time.Second {
			t.Errorf("%s: claims %+v, %v", form, c, err)
		}
	}
}

// TestRefused is the table of bad tokens: each is refused with 401 and
// its reason.
func TestRefused(t *testing.T) {
	ks := newKeyset(t)
	v, err := Load(Config{SecretFile: write(t, "secret", secret), KeysFile: write(t, "keys", ks.pem)})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, secret, "", claims("42", time.Hour))
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name, tok, reason string
	}{
		{"empty", "", "no token"},
		{"garbage", "not-a-token", "token malformed"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", "token algorithm not accepted"},
		{"alg none signed", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("42", time.Hour)), "token algorithm not accepted"},
		// The classic confusion: HS256 keyed with the RSA public key, as
		// a verifier that takes the key's bytes for any algorithm would
		// accept. Here HS256 only ever uses the secret.
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, ks.pem, "rsa1", claims("42", time.Hour)), "token signature invalid"},
		{"tampered payload", parts[0] + "." + b64([]byte(`{"sub":"43"}`)) + "." + parts[2], "token signature invalid"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64([]byte("0123456789abcdef0123456789abcdef")), "token signature invalid"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", claims("42", -time.Minute)), "token expired"},
		{"not valid yet", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "42", "nbf": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()}), "token not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "42", "iat": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()}), "token not valid yet"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, "", claims("42", 0)), "token has no exp"},
		{"beyond the lifetime", sign(t, jwt.SigningMethodHS256, secret, "", claims("42", 25*time.Hour)), "token expires in 2"},
		{"crit", signHeader(t, secret, map[string]any{"crit": []string{"exp2"}, "exp2": 1}, claims("42", time.Hour)), "token names critical extensions"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, ks.rsa, "rsa9", claims("42", time.Hour)), `token unverifiable: no RS256 key with kid "rsa9"`},
		{"another RSA key", sign(t, jwt.SigningMethodRS256, otherRSA, "rsa1", claims("42", time.Hour)), "token signature invalid"},
		{"RS384 not accepted", sign(t, jwt.SigningMethodRS384, ks.rsa, "rsa1", claims("42", time.Hour)), "token algorithm not accepted"},
		{"ES256 key claimed as another kid", sign(t, jwt.SigningMethodES256, ks.ec, "rsa1", claims("42", time.Hour)), `token unverifiable: no ES256 key with kid "rsa1"`},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}), "token has no sub"},
		{"sub not an id", sign(t, jwt.SigningMethodHS256, secret, "", claims("alice", time.Hour)), `token sub "alice" is not an id`},
		{"64 KB", strings.Repeat("a", 64<<10), "token too large: 65536 bytes, the limit is 8192"},
	}
	for _, c := range cases {
		_, err := v.Verify(c.tok)
		e, ok := err.(*Error)
		if !ok || e.Status != 401 || !strings.HasPrefix(e.Reason, c.reason) {
			t.Errorf("%s: %v, want 401 %q", c.name, err, c.reason)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	ks := newKeyset(t)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	privDER, _ := x509.MarshalPKCS8PrivateKey(ks.ec)
	cases := []struct {
		name string
		cfg  func(dir string) Config
		want string
	}{
		{"nothing", func(string) Config { return Config{} }, "no keys"},
		{"short secret", func(string) Config { return Config{SecretFile: write(t, "s", []byte("short\n"))} }, "5 bytes, want at least 32"},
		{"missing secret", func(d string) Config { return Config{SecretFile: filepath.Join(d, "none")} }, "no such file"},
		{"private key", func(string) Config {
			return Config{KeysFile: write(t, "k", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}
		}, "never a private key"},
		{"small RSA", func(string) Config {
			return Config{KeysFile: write(t, "k", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallDER}))}
		}, "RSA key of 1024 bits"},
		{"not keys", func(string) Config { return Config{KeysFile: write(t, "k", []byte("hello"))} }, "no PEM block and not a JWKS document"},
		{"JWKS oct", func(string) Config {
			return Config{KeysFile: write(t, "k", []byte(`{"keys":[{"kty":"oct","k":"abc"}]}`))}
		}, "belongs in the secret file"},
		{"JWKS private", func(string) Config {
			return Config{KeysFile: write(t, "k", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"abc","d":"abc"}]}`))}
		}, "a private key"},
		{"JWKS off curve", func(string) Config {
			return Config{KeysFile: write(t, "k", []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`))}
		}, "not a point on P-256"},
		{"JWKS alg mismatch", func(string) Config {
			return Config{KeysFile: write(t, "k", []byte(strings.Replace(string(ks.jwks), `"alg":"RS256"`, `"alg":"HS256"`, 1)))}
		}, `alg "HS256", but the key is for RS256`},
	}
	for _, c := range cases {
		_, err := Load(c.cfg(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzParseKeys(f *testing.F) {
	ks := newKeyset(f)
	f.Add(ks.pem)
	f.Add(ks.jwks)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeys(b)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
	})
}

func FuzzVerify(f *testing.F) {
	ks := newKeyset(f)
	dir := f.TempDir()
	sp, kp := filepath.Join(dir, "s"), filepath.Join(dir, "k")
	os.WriteFile(sp, secret, 0o600)
	os.WriteFile(kp, ks.pem, 0o600)
	v, err := Load(Config{SecretFile: sp, KeysFile: kp})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sign(f, jwt.SigningMethodHS256, secret, "", claims("42", time.Hour)))
	f.Add(sign(f, jwt.SigningMethodES256, ks.ec, "ec1", claims("42", time.Hour)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err == nil && c.ID <= 0 {
			t.Fatalf("accepted %q with id %d", tok, c.ID)
		}
		if e, ok := err.(*Error); err != nil && (!ok || e.Status != 401 || e.Reason == "") {
			t.Fatalf("%q: %v", tok, err)
		}
	})
}

func ExampleVerifier_Verify() {
	dir, _ := os.MkdirTemp("", "auth")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "secret")
	os.WriteFile(p, secret, 0o600)
	v, _ := Load(Config{SecretFile: p})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "123", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	c, err := v.Verify(tok)
	fmt.Println(c.ID, err)
	// Output: 123 <nil>
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8000": true, "127.9.9.9:1": true, "[::1]:8000": true, "localhost:8000": true, "LocalHost:1": true,
		":8000": false, "0.0.0.0:8000": false, "[::]:8000": false, "10.0.0.1:8000": false, "example.com:80": false, "nonsense": false,
	} {
		if IsLoopback(addr) != want {
			t.Errorf("IsLoopback(%q) = %t", addr, !want)
		}
	}
}

func TestAppendHS256(t *testing.T) {
	v, err := Load(Config{SecretFile: write(t, "s", secret)})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	tok := string(AppendHS256([]byte("prefix"), secret, 123, exp))[len("prefix"):]
	if c, err := v.Verify(tok); err != nil || c.ID != 123 || c.Expires.Unix() != exp.Unix() {
		t.Fatalf("%s: %+v, %v", tok, c, err)
	}
	lax, err := Load(Config{SecretFile: write(t, "s2", secret), AllowNoExp: true})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := lax.Verify(string(AppendHS256(nil, secret, -5, time.Time{}))); err != nil || c.ID != -5 || !c.Expires.IsZero() {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := lax.Verify(string(AppendHS256(nil, []byte("another secret, 32 bytes or more."), 1, time.Time{}))); err == nil {
		t.Fatal("a token of another secret passed")
	}
}
