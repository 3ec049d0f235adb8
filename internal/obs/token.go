package obs

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// minToken is the shortest token accepted (admin APIs, NATS).
const minToken = 16

// ReadToken reads a token (an admin bearer token, a NATS token) from
// path: the file's first line, trimmed; at least 16 characters. The file
// must not be readable by group or others (CheckSecretFile). An empty
// path is no token.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	if err := CheckSecretFile(path); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < minToken {
		return "", fmt.Errorf("token %s: %d characters, want at least %d", path, len(tok), minToken)
	}
	return tok, nil
}

// AllowOpenSecrets turns CheckSecretFile's permission check off (the
// -allow-open-secrets flag of every daemon): for a secret that must be
// shared through a group, say.
var AllowOpenSecrets bool

// CheckSecretFile refuses a secret file (a token, an HS256 secret, an
// NKey seed) that group or others may read or write: anyone else on the
// machine could take it. `umask 077` before writing one keeps it private.
func CheckSecretFile(path string) error {
	if AllowOpenSecrets {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%s is readable or writable by group or others (mode %04o): chmod 600 it (or umask 077 before writing it), or give -allow-open-secrets", path, m)
	}
	return nil
}

// RequireBearer serves h only to requests carrying "Authorization:
// Bearer token" (the scheme in any case, RFC 7235); others get 401. The
// comparison takes the same time whatever the token given, its length
// included. An empty token lets requests through, but not from a web
// page (an Origin header: a page on any site could post to a loopback
// admin API) or under a Host name that is not a loopback one (DNS
// rebinding: a site's own name pointed at 127.0.0.1): those get 403.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o := r.Header.Get("Origin"); o != "" {
				http.Error(w, "admin API without a token: requests from web pages (Origin "+clip(o)+") are refused; give the admin API a token (-admin-token-file)", http.StatusForbidden)
				return
			}
			if !loopbackHost(r.Host) {
				http.Error(w, "admin API without a token answers loopback names only (Host "+clip(r.Host)+"); give it a token (-admin-token-file)", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		ok := subtle.ConstantTimeCompare(sum[:], want[:]) == 1
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="comet-admin"`)
			http.Error(w, "admin token required: Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine by a
// loopback name (LoopbackName, with or without a port). An empty Host
// (HTTP/1.0) counts as loopback: no browser sends one.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return LoopbackName(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

// LoopbackName reports whether host (no port, no brackets) is a
// loopback name: localhost, an address of 127.0.0.0/8, or ::1.
func LoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clip quotes at most 64 bytes of a header for an error message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}
