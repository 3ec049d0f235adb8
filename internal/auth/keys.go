package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// minRSABits is the smallest RSA key accepted (RFC 7518 section 3.3).
const minRSABits = 2048

// ParseKeys reads public keys from PEM blocks or a JWKS document.
func ParseKeys(b []byte) ([]key, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return parseJWKS(t)
	}
	var keys []key
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			err = fmt.Errorf("a %q block: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE (never a private key)", blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k, err := keyOf(pub, blk.Headers["kid"])
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block and not a JWKS document")
	}
	return keys, nil
}

// keyOf is pub as a key, with the one algorithm its type allows.
func keyOf(pub any, kid string) (key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return key{}, fmt.Errorf("RSA key of %d bits: want at least %d", p.N.BitLen(), minRSABits)
		}
		return key{kid: kid, alg: "RS256", pub: p}, nil
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return key{kid: kid, alg: "ES256", pub: p}, nil
		case elliptic.P384():
			return key{kid: kid, alg: "ES384", pub: p}, nil
		case elliptic.P521():
			return key{kid: kid, alg: "ES512", pub: p}, nil
		}
		return key{}, fmt.Errorf("EC key on curve %s: want P-256, P-384 or P-521", p.Curve.Params().Name)
	case ed25519.PublicKey:
		return key{kid: kid, alg: "EdDSA", pub: p}, nil
	}
	return key{}, fmt.Errorf("a %T key: want RSA, EC or Ed25519", pub)
}

// jwk is one key of a JWKS document (RFC 7517), public members only.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

func parseJWKS(b []byte) ([]key, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("JWKS: no keys")
	}
	var keys []key
	for i, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue // an encryption key
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, clip(j.Kid), err)
		}
		if j.Alg != "" && j.Alg != k.alg {
			return nil, fmt.Errorf("JWKS key %d (kid %q): alg %q, but the key is for %s", i, clip(j.Kid), clip(j.Alg), k.alg)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no signing keys")
	}
	return keys, nil
}

func (j jwk) key() (key, error) {
	if j.D != "" {
		return key{}, errors.New("a private key: give the gateway public keys only")
	}
	num := func(name, s string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%s: not base64url", name)
		}
		return new(big.Int).SetBytes(b), nil
	}
	switch j.Kty {
	case "RSA":
		n, err := num("n", j.N)
		if err != nil {
			return key{}, err
		}
		e, err := num("e", j.E)
		if err != nil {
			return key{}, err
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return key{}, errors.New("e: out of range")
		}
		return keyOf(&rsa.PublicKey{N: n, E: int(e.Int64())}, j.Kid)
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return key{}, fmt.Errorf("crv %q: want P-256, P-384 or P-521", clip(j.Crv))
		}
		x, err := num("x", j.X)
		if err != nil {
			return key{}, err
		}
		y, err := num("y", j.Y)
		if err != nil {
			return key{}, err
		}
		// Through the uncompressed encoding, so a point off the curve is
		// refused here.
		size := (curve.Params().BitSize + 7) / 8
		if len(x.Bytes()) > size || len(y.Bytes()) > size {
			return key{}, errors.New("x or y too long for the curve")
		}
		raw := make([]byte, 1+2*size)
		raw[0] = 4
		x.FillBytes(raw[1 : 1+size])
		y.FillBytes(raw[1+size:])
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
		if err != nil {
			return key{}, fmt.Errorf("not a point on %s", j.Crv)
		}
		return keyOf(pub, j.Kid)
	case "OKP":
		if j.Crv != "Ed25519" {
			return key{}, fmt.Errorf("crv %q: want Ed25519", clip(j.Crv))
		}
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return key{}, errors.New("x: not a base64url Ed25519 key")
		}
		return keyOf(ed25519.PublicKey(x), j.Kid)
	case "oct":
		return key{}, errors.New(`kty "oct": a shared secret belongs in the secret file, not with public keys`)
	}
	return key{}, fmt.Errorf("kty %q: want RSA, EC or OKP", clip(j.Kty))
}
