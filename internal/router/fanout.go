package router

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// maxDownFrame bounds a delivery frame; NATS's default max payload is 1 MiB.
const maxDownFrame = 512 << 10

// sendBatch is the fan-out of one send frame: it gathers the deliveries
// per gateway, so each gateway gets one NATS message per frame (or per
// maxDownFrame) and each message is encoded once per gateway, whatever
// the number of its conns. What it routes is passed down as parameters;
// its fields are the frames being built and the buffers it reuses.
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
	now    int64

	members []topics.Member
	pubs    uint64 // publishes and events routed: each frame writes a message once per publish
	// positioned: sends given a position in their id's history.
	positioned uint64

	// A partitioned router: the records for each other partition (a
	// send frame for each, nil or empty for none).
	fwd [][]byte

	// A redundant router's leader: the records of the positions the
	// batch gives, for the history log (logs says whether it keeps
	// them).
	logs bool
	hist []byte
}

// fanout is one publish (or presence event) being fanned out: its
// message, and what became of it so far.
type fanout struct {
	n        uint64 // its number in the batch (sendBatch.pubs)
	msg      []byte
	topic    string
	presence bool   // the message is a presence event
	copies   uint64 // written to conns
	kept     bool   // given a position in an id's history
}

// downFrame is a down frame being built for one gateway.
type downFrame struct {
	gw     *peer
	seq    uint64
	b      []byte
	copies uint64
	pub    uint64 // the publish whose fanout record the frame has last
}

func newSendBatch(r *Router) *sendBatch {
	return &sendBatch{r: r, frames: make(map[uint32]*downFrame)}
}

// begin starts a batch whose outcome goes to ack.
func (b *sendBatch) begin(ack *pendingAck) {
	b.ack, b.positioned = ack, 0
	b.logs = b.r.hist.logs()
	b.now = time.Now().UnixNano()
}

// records routes the records of send frame: the history log's lock is
// held (positions are given here). Records of another partition's ids
// are gathered for it (or, from another partition's router, refused).
func (b *sendBatch) records(frame []byte) error {
	r, p, ack := b.r, b.r.part, b.ack
	h, err := b.dec.Reset(frame)
	if err == nil && h.Kind != wire.KindSend {
		err = fmt.Errorf("%s frame on the send subject", h.Kind)
	}
	if err != nil {
		return err
	}
	for b.dec.Next(&b.rec) {
		switch b.rec.Op {
		case wire.OpSend:
			if k, other := p.other(b.rec.ID); other {
				if ack.route {
					p.foreign.Add(1) // not accepted: the sender counts it lost
				} else {
					b.forward(k, b.rec.ID, b.rec.Msg)
				}
				continue
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
				r.c.badFrames.Add(1)
				r.log.Warn("presence record from a sender: only a partitioned router sends them, on its route subject; skipped")
				continue
			}
			b.fanEvent(b.rec.Msg, r.topics.WatchersOf(b.rec.Topic))
		}
	}
	return b.dec.Err()
}

// logged hands over the records the batch logs (with the frame's id, if
// it has one: a standby that takes over answers a copy of it).
func (b *sendBatch) logged() []byte {
	if b.logs && b.ack.framed {
		b.hist = retention.AppendFrame(b.hist, b.ack.frame.sender, b.ack.frame.n, b.ack.accepted)
	}
	h := b.hist
	b.hist = nil
	return h
}

// log notes, for the history log, that msg (of topic) took position
// (epoch, seq) of id.
func (b *sendBatch) log(id int64, epoch, seq uint64, topic string, msg []byte) {
	if b.logs {
		b.hist = retention.AppendEntry(b.hist, id, epoch, seq, b.now, topic, msg)
	}
}

// send routes msg to id: at the position it takes in id's history, if
// it has one.
func (b *sendBatch) send(id int64, msg []byte) {
	b.ack.accepted++
	b.r.c.sent.Add(1)
	h := b.r.store.Lock(id)
	kept := retention.Share(msg)
	epoch, seq := h.Append("", &kept, b.now)
	b.route(id, msg, epoch, seq)
	h.Unlock()
}

// route writes msg, sent to id, into the frames of the gateways holding
// id; epoch and seq are its position (0 when id has no history). id's
// history is locked, so it only builds frames: finish publishes them.
func (b *sendBatch) route(id int64, msg []byte, epoch, seq uint64) {
	r := b.r
	if epoch != 0 {
		b.positioned++
		b.log(id, epoch, seq, "", msg)
	}
	b.conns = r.reg.Lookup(id, b.conns[:0])
	if len(b.conns) == 0 {
		if epoch != 0 {
			b.ack.kept++
			r.c.kept.Add(1) // nobody holds it now, but a resuming client will get it
			return
		}
		b.ack.void++
		r.c.void.Add(1)
		return
	}
	b.eachGateway(b.conns, func(f *downFrame, group []uint64) {
		if f == nil { // forgotten while we routed
			r.c.droppedGateway.Add(uint64(len(group)))
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

// publish routes msg to every member of topic: each conn that joined it,
// at the position the message takes in its id's history (if the id has
// one), and each id lingering in it (kept for its resume). Every gateway
// gets the message once in its frame, then the conns per id.
func (b *sendBatch) publish(topic []byte, msg []byte) {
	r := b.r
	b.ack.accepted++
	r.c.published.Add(1)
	var name string
	var keep func()
	if r.thist.Keeps() {
		// Kept in step with the members read: a join sees it kept or
		// gets it live (topics.Index.JoinThen).
		keep = func() { b.keepTopic(topic, msg) }
	}
	b.members, name = r.topics.MembersKeeping(topic, b.members[:0], keep)
	name = b.addSubscribers(topic, name)
	if len(b.members) == 0 && keep != nil {
		b.pubOutcome(wire.PubKept) // for those who join later
		r.c.kept.Add(1)
		return
	}
	if len(b.members) == 0 {
		b.pubOutcome(wire.PubVoid)
		r.c.void.Add(1)
		r.c.topicVoid.Add(1)
		return
	}
	b.pubs++
	pub := fanout{n: b.pubs, msg: msg, topic: name}
	kept := retention.Share(msg) // one copy for every member's history
	for i := 0; i < len(b.members); {
		id := b.members[i].ID
		j := i
		for j < len(b.members) && b.members[j].ID == id {
			j++
		}
		h := r.store.Lock(id)
		epoch, seq := h.Append(name, &kept, b.now)
		if epoch != 0 {
			pub.kept = true
			b.log(id, epoch, seq, name, msg)
		}
		b.fanTo(&pub, b.members[i:j], epoch, seq)
		h.Unlock()
		i = j
	}
	if pub.kept {
		b.positioned++
	}
	switch {
	case pub.copies > 0:
		b.pubOutcome(wire.PubCopies)
	case pub.kept:
		b.pubOutcome(wire.PubKept)
		r.c.kept.Add(1)
	default:
		b.pubOutcome(wire.PubVoid)
		r.c.void.Add(1)
		r.c.topicVoid.Add(1)
	}
}

// keepTopic keeps a copy of msg in topic's history, logged for a
// redundant standby.
func (b *sendBatch) keepTopic(topic, msg []byte) {
	msg = slices.Clone(msg)
	epoch, seq := b.r.thist.Append(topic, msg, b.now)
	b.r.c.topicKept.Add(1)
	if b.logs {
		b.hist = retention.AppendTopicEntry(b.hist, string(topic), epoch, seq, b.now, msg)
	}
}

// addSubscribers adds to b.members every conn of every id subscribed to
// topic (stored subscriptions), and the subscribed ids with no conn now
// (so the message is kept for their resume, if they have a history),
// without repeating a conn that also joined the topic itself. It returns
// the topic's interned name.
func (b *sendBatch) addSubscribers(topic []byte, name string) string {
	r := b.r
	joined := len(b.members)
	r.stored.subscribers(topic, func(n string, ids []int64) {
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

// fanTo writes pub to the conns ms (sorted by gateway), at position
// (epoch, seq) of their id (0: none). Like route, it runs with the id's
// history locked, if it has one.
func (b *sendBatch) fanTo(pub *fanout, ms []topics.Member, epoch, seq uint64) {
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
			b.r.c.droppedGateway.Add(uint64(len(b.group)))
			b.ack.note(wire.Tally{Gateway: uint64(len(b.group))})
			continue
		}
		if f.pub != pub.n {
			if pub.presence {
				f.b = wire.AppendFanoutPresence(f.b, pub.msg)
			} else {
				f.b = wire.AppendFanout(f.b, pub.msg)
			}
			f.pub = pub.n
		}
		f.b = wire.AppendFanoutTo(f.b, epoch, seq, b.group)
		f.copies += uint64(len(b.group))
		pub.copies += uint64(len(b.group))
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
	b.pubs++
	b.fanTo(&fanout{n: b.pubs, msg: msg, presence: true}, ws, 0, 0)
}

// broadcast routes msg to every connection of every gateway: one record
// per gateway, which writes it to each of its connections; nothing here
// loops over them. A broadcast takes no position in any id's history: a
// client that is away when it is sent does not get it on resume.
func (b *sendBatch) broadcast(msg []byte) {
	r := b.r
	b.ack.accepted++
	r.c.broadcasts.Add(1)
	copies := uint64(0)
	for _, gw := range r.gws.all() {
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
		r.c.void.Add(1)
	}
}

// kick writes the end of every session in conns.
func (b *sendBatch) kick(conns []registry.Conn) {
	b.eachGateway(conns, func(f *downFrame, group []uint64) {
		if f != nil {
			f.b = wire.AppendKick(f.b, group)
		}
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
	gw := b.r.gws.at(idx)
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
// room, hands on what is for other partitions, and lets the ack go once
// their flights are resolved.
func (b *sendBatch) finish() {
	fl := b.r.fl
	for idx, f := range b.frames {
		b.ready = append(b.ready, f)
		delete(b.frames, idx)
	}
	for i, f := range b.ready {
		fl.send(f.gw, f.seq, f.b, f.copies, b.ack, true)
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
	b.ack.routed(fl)
	b.ack = nil
}

// pubOutcome notes what became of the publish being routed here: counted
// at once unpartitioned; partitioned, kept until the other partitions'
// answers say what became of it there.
func (b *sendBatch) pubOutcome(o byte) {
	if b.r.part != nil {
		b.ack.pubs = append(b.ack.pubs, o)
		return
	}
	switch o {
	case wire.PubVoid:
		b.ack.void++
	case wire.PubKept:
		b.ack.kept++
	}
}

// forward appends the send record (id, msg) to the frame for partition k.
func (b *sendBatch) forward(k int, id int64, msg []byte) {
	b.fwd[k] = wire.AppendSend(b.fwdFrame(k), id, msg)
}

// forwardPublish appends the publish to the frame of every other
// partition: each routes it to its members.
func (b *sendBatch) forwardPublish(topic, msg []byte) {
	b.toOthers(func(f []byte) []byte { return wire.AppendPublish(f, string(topic), msg) })
}

// forwardPresence hands a presence event of this partition's ids to the
// other partitions, for their watchers of topic.
func (b *sendBatch) forwardPresence(topic string, msg []byte) {
	b.toOthers(func(f []byte) []byte { return wire.AppendPresence(f, topic, msg) })
}

// toOthers appends a record (add) to the frame of every other partition.
func (b *sendBatch) toOthers(add func(f []byte) []byte) {
	p := b.r.part
	for k := 0; k < p.n; k++ {
		if k != p.k {
			b.fwd[k] = add(b.fwdFrame(k))
		}
	}
}

func (b *sendBatch) fwdFrame(k int) []byte {
	if b.fwd == nil {
		b.fwd = make([][]byte, b.r.part.n)
	}
	if len(b.fwd[k]) == 0 {
		b.fwd[k] = wire.AppendHeader(b.fwd[k], wire.KindSend)
	}
	return b.fwd[k]
}

// handOn sends the frames gathered for other partitions, each waited for
// by the batch's ack.
func (b *sendBatch) handOn() {
	for k, f := range b.fwd {
		if len(f) > 0 {
			b.r.part.forwardTo(k, f, b.ack)
			b.fwd[k] = f[:0]
		}
	}
}
