package router

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/request"
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

// partition is a partitioned router's share of the ids and its way to
// the other partitions. Its methods are safe on a nil *partition (an
// unpartitioned router, which serves every id).
type partition struct {
	n, k         int
	route        []string      // the route subject of each partition
	watchSubject string        // where the partitions' watch lists go
	slots        chan struct{} // forwarded frames waiting for their answer
	nc           *nats.Conn
	req          *request.Client // the hand-overs' requests
	fl           *flows
	log          *zap.Logger
	// Frames handed to other partitions, those that got no answer (not
	// acked), records of another partition's ids on the route subject
	// (not routed, not acked).
	forwarded, unanswered, foreign atomic.Uint64
	// handedOver: frames with a frame-id handed whole to their sender's
	// partition (handOver).
	handedOver atomic.Uint64
}

// newPartition is partition k of n (nil for one partition).
func newPartition(n, k int) *partition {
	if n <= 1 {
		return nil
	}
	p := &partition{n: n, k: k, route: make([]string, n), slots: make(chan struct{}, maxForwards), watchSubject: wire.SubjectWatch + "." + strconv.Itoa(n)}
	for i := range p.route {
		p.route[i] = wire.PartSubject(wire.SubjectRoute, n, i)
	}
	return p
}

// start readies the hand-overs: a frame no router of its partition takes
// (none leads it at the moment: a redundant takeover) is sent again
// within the time any router answers in.
func (p *partition) start(nc *nats.Conn, fl *flows, answerIn time.Duration, log *zap.Logger) error {
	if p == nil {
		return nil
	}
	p.nc, p.fl, p.log = nc, fl, log
	var err error
	p.req, err = request.New(nc, request.Config{Max: maxForwards, Timeout: answerIn})
	return err
}

// close stops the hand-overs (what waits ends unanswered).
func (p *partition) close() {
	if p != nil && p.req != nil {
		p.req.Close()
	}
}

// of returns id's partition.
func (p *partition) of(id int64) int { return wire.Partition(id, p.n) }

// owns reports whether the router serves id (always, unpartitioned).
func (p *partition) owns(id int64) bool { return p == nil || p.of(id) == p.k }

// other returns the partition that serves id, if not this one.
func (p *partition) other(id int64) (int, bool) {
	if p == nil {
		return 0, false
	}
	k := p.of(id)
	return k, k != p.k
}

// upSubject is where the gateways send this router's ids' up frames, and
// stray where this router hears those sent where it does not read them.
func (p *partition) upSubjects() (up, stray string) {
	if p == nil {
		return wire.SubjectUp, wire.SubjectUp + ".>"
	}
	return wire.PartSubject(wire.SubjectUp, p.n, p.k), wire.SubjectUp
}

// appendResync appends the ask for a gateway's logins (this partition's
// only).
func (p *partition) appendResync(frame []byte) []byte {
	if p == nil {
		return wire.AppendResync(frame)
	}
	return wire.AppendResyncPart(frame, p.k)
}

// misdirected says which partition serves id, if not this one.
func (p *partition) misdirected(id int64) (string, bool) {
	k, other := p.other(id)
	if !other {
		return "", false
	}
	return fmt.Sprintf("id %d is in partition %d of %d; this router serves partition %d: ask a router of partition %d", id, k, p.n, p.k, k), true
}

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

func (p *partition) stats() *PartitionStats {
	if p == nil {
		return nil
	}
	return &PartitionStats{Partitions: p.n, Partition: p.k, Forwarded: p.forwarded.Load(), Unanswered: p.unanswered.Load(),
		Waiting: len(p.slots), Foreign: p.foreign.Load(), HandedOver: p.handedOver.Load()}
}

// forwardTo hands frame to partition k's router and adds its answer to
// ack. It waits while maxForwards frames wait for theirs.
func (p *partition) forwardTo(k int, frame []byte, ack *pendingAck) {
	p.slots <- struct{}{}
	ack.mu.Lock()
	ack.waiting++
	ack.mu.Unlock()
	p.forwarded.Add(1)
	err := p.req.Send(p.route[k], append([]byte(nil), frame...), func(answer []byte, err error) {
		defer func() { <-p.slots }()
		var rec wire.Record
		var outs []byte
		if err == nil {
			rec, outs, err = wire.ParseRouteAck(answer)
		}
		if err != nil {
			p.failed(k, ack, err)
			return
		}
		ack.merge(p.fl, rec, outs)
	})
	if err != nil {
		<-p.slots
		p.failed(k, ack, err)
	}
}

// failed resolves a hand-over to partition k that got no answer: the
// sender gets no ack.
func (p *partition) failed(k int, ack *pendingAck, err error) {
	p.unanswered.Add(1)
	p.log.Warn("a partition's router did not answer a frame handed to it: not acked", zap.Int("partition", k), zap.Error(err))
	ack.mu.Lock()
	ack.unanswered = true
	ack.mu.Unlock()
	ack.add(p.fl, wire.Tally{})
}

// merge adds another partition's answer to a and resolves its wait.
func (a *pendingAck) merge(fl *flows, rec wire.Record, outs []byte) {
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
	a.add(fl, rec.Tally)
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
func (p *partition) handOver(m *nats.Msg, sender uint64) bool {
	if p == nil || (m.Subject != wire.SubjectSend && m.Subject != wire.SubjectClient) {
		return false
	}
	owner := int(sender % uint64(p.n))
	if owner == p.k {
		return false
	}
	p.handedOver.Add(1)
	if err := p.nc.PublishRequest(wire.PartSubject(wire.SubjectSend, p.n, owner), m.Reply, m.Data); err != nil {
		p.log.Warn("frame not handed to its sender's partition (the sender gets no ack)", zap.Error(err))
	}
	return true
}
