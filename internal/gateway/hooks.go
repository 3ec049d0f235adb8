package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/hook"
	"github.com/cometgw/comet/internal/wire"
)

// HookConfig lets the application's backend decide who connects and who
// joins which topics (package hook; docs/API.md, "Hooks").
type HookConfig struct {
	// Connect is asked about every connection (-connect-hook). Default
	// "": nobody is asked.
	Connect string
	// Join is asked about the topics a connection joins, at its start
	// (?topics=) and by a WebSocket join (-join-hook). Default "".
	Join string
	// Client bounds the asking: timeout, concurrency, queue, cache,
	// breaker (hook.Config; its defaults).
	Client hook.Config
	// Headers and Cookies name the request headers and cookies passed
	// to the hooks (-hook-headers, -hook-cookies). Default none.
	Headers, Cookies []string
	// Down is what happens when a hook cannot answer (no answer in
	// time, an error, too many waiting, its breaker open): "refuse" (503,
	// the default) or "token": a client with a valid token gets what its
	// token grants, the others are refused.
	Down string
	// AskWithToken asks the hooks about clients with a valid token too
	// (their token still bounds their topics). Default false: a valid
	// token is the application's word, and skips the hooks.
	AskWithToken bool
}

// On says whether any hook is set.
func (c HookConfig) On() bool { return c.Connect != "" || c.Join != "" }

// validate checks the hooks' settings.
func (c HookConfig) validate() error {
	for _, u := range []string{c.Connect, c.Join} {
		if u == "" {
			continue
		}
		if err := hook.CheckURL(u); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	if c.Down != "" && c.Down != "refuse" && c.Down != "token" {
		return fmt.Errorf("gateway: -hook-down %q: want refuse or token", c.Down)
	}
	return nil
}

// hooks is the gateway's askers (nil: no hook). Their outcomes are
// counted by the hook clients; the refusals also by the door
// (access.refuse: hook_refused, hook_down).
type hooks struct {
	cfg           HookConfig
	connect, join *hook.Client // nil: not asked
}

// The refusal codes the hooks add to the door's.
const (
	codeHookRefused = "hook_refused"
	codeHookDown    = "hook_down"
)

func newHooks(cfg HookConfig) (*hooks, error) {
	if !cfg.On() {
		return nil, nil
	}
	h := &hooks{cfg: cfg}
	var err error
	if cfg.Connect != "" {
		c := cfg.Client
		c.URL = cfg.Connect
		if h.connect, err = hook.New(c); err != nil {
			return nil, fmt.Errorf("gateway: -connect-hook: %w", err)
		}
	}
	if cfg.Join != "" {
		c := cfg.Client
		c.URL = cfg.Join
		if h.join, err = hook.New(c); err != nil {
			return nil, fmt.Errorf("gateway: -join-hook: %w", err)
		}
	}
	return h, nil
}

// transports names the client kinds in a hook request.
var transports = [...]string{kindStream: "stream", kindSSE: "sse", kindPoll: "poll", kindWS: "ws"}

// request is the hook request of kind about ctx's client of id.
func (h *hooks) request(ctx *fasthttp.RequestCtx, kind string, transport int, id int64, topics []string) *hook.Request {
	r := &hook.Request{Kind: kind, ID: id, Transport: transports[transport], Topics: topics, Addr: ctx.RemoteAddr().String()}
	for _, name := range h.cfg.Headers {
		if v := ctx.Request.Header.Peek(name); len(v) > 0 {
			if r.Headers == nil {
				r.Headers = make(map[string]string)
			}
			r.Headers[http.CanonicalHeaderKey(name)] = string(v)
		}
	}
	for _, name := range h.cfg.Cookies {
		if v := ctx.Request.Header.Cookie(name); len(v) > 0 {
			if r.Cookies == nil {
				r.Cookies = make(map[string]string)
			}
			r.Cookies[name] = string(v)
		}
	}
	return r
}

// admit asks the hooks (those set) whether ctx's client of id may
// connect and join topics, after the door (access.check) let it in with
// gr. It returns the topics it joins and what it may do, or answers the
// refusal (403 with the backend's reason, 503 when a hook could not
// answer) and returns false.
func (h *hooks) admit(a *access, ctx *fasthttp.RequestCtx, transport int, id int64, topics []string, gr grant) ([]string, grant, bool) {
	if h == nil || gr.token && !h.cfg.AskWithToken {
		return topics, gr, true
	}
	decided := false // the connect hook's answer named the topics
	if h.connect != nil {
		ans, ok := h.ask(a, ctx, h.connect, h.request(ctx, "connect", transport, id, topics), gr)
		if !ok {
			return nil, gr, false
		}
		if ans != nil {
			if ans.Topics != nil {
				topics, decided = ans.Topics, true
			}
			gr = withExpiry(gr, ans.Expires)
		}
	}
	if h.join != nil && len(topics) > 0 && !decided {
		ans, ok := h.ask(a, ctx, h.join, h.request(ctx, "join", transport, id, topics), gr)
		if !ok {
			return nil, gr, false
		}
		if ans != nil && ans.Topics != nil {
			topics = ans.Topics
		}
	}
	if err := checkTopics(topics, gr); err != nil {
		a.refuse(ctx, auth.Forbidden(codeHookRefused, "%s", err.Error()))
		return nil, gr, false
	}
	return topics, gr, true
}

// ask asks c; an allow is returned; a refusal, or no answer (with -hook-down
// refuse, or without a token), is answered to the client. With -hook-down
// token, a client with a valid token gets in on it (nil answer).
func (h *hooks) ask(a *access, ctx *fasthttp.RequestCtx, c *hook.Client, r *hook.Request, gr grant) (*hook.Answer, bool) {
	ans, _, err := c.Ask(context.Background(), r)
	switch {
	case errors.Is(err, hook.ErrUnavailable) && h.cfg.Down == "token" && gr.token:
		return nil, true
	case err != nil:
		a.count(codeHookDown)
		ctx.Error("the application could not say whether you may connect ("+r.Kind+" hook: "+err.Error()+"); try again\n", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.Set("Retry-After", "2")
		return nil, false
	case !ans.Allow:
		reason := "refused by the application"
		if ans.Reason != "" {
			reason += ": " + ans.Reason
		}
		a.refuse(ctx, auth.Forbidden(codeHookRefused, "%s", reason))
		return nil, false
	}
	return &ans, true
}

// checkTopics checks topics a hook named: valid, at most MaxConnTopics,
// and within the client's token's claim if it has one.
func checkTopics(topics []string, gr grant) error {
	if len(topics) > wire.MaxConnTopics {
		return fmt.Errorf("the application named %d topics; a connection joins at most %d", len(topics), wire.MaxConnTopics)
	}
	for _, t := range topics {
		if !wire.ValidTopic([]byte(t)) {
			return fmt.Errorf("the application named %q, which is not a topic", clip(t))
		}
		if !gr.allows(t) {
			return fmt.Errorf("token does not allow topic %s", t)
		}
	}
	return nil
}

// withExpiry is gr ending at Unix second exp too, if that is sooner (0:
// no change).
func withExpiry(gr grant, exp int64) grant {
	if exp <= 0 {
		return gr
	}
	t := time.Unix(exp, 0)
	if gr.expires.IsZero() || t.Before(gr.expires) {
		gr.expires = t
	}
	return gr
}

// joinAsync asks the join hook about a WebSocket client's join (topics,
// for conn of id) and, once it answers, joins it (link.join) and replies
// (reply); it returns false if no join hook is set (the caller joins at
// once). The client's token, if any, bounds the topics as for a join
// without a hook (allowed).
//
// The request carries the id, the topics and the transport only: the
// socket's HTTP request (its headers, cookies and address) is gone.
func (h *hooks) joinAsync(id int64, topics []string, tokenHeld bool, then func(topics []string, err error)) bool {
	if h == nil || h.join == nil || tokenHeld && !h.cfg.AskWithToken {
		return false
	}
	r := &hook.Request{Kind: "join", ID: id, Transport: transports[kindWS], Topics: topics}
	go func() {
		ans, _, err := h.join.Ask(context.Background(), r)
		switch {
		case err != nil:
			then(nil, fmt.Errorf("the application could not say whether you may join (join hook: %v); try again", err))
		case !ans.Allow:
			msg := "refused by the application"
			if ans.Reason != "" {
				msg += ": " + ans.Reason
			}
			then(nil, errors.New(msg))
		case ans.Topics != nil:
			then(ans.Topics, nil)
		default:
			then(topics, nil)
		}
	}()
	return true
}

// HookStats counts the hooks' outcomes (GET /stats "hooks").
type HookStats struct {
	Connect map[string]uint64 `json:"connect,omitempty"`
	Join    map[string]uint64 `json:"join,omitempty"`
}

func (h *hooks) stats() *HookStats {
	if h == nil {
		return nil
	}
	st := &HookStats{}
	if h.connect != nil {
		st.Connect = h.connect.Counts()
	}
	if h.join != nil {
		st.Join = h.join.Counts()
	}
	return st
}

// Names lists a comma-separated flag's names (no blanks, no repeats).
func Names(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
