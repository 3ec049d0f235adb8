package gateway

import (
	"net"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// handleSSE serves GET /sse/{id}, resuming from Last-Event-ID or else
// ?cursor=.
func (g *Gateway) handleSSE(ctx *fasthttp.RequestCtx, id int64, a admitted) {
	text, what := ctx.Request.Header.Peek("Last-Event-ID"), "Last-Event-ID"
	if len(text) == 0 {
		text, what = ctx.QueryArgs().Peek("cursor"), "cursor"
	}
	cur, err := cursor.Parse(string(text))
	if err != nil {
		badRequest(ctx, what, err)
		return
	}
	http10 := !ctx.Request.Header.IsHTTP11()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if err := g.hub.Open(c, hub.Request{Kind: kindSSE, ID: id, Cursor: cur, HTTP10: http10, Expires: a.expires, Topics: a.topics, Presence: a.presence, Rewind: a.rewind, Peer: takePeer(c)}); err != nil {
			g.log.Warn("SSE stream not opened", zap.Int64("id", id), zap.Error(err))
		}
	})
}
