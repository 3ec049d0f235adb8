package gateway

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/ws"
)

// handleWS serves GET /ws/{id}: checks the upgrade, and hands the
// connection to the hub, which writes the 101 answer and from then on
// owns the socket. ?cursor= resumes as on /sse/.
func (g *Gateway) handleWS(ctx *fasthttp.RequestCtx, id int64, a admitted) {
	h := &ctx.Request.Header
	head, uerr := ws.Check(ws.Upgrade{
		Upgrade: h.Peek("Upgrade"), Connection: h.Peek("Connection"), Version: h.Peek("Sec-WebSocket-Version"),
		Key: h.Peek("Sec-WebSocket-Key"), Protocols: h.Peek("Sec-WebSocket-Protocol"),
	})
	if uerr != nil {
		ctx.Error(uerr.Reason+"\n", uerr.Status)
		if uerr.Status == fasthttp.StatusUpgradeRequired {
			ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		}
		return
	}
	if err := g.access.checkWSCookie(ctx); err != nil {
		g.access.refuse(ctx, err)
		return
	}
	cur, err := cursor.Parse(string(ctx.QueryArgs().Peek("cursor")))
	if err != nil {
		badRequest(ctx, "cursor", err)
		return
	}
	perm := g.wsPerm(a.send)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		r := hub.Request{
			Kind: kindWS, ID: id, Cursor: cur, Expires: a.expires, Topics: a.topics, Presence: a.presence, Rewind: a.rewind,
			Allowed: a.grant.topics, Head: head, Perm: perm, Input: buffered(c), Peer: takePeer(c),
		}
		if err := g.hub.Open(c, r); err != nil {
			g.log.Warn("WebSocket not opened", zap.Int64("id", id), zap.Error(err))
		}
	})
}

// wsPerm is what a WebSocket client may ask: publish unless
// -ws-publish=false, send with -ws-send if its grant allows it.
func (g *Gateway) wsPerm(send bool) uint8 {
	var perm uint8
	if !g.cfg.WSNoPublish {
		perm |= ws.PermPublish
	}
	if g.cfg.WSSend && send {
		perm |= ws.PermSend
	}
	return perm
}

// buffered returns what the HTTP server read of a hijacked connection
// past its request (a client's first frames, if it sent them at once):
// with the read deadline passed, a read returns what is buffered and
// never waits for the socket.
func buffered(c net.Conn) []byte {
	c.SetReadDeadline(time.Unix(1, 0))
	var b [4096]byte
	n, _ := c.Read(b[:])
	if n == 0 {
		return nil
	}
	return append([]byte(nil), b[:n]...)
}
