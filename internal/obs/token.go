package obs

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// minToken is the shortest token accepted (admin APIs, NATS).
const minToken = 16

// ReadToken reads a token (an admin bearer token, a NATS token) from
// path: the file's first line,
// trimmed; at least 16 characters. An empty path is no token.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
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

// RequireBearer serves h only to requests carrying "Authorization:
// Bearer token"; others get 401. An empty token lets every request
// through.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="comet-admin"`)
			http.Error(w, "admin token required: Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
