package gateway

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/peerlimit"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Errors of parseTimeout.
var (
	errTimeoutForm = errors.New("timeout must be a duration like 30s or 500ms, or whole seconds")
	errTimeoutLow  = errors.New("timeout must be positive")
)

// parseTimeout reads a long-poll's ?timeout=: a Go duration ("30s",
// "1m30s") or whole seconds ("30"). Empty means def; above max is max.
func parseTimeout(s []byte, def, max time.Duration) (time.Duration, error) {
	if len(s) == 0 {
		return def, nil
	}
	var d time.Duration
	if n, err := strconv.ParseUint(string(s), 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(string(s)); err != nil {
		return 0, errTimeoutForm
	}
	if d <= 0 {
		return 0, errTimeoutLow
	}
	return min(d, max), nil
}

func badRequest(ctx *fasthttp.RequestCtx, what string, err error) {
	ctx.Error("bad "+what+": "+err.Error()+"\n", fasthttp.StatusBadRequest)
}

// handlePoll serves GET /poll/{id}?cursor=C&timeout=T.
func (g *Gateway) handlePoll(ctx *fasthttp.RequestCtx, id int64, a admitted) {
	args := ctx.QueryArgs()
	cur, err := cursor.Parse(string(args.Peek("cursor")))
	if err != nil {
		badRequest(ctx, "cursor", err)
		return
	}
	wait, err := parseTimeout(args.Peek("timeout"), g.cfg.PollTimeout, g.cfg.MaxPollTimeout)
	if err != nil {
		badRequest(ctx, "timeout", err)
		return
	}
	keepAlive := ctx.Request.Header.IsHTTP11() && !ctx.Request.Header.ConnectionClose()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if err := g.hub.Open(c, hub.Request{Kind: kindPoll, ID: id, Cursor: cur, Wait: wait, KeepAlive: keepAlive, Expires: a.expires, Topics: a.topics, Presence: a.presence, Rewind: a.rewind, Peer: takePeer(c)}); err != nil {
			g.log.Warn("long-poll not opened", zap.Int64("id", id), zap.Error(err))
		}
	})
}

// handback serves a long-poll connection's next request after its answer.
func (g *Gateway) handback(fd int, peer uint32) {
	c := g.clientConn(fd, peerlimit.Ref(peer), nil)
	if c == nil {
		return
	}
	go func() {
		if err := g.srv.ServeConn(c); err != nil && g.log.Core().Enabled(zap.DebugLevel) {
			g.log.Debug("long-poll connection ended", zap.String("error", obs.Redact(err.Error())))
		}
	}()
}

func validPollTimeouts(def, max time.Duration) error {
	if def <= 0 || max <= 0 || def > max {
		return fmt.Errorf("gateway: poll timeout %s must be positive and at most the maximum %s", def, max)
	}
	return nil
}
