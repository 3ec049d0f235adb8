package gateway

import (
	"github.com/valyala/fasthttp"
)

const indexText = `comet gateway

GET /test/{id}                      a chunked HTML stream of every message sent to integer id
GET /sse/{id}                       an EventSource stream; Last-Event-ID or ?cursor= resumes
GET /poll/{id}?cursor=C&timeout=30s a long-poll: the messages after cursor C, as JSON
GET /demo                           a page that shows an id's messages as they arrive
`

func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	rt, id, err := parseRoute(ctx.Path())
	switch rt {
	case routeNotFound:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	case routeIndex, routeDemo:
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx)
			return
		}
		if rt == routeDemo {
			g.handleDemo(ctx)
			return
		}
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(indexText)
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
	exp, ok := g.access.check(ctx, id)
	if !ok {
		return
	}
	if ctx.IsHead() {
		// The head a GET would get; fasthttp sends no body for HEAD.
		switch rt {
		case routePoll:
			ctx.SetContentType("application/json")
		case routeSSE:
			ctx.SetContentType("text/event-stream; charset=utf-8")
		default:
			ctx.SetContentType("text/html; charset=utf-8")
		}
		ctx.Response.Header.Set("Cache-Control", "no-cache, no-store")
		ctx.Response.Header.SetContentLength(-1)
		return
	}
	switch rt {
	case routePoll:
		g.handlePoll(ctx, id, exp)
		return
	case routeSSE:
		g.handleSSE(ctx, id, exp)
		return
	}
	g.handleStream(ctx, id, exp)
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
