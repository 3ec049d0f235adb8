package router

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/wire"
)

// Partitioned routers (docs/PROTOCOL.md, "Partitioned routers"): ids are
// split into Config.Partitions shares by wire.Partition; a router serves
// one. Gateways send each id's logins to its partition's subject, so a
// router holds its share of the registry, histories and stored
// subscriptions. Senders may send any frame to any partition's router
// (the plain send subject reaches one of them): the records meant for
// another partition are handed to its router on the route subject, as
// one request per partition per frame, and the sender's ack waits for
// their answers. A publish reaches members in every partition, so it is
// routed here and handed to every other partition; a broadcast is one
// record per gateway, and every router knows every gateway: it is
// routed where it was taken.

// maxForwards bounds the frames a router has handed to other partitions
// and not had answered; past it the router stops taking frames (NATS
// holds them, bounded by Config.SendLimit) and so slows the senders.
const maxForwards = 1024

// forwardRetry is how often a frame that no router of its partition took
// (none leads it at the moment: a redundant takeover) is tried again,
// within the wait for its answer.
const forwardRetry = 100 * time.Millisecond

// partition is a partitioned router's share of the ids and its way to
// the other partitions.
type partition struct {
	n, k         int
	route        []string      // the route subject of each partition
	watchSubject string        // where the partitions' watch lists go
	slots        chan struct{} // forwarded frames waiting for their answer
	// Frames handed to other partitions, those that got no answer (not
	// acked), records of another partition's ids on the route subject
	// (not routed, not acked), and up frames on the unpartitioned
	// subject (a gateway started without -partitions).
	forwarded, unanswered, foreign atomic.Uint64
	// handedOver: frames with a frame-id handed whole to their sender's
	// partition (handOver).
	handedOver atomic.Uint64
}

func newPartition(n, k int) *partition {
	p := &partition{n: n, k: k, route: make([]string, n), slots: make(chan struct{}, maxForwards), watchSubject: wire.SubjectWatch + "." + strconv.Itoa(n)}
	for i := range p.route {
		p.route[i] = wire.PartSubject(wire.SubjectRoute, n, i)
	}
	return p
}

// of returns id's partition.
func (p *partition) of(id int64) int { return wire.Partition(id, p.n) }

// mine reports whether the router serves id (always, unpartitioned).
func (r *Router) mine(id int64) bool { return r.part == nil || r.part.of(id) == r.part.k }

// PartitionStats is what a partitioned router handed to other partitions
// (GET /stats "partition").
type PartitionStats struct {
	Partitions int    `json:"partitions"`
	Partition  int    `json:"partition"`
	Forwarded  uint64 `json:"forwarded"`   // frames handed to other partitions' routers
	Unanswered uint64 `json:"unanswered"`  // of those, not answered in time: their senders got no ack
	HandedOver uint64 `json:"handed_over"` // frames with a frame-id handed whole to their sender's partition
	Waiting    int    `json:"waiting"`     // forwarded frames waiting for their answer now
	Foreign    uint64 `json:"foreign"`     // records for other partitions' ids taken on the route subject (senders misconfigured): not routed, not acked
}

func (r *Router) partitionStats() *PartitionStats {
	p := r.part
	if p == nil {
		return nil
	}
	return &PartitionStats{Partitions: p.n, Partition: p.k, Forwarded: p.forwarded.Load(), Unanswered: p.unanswered.Load(),
		Waiting: len(p.slots), Foreign: p.foreign.Load(), HandedOver: p.handedOver.Load()}
}

// handleRoute routes a frame another partition's router handed over:
// every record here, nothing handed on.
func (r *Router) handleRoute(m *nats.Msg) {
	if r.standby() {
		r.lead.notLeading.Add(1)
		r.notTaken(m)
		return
	}
	r.routeFrame(m.Data, &pendingAck{waiting: 1, reply: m.Reply, route: true})
}

// handleStrayUp counts an up frame sent where this router does not read
// up frames (a gateway given another -partitions than the routers': a
// partitioned gateway's to an unpartitioned router, or the reverse) and
// says once per gateway how to mend it.
func (r *Router) handleStrayUp(m *nats.Msg) {
	r.strayUp.Add(1)
	var d wire.Decoder
	h, err := d.Reset(m.Data)
	if err != nil {
		return
	}
	if _, seen := r.strayWarned.LoadOrStore(h.Gateway, true); !seen {
		r.log.Error("a gateway sends its logins where this router does not read them: give it the routers' -partitions, or its clients get nothing",
			zap.String("gateway", h.Gateway), zap.String("subject", m.Subject), zap.Int("partitions", max(r.cfg.Partitions, 1)))
	}
}

// Presence across partitions: a topic's members are ids of every
// partition, and so are its watchers. Each round, every partition's
// leader tells the others which topics it has watchers in (its watch
// list); a partition makes the join and leave events of its own ids for
// a topic watched anywhere, writes them to its own watchers, and hands
// them to the other partitions, which write them to theirs. Each event
// says whose ids it counts ("partition", "partitions").

// sendWatchList tells the other partitions which topics this one has
// watchers in (the leader only; nothing when there are none). What it
// says lasts three rounds.
func (r *Router) sendWatchList() {
	if r.standby() {
		return
	}
	topics := r.topics.WatchedHere()
	if len(topics) == 0 {
		return
	}
	if err := r.nc.Publish(r.part.watchSubject, wire.AppendWatch(nil, r.part.k, topics)); err != nil {
		r.log.Warn("watch list not sent", zap.Error(err))
	}
}

// handleWatch notes another partition's watch list.
func (r *Router) handleWatch(m *nats.Msg) {
	k, topics, err := wire.ParseWatch(m.Data, r.part.n)
	if err != nil {
		r.badFrames.Add(1)
		r.log.Warn("bad watch list", zap.Error(err))
		return
	}
	if k == r.part.k {
		return // this partition's own (its leader's)
	}
	r.topics.WatchRemote(topics, time.Now().Add(3*PresenceEvery).UnixNano())
}

// forwardPresence hands a presence event of this partition's ids to the
// other partitions, for their watchers of topic.
func (b *sendBatch) forwardPresence(topic string, msg []byte) {
	b.toOthers(func(f []byte) []byte { return wire.AppendPresence(f, topic, msg) })
}

// presenceOf writes another partition's presence event msg for topic to
// this partition's watchers of it.
func (b *sendBatch) presenceOf(topic, msg []byte) {
	b.fanEvent(msg, b.r.topics.WatchersOf(topic))
}

// forward appends the send record (id, msg) to the frame for partition k.
func (b *sendBatch) forward(k int, id int64, msg []byte) {
	f := b.fwdFrame(k)
	b.fwd[k] = wire.AppendSend(f, id, msg)
}

// forwardPublish appends the publish to the frame of every other
// partition: each routes it to its members.
func (b *sendBatch) forwardPublish(topic, msg []byte) {
	b.toOthers(func(f []byte) []byte { return wire.AppendPublish(f, string(topic), msg) })
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
			b.r.forwardTo(k, f, b.ack)
			b.fwd[k] = f[:0]
		}
	}
}

// forwardTo hands frame to partition k's router and adds its answer to
// ack. It waits while maxForwards frames wait for theirs.
func (r *Router) forwardTo(k int, frame []byte, ack *pendingAck) {
	p := r.part
	p.slots <- struct{}{}
	ack.mu.Lock()
	ack.waiting++
	ack.mu.Unlock()
	p.forwarded.Add(1)
	frame = append([]byte(nil), frame...)
	go func() {
		defer func() { <-p.slots }()
		rec, outs, err := r.routeRequest(p.route[k], frame)
		if err != nil {
			p.unanswered.Add(1)
			r.log.Warn("a partition's router did not answer a frame handed to it: not acked", zap.Int("partition", k), zap.Error(err))
			ack.mu.Lock()
			ack.unanswered = true
			ack.mu.Unlock()
			ack.add(r, wire.Tally{})
			return
		}
		ack.merge(r, rec, outs)
	}()
}

// routeRequest sends frame to subject and waits for the ack, sending it
// again while no router takes it (a redundant takeover in progress),
// within the time any router answers in.
func (r *Router) routeRequest(subject string, frame []byte) (wire.Record, []byte, error) {
	deadline := time.Now().Add(r.cfg.DeliverTimeout + r.cfg.OverloadWait + time.Second)
	for {
		m, err := r.nc.Request(subject, frame, time.Until(deadline))
		if errors.Is(err, nats.ErrNoResponders) && time.Until(deadline) > 2*forwardRetry {
			time.Sleep(forwardRetry) // nobody took it: sending it again repeats nothing
			continue
		}
		if err != nil {
			return wire.Record{}, nil, err
		}
		return wire.ParseRouteAck(m.Data)
	}
}

// merge adds another partition's answer to a and resolves its wait.
func (a *pendingAck) merge(r *Router, rec wire.Record, outs []byte) {
	a.mu.Lock()
	a.accepted += rec.Count
	a.void += rec.Void
	a.kept += rec.Kept
	a.positioned += rec.Kept
	for i, o := range outs {
		if i < len(a.pubs) && o > a.pubs[i] {
			a.pubs[i] = o
		}
	}
	a.mu.Unlock()
	a.add(r, rec.Tally)
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

// ackFrame is the ack of a: for another partition's router (route), the
// counts of the frame's sends and each publish's outcome here; for a
// sender, every publish counted once by its outcome over all partitions.
func (a *pendingAck) ackFrame() []byte {
	accepted, void, kept := a.accepted, a.void, a.kept
	if a.route {
		accepted -= uint64(len(a.pubs))
	} else {
		for _, o := range a.pubs {
			switch o {
			case wire.PubVoid:
				void++
			case wire.PubKept:
				kept++
			}
		}
	}
	ack := wire.AppendAck(wire.AppendHeader(make([]byte, 0, 40+len(a.pubs)), wire.KindAck), accepted, void, kept, a.tally)
	if a.route {
		ack = wire.AppendPubOutcomes(ack, a.pubs)
	}
	return ack
}

// ErrUnanswered: a partition's router did not answer for the records
// handed to it; the send is not acked (it may or may not have been
// delivered there).
var ErrUnanswered = errors.New("router: another partition's router did not answer in time; not acked (it may or may not have been delivered)")

// handOver hands a send frame with a frame-id that came on a subject
// every partition's router shares to the partition that owns its sender
// (sender mod n), with the sender's reply subject, if that is not this
// one: copies of a frame sent again then meet the same router, which
// remembers the first. It reports whether it handed the frame over.
func (r *Router) handOver(m *nats.Msg, sender uint64) bool {
	p := r.part
	if p == nil || (m.Subject != wire.SubjectSend && m.Subject != wire.SubjectClient) {
		return false
	}
	owner := int(sender % uint64(p.n))
	if owner == p.k {
		return false
	}
	p.handedOver.Add(1)
	if err := r.nc.PublishRequest(wire.PartSubject(wire.SubjectSend, p.n, owner), m.Reply, m.Data); err != nil {
		r.log.Warn("frame not handed to its sender's partition (the sender gets no ack)", zap.Error(err))
	}
	return true
}
