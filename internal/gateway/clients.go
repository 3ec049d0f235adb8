package gateway

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/request"
	"github.com/cometgw/comet/internal/wire"
	"github.com/cometgw/comet/internal/ws"
)

// Client requests: a WebSocket client's publish and send go to a router
// as send frames on wire.SubjectClient, each a NATS request whose ack
// (the router's account of every copy) becomes the client's reply. Joins
// and leaves are the link's (up records), answered at once.

// maxClientRequests bounds the requests all clients of a gateway have
// waiting for a router; each client has at most ws.MaxInflight, and is
// not read while it has that many.
const maxClientRequests = 1 << 16

// clientWait is how long a request waits for its ack: past the routers'
// -deliver-timeout (5 s), after which every ack is out.
const clientWait = 15 * time.Second

// A request NATS answers "no responders" for (no router subscribed: one
// is taking over from another, or none runs) is sent again every
// clientRetryEvery for clientRetryFor from its first send: nobody got
// it, so sending it again repeats nothing.
const (
	clientRetryEvery = 100 * time.Millisecond
	clientRetryFor   = 5 * time.Second
)

// clients carries out WebSocket clients' requests (ws.Ops).
type clients struct {
	hub  *hub.Hub
	link *link
	nc   *nats.Conn
	log  *zap.Logger
	name string
	// req: the requests waiting for a router's ack.
	req *request.Client
	// verify checks a client's token for id and returns its expiry
	// (the auth request); nil without client tokens.
	verify func(tok string, id int64) (time.Time, error)
	// hooks: the join hook asked about joins (nil: none).
	hooks *hooks

	// Requests sent to a router, answered by its ack, refused by the
	// gateway (permissions, bad requests), answered as failed (no
	// router, no answer in time), answers whose client had left.
	sent, acked, refused, failed, orphaned atomic.Uint64

	// routerSeen (unix nanos): when a router last answered the ping
	// (readiness); pinging: one is waiting.
	routerSeen atomic.Int64
	pinging    atomic.Bool
	stop       chan struct{}
	done       chan struct{}
}

// clientRequest is whom a request's answer goes to.
type clientRequest struct {
	conn uint64
	ref  uint64
	op   string
}

func newClients(h *hub.Hub, l *link, name string, log *zap.Logger) *clients {
	return &clients{hub: h, link: l, nc: l.nc, log: log, name: name}
}

// start subscribes to the replies (wire.ReplyPrefix + name + ".n") and
// starts the sweep of late ones.
func (c *clients) start() error {
	var err error
	c.req, err = request.New(c.nc, request.Config{Prefix: wire.ReplyPrefix + c.name, Max: maxClientRequests,
		Timeout: clientWait, RetryFor: clientRetryFor, RetryEvery: clientRetryEvery})
	if err != nil {
		return err
	}
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.pinger()
	return nil
}

// pinger asks a router every second for the ack of an empty send frame:
// an answer says a router routes (the gateway's readiness).
func (c *clients) pinger() {
	defer close(c.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	ping := wire.AppendHeader(nil, wire.KindSend)
	for {
		if c.pinging.CompareAndSwap(false, true) {
			err := c.req.Send(wire.SubjectClient, ping, func(_ []byte, err error) {
				if err == nil {
					c.routerSeen.Store(time.Now().UnixNano())
				}
				c.pinging.Store(false)
			})
			if err != nil {
				c.pinging.Store(false)
			}
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// close stops the requests; those waiting are answered as failed.
func (c *clients) close() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
	}
	if c.req != nil {
		c.req.Close()
	}
}

// Do implements ws.Ops.
func (c *clients) Do(s hub.Session, r *ws.Request) (bool, error) {
	async, err := c.do(s, r)
	if err != nil {
		c.refused.Add(1)
	}
	return async, err
}

func (c *clients) do(s hub.Session, r *ws.Request) (bool, error) {
	conn := s.Conn()
	var frame []byte
	switch r.Op {
	case "join":
		req := clientRequest{conn: conn, ref: r.Ref, op: r.Op}
		presence, rewind := r.Presence, r.Rewind
		asked := c.hooks.joinAsync(s.ID(), r.Topics, c.link.tokenHeld(conn), func(topics []string, err error) {
			var frame []byte
			if !c.hub.With(conn, func(s hub.Session) {
				if err == nil {
					err = c.link.join(conn, s.ID(), true, topics, presence, rewind)
				}
				if err != nil {
					frame = ws.AppendError(nil, req.ref, req.op, err.Error())
				} else {
					frame = ws.AppendReply(nil, &ws.Reply{Ref: req.ref, Op: req.op})
				}
				ws.Answer(s, frame)
			}) {
				c.orphaned.Add(1)
			}
		})
		if asked {
			return true, nil
		}
		return false, c.link.join(conn, s.ID(), true, r.Topics, r.Presence, r.Rewind)
	case "leave":
		c.link.part(conn, s.ID(), r.Topics)
		return false, nil
	case "auth":
		if c.verify == nil {
			return false, errors.New("this gateway asks for no tokens")
		}
		exp, err := c.verify(r.Token, s.ID())
		if err != nil {
			return false, err
		}
		s.SetExpires(exp)
		return false, nil
	case "publish":
		if s.Flags()&ws.PermPublish == 0 {
			return false, errors.New("this gateway lets clients publish to no topic")
		}
		if !wire.ValidTopic([]byte(r.Topic)) {
			return false, errNotTopic(r.Topic)
		}
		if !c.link.in(conn, r.Topic) {
			return false, fmt.Errorf("not in topic %s: a client publishes to the topics it joined", r.Topic)
		}
		frame = wire.AppendPublish(wire.AppendHeader(nil, wire.KindSend), r.Topic, []byte(*r.Data))
	case "send":
		if s.Flags()&ws.PermSend == 0 {
			return false, errors.New("this connection may not send to ids (the gateway's -ws-send, and with tokens the claim \"send\": true)")
		}
		frame = wire.AppendSend(wire.AppendHeader(nil, wire.KindSend), *r.ID, []byte(*r.Data))
	default:
		return false, fmt.Errorf("unknown op %q", clip(r.Op))
	}
	req := clientRequest{conn: conn, ref: r.Ref, op: r.Op}
	err := c.req.Send(wire.SubjectClient, frame, func(answer []byte, err error) { c.reply(req, answer, err) })
	switch {
	case errors.Is(err, request.ErrFull):
		return false, fmt.Errorf("gateway busy: %d requests wait for a router; not sent, try again", maxClientRequests)
	case err != nil:
		return false, fmt.Errorf("not sent: NATS: %v", err)
	}
	c.sent.Add(1)
	return true, nil
}

// reply turns a router's ack (or the request's failure) into the
// client's reply.
func (c *clients) reply(req clientRequest, answer []byte, err error) {
	var msg string
	switch {
	case errors.Is(err, request.ErrNotTaken):
		msg = fmt.Sprintf("no router is running (none took it for %s): not sent", clientRetryFor)
	case errors.Is(err, request.ErrTimeout):
		msg = fmt.Sprintf("no answer from a router within %s: the message may or may not have been delivered", clientWait)
	case errors.Is(err, request.ErrClosed):
		msg = "the gateway stopped before a router answered: the message may or may not have been delivered"
	case err != nil:
		msg = "not sent: NATS: " + err.Error()
	}
	if msg == "" {
		reply, err := replyOf(answer)
		if err == nil {
			reply.Ref, reply.Op = req.ref, req.op
			c.acked.Add(1)
			c.answer(req, ws.AppendReply(nil, &reply))
			return
		}
		c.log.Warn("bad ack for a client request", zap.Error(err))
		msg = "the router's answer was malformed: the message may or may not have been delivered"
	}
	c.failed.Add(1)
	c.answer(req, ws.AppendError(nil, req.ref, req.op, msg))
}

// replyOf reads an ack frame.
func replyOf(data []byte) (ws.Reply, error) {
	rec, err := wire.ParseAck(data)
	if err != nil {
		return ws.Reply{}, err
	}
	r := ws.Reply{Delivered: rec.Tally.Delivered, Void: rec.Void > 0, Kept: rec.Kept > 0}
	for _, d := range []struct {
		name string
		n    uint64
	}{{"gone", rec.Tally.Gone}, {"slow", rec.Tally.Slow}, {"gateway", rec.Tally.Gateway}} {
		if d.n > 0 {
			if r.Dropped == nil {
				r.Dropped = make(map[string]uint64, 3)
			}
			r.Dropped[d.name] = d.n
		}
	}
	return r, nil
}

// answer writes frame to the request's client, if it is still there.
func (c *clients) answer(req clientRequest, frame []byte) {
	if !c.hub.With(req.conn, func(s hub.Session) { ws.Answer(s, frame) }) {
		c.orphaned.Add(1)
	}
}

// ClientStats counts WebSocket clients' requests (GET /stats "client_requests").
type ClientStats struct {
	Sent     uint64 `json:"sent"`
	Acked    uint64 `json:"acked"`
	Refused  uint64 `json:"refused"`
	Failed   uint64 `json:"failed"`
	Orphaned uint64 `json:"orphaned"`
	// Retried: sends again after "no responders" (no router took it).
	Retried uint64 `json:"retried"`
	Waiting int    `json:"waiting"`
}

func (c *clients) stats() ClientStats {
	st := ClientStats{Sent: c.sent.Load(), Acked: c.acked.Load(), Refused: c.refused.Load(), Failed: c.failed.Load(), Orphaned: c.orphaned.Load(), Retried: c.retried()}
	if c.req != nil {
		st.Waiting = c.req.Waiting()
	}
	return st
}

// retried is the requests sent again because no router took them.
func (c *clients) retried() uint64 {
	if c.req == nil {
		return 0
	}
	n, _ := c.req.Stats()
	return n
}
