package router

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/wire"
)

// Flow control (docs/PROTOCOL.md, "Flow control"): every down frame this
// router sends a gateway is a flight until the gateway's done record for
// it comes back, which the gateway sends once its writers have written
// the frame's copies or queued them in bounded per-client output. The
// bytes in flight to one gateway are its window; a send waits while the
// window of a gateway it goes to is full, so a gateway that cannot keep
// up slows the router, and, since a sender's ack waits for the done
// records of its copies, the senders. Flights are resolved by their done
// record, by the gateway being forgotten, or after Config.DeliverTimeout.

// flight is one down frame in flight to a gateway.
type flight struct {
	bytes  int64
	copies uint64      // message copies in the frame
	ack    *pendingAck // the send frame the copies came from; nil for a resume's catch-up
	at     int64       // unix nanos when it was published
}

// pendingAck is a send frame (or an HTTP send) waiting for the fate of its
// copies.
type pendingAck struct {
	mu                   sync.Mutex
	waiting              int // flights unresolved, plus one while the frame is being routed
	accepted, void, kept uint64
	tally                wire.Tally
	reply                string        // NATS reply subject of the ack
	done                 chan struct{} // closed when complete (HTTP sends)
	// unlogged: the positions it gave could not be written to the
	// history log (a redundant router that lost the lead): no ack.
	unlogged bool
	// positioned: sends given a position in their id's history.
	positioned uint64
	// A partitioned router: route says the frame came from another
	// partition's router (answered with the publishes' outcomes); pubs
	// is each publish's outcome (wire.PubVoid...), the most any
	// partition reported; unanswered, that a partition did not answer
	// for the records handed to it: no ack.
	route      bool
	pubs       []byte
	unanswered bool
	// framed: the frame had a frame-id (frame); its answer is
	// remembered for copies sent again, and copies sent while it routes
	// wait here for it (frameTable.mu guards copies).
	frame  frameKey
	framed bool
	copies []string
}

// ErrOverloaded is returned by Send when the gateways' windows stay full
// for Config.OverloadWait: the send was not routed.
var ErrOverloaded = errors.New("router: overloaded: the gateways' windows stayed full; retry")

// flows is the router's flow control and acks: the window of every
// gateway (its lock guards the flow fields of every peer), the flights in
// them, and the answers of the send frames whose copies they carry.
type flows struct {
	gws         *gateways
	frames      *frameTable
	nc          *nats.Conn
	log         *zap.Logger
	c           *counters
	window      int64
	doneSubject string

	mu      sync.Mutex
	room    *sync.Cond // broadcast when a window has room again, or a gateway is gone
	closing bool

	// acksPending: send frames routed whose ack has not gone out.
	acksPending atomic.Int64
}

func newFlows(gws *gateways, frames *frameTable, c *counters, window int64, doneSubject string, log *zap.Logger) *flows {
	fl := &flows{gws: gws, frames: frames, c: c, window: window, doneSubject: doneSubject, log: log}
	fl.room = sync.NewCond(&fl.mu)
	return fl
}

// close makes every send waiting for a window give up; their copies
// are counted lost with the gateway.
func (fl *flows) close() {
	fl.mu.Lock()
	fl.closing = true
	fl.room.Broadcast()
	fl.mu.Unlock()
}

// closed reports whether close has been called.
func (fl *flows) closed() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.closing
}

// send publishes down frame f (made with wire.AppendDownHeader(seq)) to
// gw as a flight carrying copies for ack. With wait it first waits while
// gw's window is full. The flight is resolved as lost with the gateway if
// gw has been forgotten or the publish fails.
func (fl *flows) send(gw *peer, seq uint64, f []byte, copies uint64, ack *pendingAck, wait bool) {
	fl.mu.Lock()
	waited := false
	for wait && gw.inflight >= fl.window && !gw.gone && !fl.closing {
		waited = true
		fl.room.Wait()
	}
	if waited {
		fl.c.waits.Add(1)
	}
	if gw.gone || fl.closing {
		fl.mu.Unlock()
		fl.lostCopies(ack, copies)
		return
	}
	gw.flights[seq] = flight{bytes: int64(len(f)), copies: copies, ack: ack, at: time.Now().UnixNano()}
	gw.inflight += int64(len(f))
	if ack != nil {
		ack.mu.Lock()
		ack.waiting++
		ack.mu.Unlock()
	}
	fl.mu.Unlock()
	fl.c.routed.Add(copies)
	if err := fl.nc.PublishRequest(gw.subject, fl.doneSubject, f); err != nil {
		fl.log.Warn("deliver failed", zap.String("gateway", gw.name), zap.Error(err))
		fl.resolve(gw, seq, nil)
	}
}

// waitRoom waits until no gateway's window is full, or until deadline; it
// reports whether there is room.
func (fl *flows) waitRoom(deadline time.Time) bool {
	t := time.AfterFunc(time.Until(deadline), func() {
		fl.mu.Lock()
		fl.room.Broadcast()
		fl.mu.Unlock()
	})
	defer t.Stop()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for {
		full := false
		fl.gws.each(func(gw *peer) bool {
			full = gw.inflight >= fl.window && !gw.gone
			return !full
		})
		if !full {
			return true
		}
		if fl.closing || !time.Now().Before(deadline) {
			return false
		}
		fl.room.Wait()
	}
}

// resolve ends gw's flight seq: with the gateway's tally, or, when t is
// nil, as lost with the gateway.
func (fl *flows) resolve(gw *peer, seq uint64, t *wire.Tally) {
	fl.mu.Lock()
	f, ok := gw.flights[seq]
	if ok {
		delete(gw.flights, seq)
		gw.inflight -= f.bytes
		fl.room.Broadcast()
	}
	switch {
	case gw.suspect == 0:
	case !ok && seq >= gw.suspect:
		gw.suspect = 0 // the frames failed at the deliver timeout came late: slow, not lost
	case ok && seq > gw.suspect:
		gw.suspect, gw.lost = 0, true // a later frame came first: the failed one was lost
	}
	fl.mu.Unlock()
	if !ok {
		fl.c.unknownDone.Add(1)
		return
	}
	if t == nil {
		fl.lostCopies(f.ack, f.copies)
		return
	}
	fl.c.confirm.Observe(time.Duration(time.Now().UnixNano() - f.at))
	fl.confirmed(f.ack, *t)
}

// forget marks gw gone and resolves its flights as lost.
func (fl *flows) forget(gw *peer) {
	fl.mu.Lock()
	gw.gone = true
	fl.mu.Unlock()
	fl.failFlights(gw, 0)
}

// failFlights resolves every flight of gw as lost (gw is forgotten, or
// the router closes), or only those published before the deadline, and
// returns how many it resolved.
func (fl *flows) failFlights(gw *peer, before int64) int {
	var lost []flight
	fl.mu.Lock()
	for seq, f := range gw.flights {
		if before == 0 || f.at < before {
			lost = append(lost, f)
			delete(gw.flights, seq)
			gw.inflight -= f.bytes
			if before != 0 {
				gw.suspect = max(gw.suspect, seq)
			}
		}
	}
	if len(lost) > 0 || before == 0 {
		fl.room.Broadcast()
	}
	fl.mu.Unlock()
	for _, f := range lost {
		fl.lostCopies(f.ack, f.copies)
	}
	return len(lost)
}

// takeLost reports, once, that a frame failed at the deliver timeout was
// lost rather than slow: a later frame of gw was confirmed before it.
func (fl *flows) takeLost(gw *peer) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	lost := gw.lost
	gw.lost = false
	return lost
}

// confirmed counts a gateway's tally of one flight and adds it to its
// send's ack: positions the client had (dup) and copies for a long-poll
// answered meanwhile (late, kept for its next poll) count as delivered.
func (fl *flows) confirmed(ack *pendingAck, t wire.Tally) {
	c := fl.c
	c.delivered.Add(t.Delivered + t.Dup + t.Late)
	c.dups.Add(t.Dup)
	c.late.Add(t.Late)
	c.droppedGone.Add(t.Gone)
	c.droppedSlow.Add(t.Slow)
	if ack == nil {
		return
	}
	t.Delivered += t.Dup + t.Late
	t.Dup, t.Late = 0, 0
	ack.add(fl, t)
}

// lostCopies counts copies lost with their gateway (forgotten, publish
// failed, or no done record within Config.DeliverTimeout).
func (fl *flows) lostCopies(ack *pendingAck, copies uint64) {
	fl.c.droppedGateway.Add(copies)
	if ack != nil {
		ack.add(fl, wire.Tally{Gateway: copies})
	}
}

// note adds t to a.
func (a *pendingAck) note(t wire.Tally) {
	a.mu.Lock()
	a.tally.Add(t)
	a.mu.Unlock()
}

// add adds t to a and resolves one of its flights.
func (a *pendingAck) add(fl *flows, t wire.Tally) {
	a.mu.Lock()
	a.tally.Add(t)
	a.waiting--
	done := a.waiting == 0
	a.mu.Unlock()
	if done {
		fl.complete(a)
	}
}

// awaited reports whether someone waits for a's answer (a NATS sender or
// an HTTP send): routeFrame counts it in flows.acksPending until
// complete.
func (a *pendingAck) awaited() bool { return a.reply != "" || a.done != nil }

// routed marks a's send frame as routed: its flights are all published.
func (a *pendingAck) routed(fl *flows) { a.add(fl, wire.Tally{}) }

// complete answers the sender.
func (fl *flows) complete(a *pendingAck) {
	if a.awaited() {
		fl.acksPending.Add(-1)
	}
	if a.done != nil {
		close(a.done)
	}
	answerable := !a.unlogged && !a.unanswered
	var answer []byte
	if answerable && (a.reply != "" || a.framed) {
		answer = a.ackFrame()
	}
	var copies []string
	if a.framed {
		copies = fl.frames.done(a, answer)
	}
	if !answerable {
		return
	}
	fl.ack(a.reply, answer)
	for _, reply := range copies {
		fl.ack(reply, answer)
	}
}

// ack publishes a send frame's answer to reply (none if "").
func (fl *flows) ack(reply string, answer []byte) {
	if reply == "" {
		return
	}
	if err := fl.nc.Publish(reply, answer); err != nil {
		fl.log.Warn("ack failed", zap.Error(err))
	}
}

// notTaken answers a send frame this router does not route (it does not
// lead) as NATS answers one nobody subscribes to (request.NotTaken), so
// the sender sends it again at once instead of waiting for its ack
// timeout.
func (fl *flows) notTaken(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	fl.nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{wire.StatusHeader: []string{wire.StatusNotTaken}}})
}

// handleDone applies a gateway's done records.
func (fl *flows) handleDone(m *nats.Msg) {
	if len(m.Data) == 0 && m.Header.Get(wire.StatusHeader) == wire.StatusNotTaken {
		// NATS's "no responders" to a down frame: its gateway had no
		// subscription (its connection gone). Which gateway it was is
		// not said; its flights are settled when it is forgotten or
		// at the deliver timeout.
		fl.c.unheard.Add(1)
		return
	}
	var d wire.Decoder
	h, err := d.Reset(m.Data)
	if err == nil && h.Kind != wire.KindDone {
		err = errors.New("router: not a done frame")
	}
	if err != nil {
		fl.c.badFrames.Add(1)
		fl.log.Warn("bad done frame", zap.Error(err))
		return
	}
	gw := fl.gws.named(h.Gateway)
	if gw == nil || gw.instance != h.Instance {
		fl.c.unknownDone.Add(1) // an instance this router forgot: its flights were counted lost
		return
	}
	var rec wire.Record
	for d.Next(&rec) {
		t := rec.Tally
		fl.resolve(gw, rec.Seq, &t)
	}
	if err := d.Err(); err != nil {
		fl.c.badFrames.Add(1)
		fl.log.Warn("bad done frame", zap.String("gateway", gw.name), zap.Error(err))
	}
}

// inflightBytes is the bytes in flight to every gateway.
func (fl *flows) inflightBytes() int64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var n int64
	fl.gws.each(func(gw *peer) bool {
		n += gw.inflight
		return true
	})
	return n
}
