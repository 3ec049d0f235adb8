package router

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// handleSend routes one sender frame. Its ack, if it is a request, goes
// out when every copy's fate is known (see flow.go).
func (r *Router) handleSend(m *nats.Msg) {
	if r.standby() {
		// Taken as the lead was lost: not routed; the sender is told
		// as if no router were subscribed, and sends it again.
		r.lead.notLeading.Add(1)
		r.notTaken(m)
		return
	}
	ack := &pendingAck{waiting: 1, reply: m.Reply}
	if sender, n, ok := wire.FrameID(m.Data); ok {
		if r.handOver(m, sender) {
			return
		}
		if !r.frames.take(r, frameKey{sender, n}, ack, m.Reply) {
			return // a copy of a frame taken already: answered
		}
	}
	r.routeFrame(m.Data, ack)
}

// routeFrame routes the records of a send frame, for ack.
func (r *Router) routeFrame(frame []byte, ack *pendingAck) {
	if ack.awaited() {
		r.acksPending.Add(1) // until complete
	}
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.reset(ack)
	h, err := b.dec.Reset(frame)
	if err == nil && h.Kind != wire.KindSend {
		err = fmt.Errorf("%s frame on the send subject", h.Kind)
	}
	if err == nil {
		p := b.r.part
		for b.dec.Next(&b.rec) {
			switch b.rec.Op {
			case wire.OpSend:
				if p != nil {
					if k := p.of(b.rec.ID); k != p.k {
						if ack.route {
							p.foreign.Add(1) // not accepted: the sender counts it lost
						} else {
							b.forward(k, b.rec.ID, b.rec.Msg)
						}
						continue
					}
				}
				b.send(b.rec.ID, b.rec.Msg)
			case wire.OpPublish:
				b.publish(b.rec.Topic, b.rec.Msg)
				if p != nil && !ack.route {
					b.forwardPublish(b.rec.Topic, b.rec.Msg)
				}
			case wire.OpBroadcast:
				b.broadcast(b.rec.Msg)
			case wire.OpFrameID:
				// read by handleSend (the decoder takes it first only)
			case wire.OpPresence:
				if !ack.route {
					b.r.badFrames.Add(1)
					b.r.log.Warn("presence record from a sender: only a partitioned router sends them, on its route subject; skipped")
					continue
				}
				b.presenceOf(b.rec.Topic, b.rec.Msg)
			}
		}
		err = b.dec.Err()
	}
	if err != nil {
		r.badFrames.Add(1)
		r.log.Warn("bad send frame", zap.Error(err))
	}
	b.finish()
}

// SendResult is what became of one send.
type SendResult struct {
	// Kept: the message got a position in its id's history, for
	// long-poll and SSE clients that resume.
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
// waits for what became of its copies. A standby has the leader route it.
func (r *Router) routeOne(frame []byte) (SendResult, error) {
	if r.standby() {
		return r.forward(frame)
	}
	if !r.waitRoom(time.Now().Add(r.cfg.OverloadWait)) {
		r.refused.Add(1)
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
	return SendResult{Kept: ack.positioned > 0, Tally: ack.tally}, nil
}

// maxDownFrame bounds a delivery frame; NATS's default max payload is 1 MiB.
const maxDownFrame = 512 << 10

// sendBatch gathers the deliveries of one send frame per gateway, so each
// gateway gets one NATS message per frame (or per maxDownFrame) and each
// message is encoded once per gateway, whatever the number of its conns.
type sendBatch struct {
	r      *Router
	dec    wire.Decoder
	rec    wire.Record
	conns  []registry.Conn
	group  []uint64
	frames map[uint32]*downFrame // being filled, by gateway
	ready  []*downFrame          // full, to publish
	free   []*downFrame
	ack    *pendingAck

	// The send being routed, for route (a method value made once: no
	// allocation per send).
	id      int64
	msg     []byte
	now     int64
	routeFn func(epoch, seq uint64)

	// The publish being routed, for fanTo: its recipients of the id being
	// routed, its number in this batch (each frame writes its message
	// once per publish), and what became of it so far.
	members   []topics.Member
	idMembers []topics.Member
	pub       uint64
	pubCopies uint64
	pubKept   bool
	fanFn     func(epoch, seq uint64)
	// presence: the messages fanTo writes are presence events.
	presence bool

	positioned uint64 // sends given a position in their id's history

	// A partitioned router: the records for each other partition (a
	// send frame for each, nil or empty for none).
	fwd [][]byte

	// A redundant router's leader: the batch holds the log's lock from
	// its first position on (logging), and the records of the positions
	// it gives go to the history log (hist), topic naming the publish
	// being routed.
	logging bool
	hist    []byte
	topic   string
}

// downFrame is a down frame being built for one gateway.
type downFrame struct {
	gw     *peer
	seq    uint64
	b      []byte
	copies uint64
	pub    uint64 // the publish whose fanout record the frame has last
}

func newSendBatch(r *Router) any {
	b := &sendBatch{r: r, frames: make(map[uint32]*downFrame)}
	b.routeFn = b.route
	b.fanFn = b.fanTo
	return b
}

func (b *sendBatch) reset(ack *pendingAck) {
	b.ack, b.positioned = ack, 0
	if l := b.r.lead; l != nil {
		l.mu.Lock()
		b.logging = true
	}
	b.now = time.Now().UnixNano()
}

// log notes, for the history log, that the message being routed took
// position (epoch, seq) of id.
func (b *sendBatch) log(id int64, epoch, seq uint64) {
	if b.logging {
		b.hist = retention.AppendEntry(b.hist, id, epoch, seq, b.now, b.topic, b.msg)
	}
}

func (b *sendBatch) send(id int64, msg []byte) {
	b.ack.accepted++
	b.r.sent.Add(1)
	b.id, b.msg = id, msg
	b.r.store.Append(id, "", msg, b.now, b.routeFn)
	b.msg = nil
}

// publish routes msg to every member of topic: each conn that joined it,
// at the position the message takes in its id's history (if the id has
// one), and each id lingering in it (kept for its resume). Every gateway
// gets the message once in its frame, then the conns per id.
func (b *sendBatch) publish(topic []byte, msg []byte) {
	r := b.r
	b.ack.accepted++
	r.published.Add(1)
	var name string
	b.members, name = r.topics.Members(topic, b.members[:0])
	if r.stored != nil {
		name = b.addSubscribers(topic, name)
	}
	if len(b.members) == 0 {
		b.pubOutcome(wire.PubVoid)
		r.void.Add(1)
		r.topicVoid.Add(1)
		return
	}
	b.pub++
	b.msg, b.pubCopies, b.pubKept, b.topic = msg, 0, false, name
	for i := 0; i < len(b.members); {
		id := b.members[i].ID
		j := i
		for j < len(b.members) && b.members[j].ID == id {
			j++
		}
		b.id, b.idMembers = id, b.members[i:j]
		r.store.Append(id, name, msg, b.now, b.fanFn)
		i = j
	}
	if b.pubKept {
		b.positioned++
	}
	switch {
	case b.pubCopies > 0:
		b.pubOutcome(wire.PubCopies)
	case b.pubKept:
		b.pubOutcome(wire.PubKept)
		r.kept.Add(1)
	default:
		b.pubOutcome(wire.PubVoid)
		r.void.Add(1)
		r.topicVoid.Add(1)
	}
	b.msg, b.idMembers, b.topic = nil, nil, ""
}

// addSubscribers adds to b.members every conn of every id subscribed to
// topic (stored subscriptions), and the subscribed ids with no conn now
// (so the message is kept for their resume, if they have a history),
// without repeating a conn that also joined the topic itself. It returns
// the topic's interned name.
func (b *sendBatch) addSubscribers(topic []byte, name string) string {
	r := b.r
	joined := len(b.members)
	r.stored.Subscribers(topic, func(n string, ids []int64) {
		if name == "" {
			name = n
		}
		for _, id := range ids {
			b.conns = r.reg.Lookup(id, b.conns[:0])
			if len(b.conns) == 0 {
				b.members = append(b.members, topics.Member{ID: id})
				continue
			}
			for _, c := range b.conns {
				b.members = append(b.members, topics.Member{ID: id, Conn: c})
			}
		}
	})
	if len(b.members) > joined {
		slices.SortFunc(b.members, func(a, c topics.Member) int {
			switch {
			case a.ID != c.ID:
				return cmp.Compare(a.ID, c.ID)
			case a.Conn.GW != c.Conn.GW:
				return cmp.Compare(a.Conn.GW, c.Conn.GW)
			}
			return cmp.Compare(a.Conn.Conn, c.Conn.Conn)
		})
		b.members = slices.Compact(b.members)
	}
	return name
}

// fanTo writes the publish being routed to the conns of the id being
// routed, at position (epoch, seq) of that id (0: it has no history).
// Like route, it runs with the id's history lock held.
func (b *sendBatch) fanTo(epoch, seq uint64) {
	r := b.r
	if epoch != 0 {
		b.pubKept = true
		b.log(b.id, epoch, seq)
	}
	ms := b.idMembers
	for i := 0; i < len(ms); {
		gw := ms[i].Conn.GW
		b.group = b.group[:0]
		for ; i < len(ms) && ms[i].Conn.GW == gw; i++ {
			if gw != 0 { // 0: the id lingers, no conn
				b.group = append(b.group, ms[i].Conn.Conn)
			}
		}
		if len(b.group) == 0 {
			continue
		}
		f := b.frame(gw)
		if f == nil {
			r.droppedGateway.Add(uint64(len(b.group)))
			b.ack.note(wire.Tally{Gateway: uint64(len(b.group))})
			continue
		}
		if f.pub != b.pub {
			if b.presence {
				f.b = wire.AppendFanoutPresence(f.b, b.msg)
			} else {
				f.b = wire.AppendFanout(f.b, b.msg)
			}
			f.pub = b.pub
		}
		f.b = wire.AppendFanoutTo(f.b, epoch, seq, b.group)
		f.copies += uint64(len(b.group))
		b.pubCopies += uint64(len(b.group))
		if len(f.b) >= maxDownFrame {
			b.ready = append(b.ready, f)
			delete(b.frames, gw)
		}
	}
}

// fanEvent writes the presence event msg to the conns ws (no position,
// like a broadcast; none: nothing).
func (b *sendBatch) fanEvent(msg []byte, ws []topics.Member) {
	if len(ws) == 0 {
		return
	}
	b.pub++
	b.presence, b.msg, b.idMembers = true, msg, ws
	b.fanTo(0, 0)
	b.presence, b.msg, b.idMembers = false, nil, nil
}

// Kick ends every session of id, on every gateway (each writes its last
// bytes, as at shutdown, and closes), and returns how many it asked to
// end.
func (r *Router) Kick(id int64) int {
	conns := r.reg.Lookup(id, nil)
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.reset(&pendingAck{waiting: 1})
	b.eachGateway(conns, func(f *downFrame, group []uint64) {
		if f != nil {
			f.b = wire.AppendKick(f.b, group)
		}
	})
	b.finish()
	r.kicks.Add(uint64(len(conns)))
	return len(conns)
}

// broadcast routes msg to every connection of every gateway: one record
// per gateway, which writes it to each of its connections; nothing here
// loops over them. A broadcast takes no position in any id's history: a
// client that is away when it is sent does not get it on resume.
func (b *sendBatch) broadcast(msg []byte) {
	r := b.r
	b.ack.accepted++
	r.broadcasts.Add(1)
	copies := uint64(0)
	for _, gw := range r.peers() {
		n := gw.conns.Load()
		if n == 0 {
			continue
		}
		f := b.frame(gw.idx)
		if f == nil {
			continue
		}
		f.b = wire.AppendBroadcastAll(f.b, msg)
		f.copies += uint64(n)
		copies += uint64(n)
		if len(f.b) >= maxDownFrame {
			b.ready = append(b.ready, f)
			delete(b.frames, gw.idx)
		}
	}
	if copies == 0 {
		b.ack.void++
		r.void.Add(1)
	}
}

// route writes the send being routed into the frames of the gateways
// holding its id; epoch and seq are its position (0 when its id has no
// history). It runs with the id's history lock held (see Store.Append),
// so it only builds frames: they are published by finish.
func (b *sendBatch) route(epoch, seq uint64) {
	r := b.r
	id, msg := b.id, b.msg
	if epoch != 0 {
		b.positioned++
		b.log(id, epoch, seq)
	}
	b.conns = r.reg.Lookup(id, b.conns[:0])
	if len(b.conns) == 0 {
		if epoch != 0 {
			b.ack.kept++
			r.kept.Add(1) // nobody holds it now, but a resuming client will get it
			return
		}
		b.ack.void++
		r.void.Add(1)
		return
	}
	b.eachGateway(b.conns, func(f *downFrame, group []uint64) {
		if f == nil { // forgotten while we routed
			r.droppedGateway.Add(uint64(len(group)))
			b.ack.note(wire.Tally{Gateway: uint64(len(group))})
			return
		}
		if epoch != 0 {
			f.b = wire.AppendDeliverAt(f.b, epoch, seq, msg, group)
		} else {
			f.b = wire.AppendDeliver(f.b, msg, group)
		}
		f.copies += uint64(len(group))
	})
}

// eachGateway sorts conns by gateway and calls add with each gateway's
// frame (nil: the gateway was forgotten meanwhile) and its conns there
// (valid during the call); a frame that grows past maxDownFrame is set
// aside for finish to publish.
func (b *sendBatch) eachGateway(conns []registry.Conn, add func(f *downFrame, group []uint64)) {
	if len(conns) > 1 {
		slices.SortFunc(conns, func(x, y registry.Conn) int { return cmp.Compare(x.GW, y.GW) })
	}
	for i := 0; i < len(conns); {
		gw := conns[i].GW
		b.group = b.group[:0]
		for ; i < len(conns) && conns[i].GW == gw; i++ {
			b.group = append(b.group, conns[i].Conn)
		}
		f := b.frame(gw)
		add(f, b.group)
		if f != nil && len(f.b) >= maxDownFrame {
			b.ready = append(b.ready, f)
			delete(b.frames, gw)
		}
	}
}

// frame returns the frame being built for gateway idx, starting one if
// needed; nil if the gateway is no longer known.
func (b *sendBatch) frame(idx uint32) *downFrame {
	if f := b.frames[idx]; f != nil {
		return f
	}
	r := b.r
	r.gwMu.RLock()
	gw := r.gwByIdx[idx]
	r.gwMu.RUnlock()
	if gw == nil {
		return nil
	}
	var f *downFrame
	if n := len(b.free); n > 0 {
		f, b.free = b.free[n-1], b.free[:n-1]
	} else {
		f = new(downFrame)
	}
	f.gw, f.seq, f.copies, f.pub = gw, gw.nextSeq.Add(1), 0, 0
	f.b = wire.AppendDownHeader(f.b[:0], f.seq)
	b.frames[idx] = f
	return f
}

// finish publishes the batch's frames, each once its gateway's window has
// room, and lets the ack go once their flights are resolved.
func (b *sendBatch) finish() {
	if b.logging {
		// Queued in the order positions were given; the ack waits
		// for the log as for the gateways.
		if b.ack.framed {
			// A standby that takes over answers a copy of it.
			b.hist = retention.AppendFrame(b.hist, b.ack.frame.sender, b.ack.frame.n, b.ack.accepted)
		}
		if len(b.hist) > 0 {
			b.r.lead.enqueue(b.hist, b.ack)
			b.hist = nil
		}
		b.logging = false
		b.r.lead.mu.Unlock()
	}
	for idx, f := range b.frames {
		b.ready = append(b.ready, f)
		delete(b.frames, idx)
	}
	for i, f := range b.ready {
		b.r.send(f.gw, f.seq, f.b, f.copies, b.ack, true)
		f.gw = nil
		if cap(f.b) <= 4*maxDownFrame {
			b.free = append(b.free, f)
		}
		b.ready[i] = nil
	}
	b.ready = b.ready[:0]
	if b.positioned > 0 {
		b.ack.mu.Lock()
		b.ack.positioned += b.positioned
		b.ack.mu.Unlock()
	}
	b.handOn()
	b.ack.routed(b.r)
	b.ack = nil
}
