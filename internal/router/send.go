package router

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// handleSend routes one sender frame. Its ack, if it is a request, goes
// out when every copy's fate is known (see flow.go).
func (r *Router) handleSend(m *nats.Msg) {
	defer r.c.route.Since(time.Now())
	if !r.lead.takes() {
		// Taken as the lead was lost: not routed; the sender is told
		// as if no router were subscribed, and sends it again.
		r.fl.notTaken(m)
		return
	}
	ack := &pendingAck{waiting: 1, reply: m.Reply}
	if sender, n, ok := wire.FrameID(m.Data); ok {
		if r.part.handOver(m, sender) {
			return
		}
		if !r.frames.take(r.fl, frameKey{sender, n}, ack, m.Reply) {
			return // a copy of a frame taken already: answered
		}
	}
	r.routeFrame(m.Data, ack)
}

// handleRoute routes a frame another partition's router handed over:
// every record here, nothing handed on.
func (r *Router) handleRoute(m *nats.Msg) {
	if !r.lead.takes() {
		r.fl.notTaken(m)
		return
	}
	r.routeFrame(m.Data, &pendingAck{waiting: 1, reply: m.Reply, route: true})
}

// routeFrame routes the records of a send frame, for ack.
func (r *Router) routeFrame(frame []byte, ack *pendingAck) {
	if ack.awaited() {
		r.fl.acksPending.Add(1) // until complete
	}
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.begin(ack)
	// The history log holds positions in the order they were given:
	// locked from the first to the batch's records being queued.
	r.hist.lock()
	err := b.records(frame)
	r.hist.queueUnlock(b.logged(), ack)
	if err != nil {
		r.c.badFrames.Add(1)
		r.log.Warn("bad send frame", zap.Error(err))
	}
	b.finish()
}

// sendPresence routes a round of presence events: each one to its
// topic's watchers, the message once per gateway, with no position (like
// a broadcast), and, partitioned, to the other partitions' watchers.
func (r *Router) sendPresence(evs []topics.Event) {
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.begin(&pendingAck{waiting: 1}) // nobody waits for it
	for _, ev := range evs {
		b.fanEvent(ev.Msg, ev.Watchers)
		if ev.Remote {
			b.forwardPresence(ev.Topic, ev.Msg)
		}
	}
	// Counted before they go out: a watcher that has an event sees it
	// counted in /stats (a CI run read the count just before).
	r.c.presenceSent.Add(uint64(len(evs)))
	b.finish()
}

// Kick ends every session of id, on every gateway (each writes its last
// bytes, as at shutdown, and closes), and returns how many it asked to
// end.
func (r *Router) Kick(id int64) int {
	conns := r.reg.Lookup(id, nil)
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.begin(&pendingAck{waiting: 1})
	b.kick(conns)
	b.finish()
	r.c.kicks.Add(uint64(len(conns)))
	return len(conns)
}

// SendResult is what became of one send.
type SendResult struct {
	// Kept: the message got a position in its id's history, for
	// long-poll and SSE clients that resume; or, published to a topic
	// nobody is in, in the topic's history (-topic-history).
	Kept  bool
	Tally wire.Tally
}

// Send routes msg to every conn logged in as id and waits (up to
// Config.DeliverTimeout) for the gateways to say what became of each copy.
// It is what POST /send/{id} calls. If the gateways' windows stay full for
// Config.OverloadWait it routes nothing and returns ErrOverloaded.
func (r *Router) Send(id int64, msg []byte) (SendResult, error) {
	return r.routeOne(wire.AppendSend(sendHeader(), id, msg))
}

func sendHeader() []byte { return wire.AppendHeader(make([]byte, 0, 64), wire.KindSend) }

// Publish is Send for every member of topic (a valid name): POST
// /publish/{topic}.
func (r *Router) Publish(topic string, msg []byte) (SendResult, error) {
	return r.routeOne(wire.AppendPublish(sendHeader(), topic, msg))
}

// Broadcast is Send for every connection of every gateway: POST
// /broadcast.
func (r *Router) Broadcast(msg []byte) (SendResult, error) {
	return r.routeOne(wire.AppendBroadcast(sendHeader(), msg))
}

// routeOne routes a send frame of one send, publish or broadcast and
// waits for what became of its copies. A standby has the leader route it
// (sent again while none leads, within the time a router answers in).
func (r *Router) routeOne(frame []byte) (SendResult, error) {
	if r.lead.standby() {
		answer, err := r.fwd.Request(wire.SubjectSend, frame)
		if err != nil {
			return SendResult{}, fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		rec, err := wire.ParseAck(answer)
		if err != nil {
			return SendResult{}, fmt.Errorf("%w: the leader's answer: %w", ErrNoLeader, err)
		}
		return SendResult{Kept: rec.Kept > 0, Tally: rec.Tally}, nil
	}
	if !r.fl.waitRoom(time.Now().Add(r.cfg.OverloadWait)) {
		r.c.refused.Add(1)
		return SendResult{}, ErrOverloaded
	}
	ack := &pendingAck{waiting: 1, done: make(chan struct{})}
	r.routeFrame(frame, ack)
	select {
	case <-ack.done:
	case <-time.After(r.cfg.DeliverTimeout + time.Second):
		// Flights are resolved by DeliverTimeout at the latest; this
		// only guards against a router being closed meanwhile.
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	if ack.unlogged {
		return SendResult{}, ErrNotLogged
	}
	if ack.unanswered {
		return SendResult{}, ErrUnanswered
	}
	return SendResult{Kept: ack.positioned > 0 || ack.kept > 0, Tally: ack.tally}, nil
}
