package gateway

import (
	"net"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/hub"
)

// handleStream serves GET /test/{id} when it comes through fasthttp (the
// direct path, direct.go, takes the plain ones before): the connection is
// hijacked and becomes a stream session.
func (g *Gateway) handleStream(ctx *fasthttp.RequestCtx, id int64, a admitted) {
	http10 := !ctx.Request.Header.IsHTTP11()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if err := g.hub.Open(c, hub.Request{Kind: kindStream, ID: id, HTTP10: http10, Expires: a.expires, Topics: a.topics, Presence: a.presence, Rewind: a.rewind, Peer: takePeer(c)}); err != nil {
			g.log.Warn("stream not opened", zap.Int64("id", id), zap.Error(err))
		}
	})
}
