package gateway

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/peerlimit"
)

// refusalCodes are the reasons the gateway refuses a client for, as
// counted: a token's or origin's (auth.Codes) and the per-address
// limits'.
var refusalCodes = append(auth.Codes[:len(auth.Codes):len(auth.Codes)], peerlimit.CodeConns, peerlimit.CodeRate, codeHookRefused, codeHookDown)

// Who may open a session: the client's token (auth.Verifier) for the id
// it asks, and the page it comes from (Config.AllowOrigin).

var bearer = []byte("bearer ")

// tokenOf finds a request's token: Authorization: Bearer, else ?token=,
// else the token cookie. An Authorization header of another scheme is an
// error rather than ignored.
func tokenOf(ctx *fasthttp.RequestCtx, cookie string) (string, error) {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 0 {
		if len(h) <= len(bearer) || !bytes.EqualFold(h[:len(bearer)], bearer) {
			return "", auth.Unauthorized("scheme", "Authorization is not a Bearer token")
		}
		return string(bytes.TrimSpace(h[len(bearer):])), nil
	}
	if t := ctx.QueryArgs().Peek("token"); len(t) > 0 {
		return string(t), nil
	}
	return string(ctx.Request.Header.Cookie(cookie)), nil
}

// access is the gateway's door: its verifier (nil: no tokens asked), the
// origin it allows, and what it refused, by auth.Error code.
type access struct {
	verifier *auth.Verifier
	cookie   string
	origin   string // "*", "none" or one origin
	refused  map[string]*atomic.Uint64
	// hookDecides: a connect hook decides about a client without a
	// token (one with a bad token is still refused).
	hookDecides bool
}

func newAccess(cfg *Config) (*access, error) {
	a := &access{cookie: cfg.AuthCookie, origin: cfg.AllowOrigin, refused: make(map[string]*atomic.Uint64), hookDecides: cfg.Hooks.Connect != ""}
	for _, c := range refusalCodes {
		a.refused[c] = new(atomic.Uint64)
	}
	if cfg.Auth.Enabled() {
		v, err := auth.Load(cfg.Auth)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		a.verifier = v
	}
	return a, nil
}

// grant is what the door lets a client do: until when (zero: no
// expiry), the topics it may join and publish to (nil: any; the
// token's "topics" claim), and whether it may send to ids (without
// tokens: yes, as far as the door is concerned).
type grant struct {
	expires time.Time
	topics  []string
	send    bool
	token   bool // a valid token said so
}

// allows reports whether the grant lets its client into topic t.
func (g grant) allows(t string) bool {
	return g.topics == nil || slices.Contains(g.topics, "*") || slices.Contains(g.topics, t)
}

// check lets the request open a session of id, returning what its token
// grants, or answers it 401 or 403 with the reason and returns false.
//
// A session with a token joins only the topics its token's "topics"
// claim lists ("*": any); without tokens, any.
func (a *access) check(ctx *fasthttp.RequestCtx, id int64, topics []string) (grant, bool) {
	if err := a.checkOrigin(ctx); err != nil {
		a.refuse(ctx, err)
		return grant{}, false
	}
	if a.verifier == nil {
		return grant{send: true}, true
	}
	tok, err := tokenOf(ctx, a.cookie)
	if err == nil && tok == "" && a.hookDecides {
		return grant{send: true}, true // the connect hook decides
	}
	var c auth.Claims
	if err == nil {
		c, err = a.verifier.Verify(tok)
	}
	if err == nil && c.ID != id {
		err = auth.Forbidden("forbidden_id", "token is for id %d, not %d", c.ID, id)
	}
	g := grant{expires: c.Expires, topics: c.Topics, send: c.Send, token: true}
	if g.topics == nil {
		g.topics = []string{} // none: nil means any
	}
	if err == nil {
		for _, t := range topics {
			if !g.allows(t) {
				err = auth.Forbidden("forbidden_topic", "token does not allow topic %s", t)
				break
			}
		}
	}
	if err != nil {
		a.refuse(ctx, err.(*auth.Error))
		return grant{}, false
	}
	return g, true
}

// checkOrigin refuses a browser request from a page of another origin
// than the one allowed (its own host's pages are always allowed).
func (a *access) checkOrigin(ctx *fasthttp.RequestCtx) *auth.Error {
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 || a.origin == "*" || string(o) == a.origin {
		return nil
	}
	if sameHost(ctx, o) {
		return nil
	}
	return auth.Forbidden("origin", "origin %s not allowed", clip(o))
}

// sameHost reports whether origin o is a page of the host the request
// was sent to.
func sameHost(ctx *fasthttp.RequestCtx, o []byte) bool {
	u, err := url.Parse(string(o))
	return err == nil && u.Host != "" && u.Host == string(ctx.Host())
}

// checkWSCookie refuses a WebSocket upgrade from another site's page
// that carries its token only in the cookie, while any origin is allowed
// ("*"; with one origin allowed, checkOrigin refused the others):
// browsers send cookies with cross-site WebSocket upgrades and check no
// CORS answer, so a page anywhere could otherwise open a signed-in
// user's socket. Tokens in the URL or a header were put there by the
// page itself.
func (a *access) checkWSCookie(ctx *fasthttp.RequestCtx) *auth.Error {
	if a.verifier == nil || a.origin != "*" {
		return nil
	}
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 || len(ctx.Request.Header.Peek("Authorization")) > 0 || len(ctx.QueryArgs().Peek("token")) > 0 || sameHost(ctx, o) {
		return nil
	}
	return auth.Forbidden("origin", "cookie token on a WebSocket from origin %s: give the token in ?token= or allow the origin (-allow-origin)", clip(o))
}

// count counts a refusal.
func (a *access) count(code string) {
	if n := a.refused[code]; n != nil {
		n.Add(1)
	}
}

// verifyDirect checks a token the direct path found in a request's
// Authorization header for id: its expiry, or false for anything
// fasthttp should look at instead (no or bad token: it answers why).
// verifyFor checks tok for id (a WebSocket client's auth request) and
// returns when it expires; the error is the refusal's one-line reason.
func (a *access) verifyFor(tok string, id int64) (time.Time, error) {
	c, err := a.verifier.Verify(tok)
	if err != nil {
		return time.Time{}, err
	}
	if c.ID != id {
		return time.Time{}, auth.Forbidden("forbidden_id", "token is for id %d, not %d", c.ID, id)
	}
	return c.Expires, nil
}

func (a *access) verifyDirect(authz []byte, id int64) (time.Time, bool) {
	if len(authz) <= len(bearer) || !bytes.EqualFold(authz[:len(bearer)], bearer) {
		return time.Time{}, false
	}
	c, err := a.verifier.Verify(string(bytes.TrimSpace(authz[len(bearer):])))
	if err != nil || c.ID != id {
		return time.Time{}, false
	}
	return c.Expires, true
}

func (a *access) refuse(ctx *fasthttp.RequestCtx, e *auth.Error) {
	a.count(e.Code)
	ctx.Error(e.Reason+"\n", e.Status) // first: it resets the headers
	h := &ctx.Response.Header
	switch {
	case e.Code == "no_token":
		h.Set("WWW-Authenticate", `Bearer realm="comet"`)
	case e.Status == fasthttp.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="comet", error="invalid_token", error_description="`+strings.ReplaceAll(e.Reason, `"`, `'`)+`"`)
	case e.Code == "forbidden_id":
		h.Set("WWW-Authenticate", `Bearer realm="comet", error="insufficient_scope"`)
	}
}

// Refused counts refusals by auth.Error code.
func (a *access) Refused() map[string]uint64 {
	m := make(map[string]uint64, len(a.refused))
	for c, n := range a.refused {
		if v := n.Load(); v > 0 {
			m[c] = v
		}
	}
	return m
}

// corsHead is the CORS header lines SSE and long-poll answers carry for
// AllowOrigin.
func corsHead(origin string) string {
	switch origin {
	case "*":
		return "Access-Control-Allow-Origin: *\r\n"
	case "none":
		return ""
	}
	return "Access-Control-Allow-Origin: " + origin + "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
}

// validOrigin checks Config.AllowOrigin.
func validOrigin(o string) error {
	if o == "*" || o == "none" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf(`gateway: allow-origin %q: want "*", "none" or an origin like https://app.example.com`, o)
	}
	return nil
}

// clip is b for a one-line reason: at most 64 bytes of it, then "...".
func clip[T ~string | ~[]byte](b T) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
