package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/hub"
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
	hub    *hub.Hub
	link   *link
	nc     *nats.Conn
	log    *zap.Logger
	prefix string // the reply subjects' prefix: wire.ReplyPrefix + name + "."
	sub    *nats.Subscription
	// verify checks a client's token for id and returns its expiry
	// (the auth request); nil without client tokens.
	verify func(tok string, id int64) (time.Time, error)

	mu      sync.Mutex
	next    uint64
	pending map[uint64]clientRequest

	stop chan struct{}
	wg   sync.WaitGroup

	// Requests sent to a router, answered by its ack, refused by the
	// gateway (permissions, bad requests), answered as failed (no
	// router, no answer in time), answers whose client had left, and
	// sends again after "no responders".
	sent, acked, refused, failed, orphaned, retried atomic.Uint64
}

type clientRequest struct {
	conn  uint64
	ref   uint64
	op    string
	at    time.Time // first sent
	frame []byte    // to send again after "no responders"
}

func newClients(h *hub.Hub, l *link, name string, log *zap.Logger) *clients {
	return &clients{hub: h, link: l, nc: l.nc, log: log, prefix: wire.ReplyPrefix + name + ".",
		pending: make(map[uint64]clientRequest), stop: make(chan struct{})}
}

// start subscribes to the replies and starts the sweep of late ones.
func (c *clients) start() error {
	sub, err := c.nc.Subscribe(c.prefix+"*", c.handleReply)
	if err != nil {
		return err
	}
	// Each waiting request has one ack of a few dozen bytes coming.
	sub.SetPendingLimits(2*maxClientRequests, 2*maxClientRequests*256)
	c.sub = sub
	c.wg.Add(1)
	go c.sweeper()
	return nil
}

func (c *clients) close() {
	close(c.stop)
	c.wg.Wait()
	if c.sub != nil {
		c.sub.Unsubscribe()
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
		return false, c.link.join(conn, s.ID(), true, r.Topics, r.Presence)
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
	c.mu.Lock()
	if len(c.pending) >= maxClientRequests {
		c.mu.Unlock()
		return false, fmt.Errorf("gateway busy: %d requests wait for a router; not sent, try again", maxClientRequests)
	}
	c.next++
	n := c.next
	c.pending[n] = clientRequest{conn: conn, ref: r.Ref, op: r.Op, at: time.Now(), frame: frame}
	c.mu.Unlock()
	if err := c.publish(n, frame); err != nil {
		c.take(n)
		return false, fmt.Errorf("not sent: NATS: %v", err)
	}
	c.sent.Add(1)
	return true, nil
}

// publish sends request n's frame to a router, its ack to come to the
// request's reply subject.
func (c *clients) publish(n uint64, frame []byte) error {
	return c.nc.PublishMsg(&nats.Msg{Subject: wire.SubjectClient, Reply: c.prefix + strconv.FormatUint(n, 10), Data: frame})
}

// again sends request n again, if it still waits (it may have been
// answered as late meanwhile).
func (c *clients) again(n uint64) {
	c.mu.Lock()
	req, ok := c.pending[n]
	c.mu.Unlock()
	if !ok {
		return
	}
	c.retried.Add(1)
	if err := c.publish(n, req.frame); err != nil {
		if req, ok := c.take(n); ok {
			c.answer(req, ws.AppendError(nil, req.ref, req.op, "not sent: NATS: "+err.Error()))
			c.failed.Add(1)
		}
	}
}

// take removes request n from the waiting ones.
func (c *clients) take(n uint64) (clientRequest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.pending[n]
	delete(c.pending, n)
	return r, ok
}

// handleReply turns a router's ack (or NATS's "no responders") into the
// client's reply.
func (c *clients) handleReply(m *nats.Msg) {
	n, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, c.prefix), 10, 64)
	if err != nil {
		return
	}
	req, ok := c.take(n)
	if !ok {
		return // answered as late already
	}
	if m.Header.Get(wire.StatusHeader) == wire.StatusNotTaken {
		if time.Since(req.at) < clientRetryFor-clientRetryEvery {
			// No router took it (one may be taking over): again soon.
			c.mu.Lock()
			c.pending[n] = req
			c.mu.Unlock()
			time.AfterFunc(clientRetryEvery, func() { c.again(n) })
			return
		}
		c.answer(req, ws.AppendError(nil, req.ref, req.op, fmt.Sprintf("no router is running (none took it for %s): not sent", clientRetryFor)))
		c.failed.Add(1)
		return
	}
	reply, err := replyOf(m.Data)
	if err != nil {
		c.log.Warn("bad ack for a client request", zap.Error(err))
		c.answer(req, ws.AppendError(nil, req.ref, req.op, "the router's answer was malformed: the message may or may not have been delivered"))
		c.failed.Add(1)
		return
	}
	reply.Ref, reply.Op = req.ref, req.op
	c.acked.Add(1)
	c.answer(req, ws.AppendReply(nil, &reply))
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

// sweeper answers the requests no ack came for within clientWait.
func (c *clients) sweeper() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			var late []clientRequest
			c.mu.Lock()
			for n, r := range c.pending {
				if now.Sub(r.at) > clientWait {
					late = append(late, r)
					delete(c.pending, n)
				}
			}
			c.mu.Unlock()
			for _, r := range late {
				c.failed.Add(1)
				c.answer(r, ws.AppendError(nil, r.ref, r.op, fmt.Sprintf("no answer from a router within %s: the message may or may not have been delivered", clientWait)))
			}
		}
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
	c.mu.Lock()
	w := len(c.pending)
	c.mu.Unlock()
	return ClientStats{Sent: c.sent.Load(), Acked: c.acked.Load(), Refused: c.refused.Load(), Failed: c.failed.Load(), Orphaned: c.orphaned.Load(), Retried: c.retried.Load(), Waiting: w}
}
