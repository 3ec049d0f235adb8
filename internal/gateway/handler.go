package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/wire"
)

var indexText = "comet gateway\n\n" + Usage()

func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	rt, id, err := parseRoute(ctx.Path())
	switch rt {
	case routeNotFound:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	case routeIndex, routeDemo, routeLibrary:
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx)
			return
		}
		servePage(ctx, rt)
		return
	}
	if ctx.IsOptions() {
		g.preflight(ctx)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx)
		return
	}
	if err != nil {
		ctx.Error("bad id: "+err.Error()+"\n", fasthttp.StatusBadRequest)
		return
	}
	if g.draining.Load() {
		// A request on a connection kept alive (a long-poll's next
		// poll): the listener is closed, the sessions are ending.
		ctx.Error("gateway shutting down: come back in a second (to another process, or this one restarted)\n", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetConnectionClose()
		return
	}
	topics, err := parseTopics(ctx.QueryArgs().Peek("topics"))
	if err != nil {
		badRequest(ctx, "topics", err)
		return
	}
	var presence bool
	switch p := string(ctx.QueryArgs().Peek("presence")); p {
	case "", "0":
	case "1":
		presence = len(topics) > 0
	default:
		badRequest(ctx, "presence", fmt.Errorf("%q: want 1 (join and leave events of the topics) or 0", clip(p)))
		return
	}
	var rewind int
	if v := ctx.QueryArgs().Peek("rewind"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > topichist.MaxRewind || len(topics) == 0 {
			badRequest(ctx, "rewind", fmt.Errorf("%q: want 0 to %d, with topics= (each topic's last messages first)", clip(v), topichist.MaxRewind))
			return
		}
		rewind = n
	}
	gr, ok := g.access.check(ctx, id, topics)
	if !ok {
		return
	}
	if topics, gr, ok = g.hooks.admit(g.access, ctx, rt.kind(), id, topics, gr); !ok {
		return
	}
	a := admitted{grant: gr, topics: topics, presence: presence, rewind: rewind}
	k := clientKinds[rt.kind()]
	if ctx.IsHead() {
		// The head a GET would get; fasthttp sends no body for HEAD.
		ctx.SetContentType(k.contentType)
		ctx.Response.Header.Set("Cache-Control", "no-cache, no-store")
		ctx.Response.Header.SetContentLength(-1)
		return
	}
	k.open(g, ctx, id, a)
}

// admitted is what the door let a session in with: when its token
// expires (zero: never) and the topics it joins.
type admitted struct {
	grant
	topics   []string
	presence bool // wants the topics' join and leave events
	rewind   int  // wants that many of each topic's kept messages first
}

// parseTopics reads ?topics=: topic names separated by commas (repeats
// dropped), each 1 to 128 of A-Z a-z 0-9 . _ - :, at most 64.
func parseTopics(arg []byte) ([]string, error) {
	if len(arg) == 0 {
		return nil, nil
	}
	var out []string
	for _, t := range bytes.Split(arg, []byte(",")) {
		if !wire.ValidTopic(t) {
			return nil, fmt.Errorf("%q is not a topic: want 1 to %d of A-Z a-z 0-9 . _ - : separated by commas", clip(t), wire.MaxTopic)
		}
		if !slices.Contains(out, string(t)) {
			out = append(out, string(t))
		}
	}
	if len(out) > wire.MaxConnTopics {
		return nil, fmt.Errorf("%d topics; a connection joins at most %d", len(out), wire.MaxConnTopics)
	}
	return out, nil
}

// preflight answers a browser's CORS preflight for a session route: a
// page of an allowed origin may send Authorization (its token) and
// Last-Event-ID.
func (g *Gateway) preflight(ctx *fasthttp.RequestCtx) {
	if err := g.access.checkOrigin(ctx); err != nil {
		g.access.refuse(ctx, err)
		return
	}
	h := &ctx.Response.Header
	switch o := g.cfg.AllowOrigin; o {
	case "none":
	case "*":
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Vary", "Origin")
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	h.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID, Cache-Control")
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Allow", "GET, HEAD, OPTIONS")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func methodNotAllowed(ctx *fasthttp.RequestCtx) {
	ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
	ctx.Response.Header.Set("Allow", "GET, HEAD")
}
