package hub

import (
	"math"
	"math/bits"
	"time"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/latency"
)

// maxRound bounds the batches one writer applies before it writes what
// they made: a round's output for one session goes out in one write. The
// more a writer has fallen behind, the more each write carries (the
// routers' windows bound what can wait).
const maxRound = 1024

// Submit queues b for the writers owning its sessions (a session always
// goes to the same writer, which keeps its order) and returns; b.Done is
// called when they are through. Submit waits while those writers' queues
// are full: a gateway whose writers fall behind stops taking frames from
// the router. After Close, b's copies are counted gone at once.
func (h *Hub) Submit(b *Batch) {
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	w := len(h.queues)
	var mask uint64
	for _, c := range b.conns {
		mask |= 1 << (uint32(c) % uint32(w))
	}
	if b.all {
		mask = 1<<w - 1
	}
	if h.closed || mask == 0 {
		if h.closed {
			b.Tally.Gone += b.copies()
		}
		if b.Done != nil {
			b.Done(b)
		}
		return
	}
	b.refs.Store(int32(bits.OnesCount64(mask)))
	b.queued = time.Now().UnixNano()
	for ; mask != 0; mask &= mask - 1 {
		h.queues[bits.TrailingZeros64(mask)] <- b
	}
}

// Latencies returns the hub's stage histograms: how long batches
// waited in the writers' queues (from Submit to their round); how long
// a round took to apply its batches and write what they made (a write
// a delay holds back is written by a later wake-up, not counted); and
// how long a session's output waited in the gateway, from its oldest
// byte gathered (or left by a full socket) to its last byte written:
// what gathering under the write delay, and a slow reader, add.
func (h *Hub) Latencies() (queueWait, round, outputWait *latency.Histogram) {
	return &h.queueWait, &h.roundTime, &h.outputWait
}

// Deliver queues msg for every session in conns (a batch of one).
func (h *Hub) Deliver(msg []byte, conns []uint64) {
	h.DeliverAt(0, 0, msg, conns)
}

// DeliverAt is Deliver for a message at position (epoch, seq) of its id.
func (h *Hub) DeliverAt(epoch, seq uint64, msg []byte, conns []uint64) {
	b := new(Batch)
	b.Deliver(append([]byte(nil), msg...), cursor.Cursor{Epoch: epoch, Seq: seq}, conns)
	h.Submit(b)
}

// Resumed queues the router's answer to conn's resume (a batch of one).
func (h *Hub) Resumed(conn, epoch, seq, head uint64, missed bool) {
	b := new(Batch)
	b.Resumed(conn, epoch, seq, head, missed)
	h.Submit(b)
}

// coalesceMax is the output a session gathers under a write delay past
// which it is written anyway; lingerBudget bounds the output one writer
// holds back for its delay (past it the delay shrinks).
const (
	coalesceMax  = 2 << 10
	lingerBudget = 8 << 20
)

// Thresholds for the write delay (adapt): of a writer's busy fraction
// over a sweep (the wall time it spent in rounds), of the longest a
// batch waited in its queue, and of the machine's idle CPU, and how many
// sweeps in a row the machine must be saturated.
const (
	busyWriter  = 0.70                  // at or above, with batches waiting: the writer is behind
	behindWait  = 10 * time.Millisecond // a batch waited this long: behind
	queuedWait  = time.Millisecond      // a batch waited this long: something queued
	busyIdle    = 0.10                  // machine idle below: saturated
	freeIdle    = 0.30                  // above (and not behind): free, gather less
	saturatedIn = 8                     // sweeps (2 s) saturated in a row: sustained load, gather more
)

// adapt sets the writer's write delay, once per sweep. A writer that is
// behind, with a batch that waited behindWait in its queue or busy
// busyWriter of the sweep while batches queued, or on a machine whose
// CPUs were idle less than busyIdle for saturatedIn sweeps in a row,
// doubles it (from 1 ms, up to Config.WriteDelay) so that each write
// carries more. One that is not behind on a machine idle more than
// freeIdle, or that holds lingerBudget of output back, halves it (to 0
// below 1 ms); the former, if no batch waited a millisecond, drops it to
// 0 at once. In between it holds.
//
// Behind is the writer's own backlog. Not a batch arriving during a
// round: at a moderate rate one often does, and counting that doubled
// the delay to its 4 s limit under 1,000 messages/s (bench-clients). Not
// one long round with nothing queued behind it either: a broadcast to
// 100,000 streams is one such round, and gathering after it held the
// next broadcast back (p99 3.1 s against the floor's 0.9 s,
// bench-fanout). And the machine's saturation counts only when it lasts:
// a burst of a neighbour's is not a reason to delay this writer's
// sessions, while two seconds of it is the flat-out load where fewer,
// fuller writes are what keeps up (bench-throughput at 100,000 streams:
// 90,000 messages/s without it, 155,000 with it).
func (h *Hub) adapt(sc *scratch, busy float64, owed time.Duration, idle float64) {
	limit := h.cfg.WriteDelay
	behind := owed >= behindWait || busy >= busyWriter && owed >= queuedWait
	if idle < busyIdle {
		sc.saturated++
	} else {
		sc.saturated = 0
	}
	switch {
	case limit <= 0:
		sc.delay = 0
	case sc.lingering >= lingerBudget || !behind && idle > freeIdle:
		if sc.delay /= 2; sc.delay < time.Millisecond || owed < time.Millisecond && sc.lingering < lingerBudget {
			sc.delay = 0
		}
	case behind || sc.saturated >= saturatedIn:
		sc.delay = min(max(2*sc.delay, time.Millisecond), limit)
	}
}

// afterRound counts the time since start (a round's, of batches
// batches) as busy, notes what the writer owed (how long the round's
// oldest batch, queued at queued, unix nanos, 0: none, waited) and, once
// per sweep, adapts the write delay.
func (h *Hub) afterRound(sc *scratch, start time.Time, queued int64, batches int) {
	now := time.Now()
	if sc.since.IsZero() { // the writer's first round
		sc.since, sc.sweep = start, h.sweeps.Load()
	}
	sc.busy += now.Sub(start)
	if batches > 0 { // a round of batches (not a wake-up for delayed writes)
		h.roundTime.Observe(now.Sub(start))
	}
	switch {
	case queued <= 0:
	case batches > 1:
		// A queue: what its oldest waited, for the writer's previous
		// round or for a CPU, is what the writer owes.
		sc.owed = max(sc.owed, time.Duration(start.UnixNano()-queued))
	case queued < sc.lastEnd:
		// One batch: what it waited for the writer's previous round.
		// A lone batch's wait past that round's end is for a CPU
		// (other processes' writers took it), not a backlog.
		sc.owed = max(sc.owed, time.Duration(sc.lastEnd-queued))
	}
	sc.lastEnd = now.UnixNano()
	if e := h.sweeps.Load(); e != sc.sweep {
		if e-sc.sweep > 1 {
			// Whole sweeps without a round: the writer idled, so the
			// machine's saturation did not last through them. adapt
			// runs after rounds only, when the machine is busiest; a
			// broadcast every 2 s to 100,000 streams looked like 16 s
			// of saturation after 8 of them, and the delay that grew
			// held the next broadcasts' copies up to 2 s (bench-fanout
			// p99 1.35-1.50x the floor's).
			sc.saturated = 0
		}
		sc.sweep = e
		if span := now.Sub(sc.since); span > 0 {
			h.adapt(sc, float64(sc.busy)/float64(span), sc.owed, math.Float64frombits(h.idle.Load()))
			if sc.w < len(h.delays) {
				h.delays[sc.w].Store(int64(sc.delay))
			}
		}
		sc.since, sc.busy, sc.owed = now, 0, 0
	}
}

// writer applies the batches of queue w in rounds: every batch waiting,
// up to maxRound, with the output of each session gathered; then one
// write per session that has output (or, under Config.WriteDelay, once
// its delay is over); then the batches are done.
func (h *Hub) writer(w int, q chan *Batch) {
	defer h.workers.Done()
	var m Message
	sc := scratch{deferred: true, w: w}
	round := make([]*Batch, 0, maxRound)
	var wake *time.Timer
	var wakeC <-chan time.Time
	if h.cfg.WriteDelay > 0 { // the wake-ups that write what a delay held back
		wake = time.NewTimer(time.Hour)
		wake.Stop()
		wakeC = wake.C
		defer wake.Stop()
	}
	for {
		var b *Batch
		var ok bool
		select {
		case b, ok = <-q:
			if !ok {
				sc.due = -1
				h.flushDirty(&sc) // what lingers goes out now
				return
			}
		case <-wakeC:
			start := time.Now()
			h.flushDirty(&sc)
			h.afterRound(&sc, start, 0, 0)
			h.rewake(&sc, wake)
			continue
		}
		start := time.Now()
		h.queueWait.Observe(time.Duration(start.UnixNano() - b.queued))
		round = append(round[:0], b)
	more:
		for len(round) < maxRound {
			select {
			case b, ok := <-q:
				if !ok {
					break more
				}
				h.queueWait.Observe(time.Duration(start.UnixNano() - b.queued))
				round = append(round, b)
			default:
				break more
			}
		}
		for _, b := range round {
			h.apply(uint32(w), b, &m, &sc)
		}
		h.flushDirty(&sc)
		h.afterRound(&sc, start, round[0].queued, len(round))
		h.rewake(&sc, wake)
		for i, b := range round {
			if b.refs.Add(-1) == 0 && b.Done != nil {
				b.Done(b)
			}
			round[i] = nil
		}
		sc.trim()
		m.trim()
	}
}

// apply applies the items of b for the sessions writer w owns.
func (h *Hub) apply(w uint32, b *Batch, m *Message, sc *scratch) {
	nw := uint32(len(h.queues))
	var t Tally
	for i := range b.items {
		it := &b.items[i]
		if it.op == opDeliverAll {
			m.reset(it.msg, cursor.Cursor{}, EventMessage)
			h.table.EachFrom(int(w), int(nw), func(sl *slot) { h.deliver(Session{h, sl, sc}, m, &t) })
			continue
		}
		if it.op == opDeliver {
			m.reset(it.msg, it.pos, it.event)
		}
		for _, c := range b.conns[it.c0:it.c1] {
			if uint32(c)%nw != w {
				continue
			}
			sl := h.table.LookupKey(c)
			if sl == nil {
				if it.op == opDeliver {
					t.Gone++
				}
				h.stale.Add(1)
				continue
			}
			s := Session{h, sl, sc}
			switch it.op {
			case opResumed:
				h.resumed(s, it)
			case opKick:
				h.finish(sl, sc, ReasonKicked)
			default:
				h.deliver(s, m, &t)
			}
			sl.Unlock()
		}
	}
	h.messages.Add(t.Queued)
	b.mu.Lock()
	b.Tally.add(&t)
	b.mu.Unlock()
	h.tally.Lock()
	h.copies.add(&t)
	h.tally.Unlock()
}

// deliver hands one message to s's kind and tallies the copy.
func (h *Hub) deliver(s Session, m *Message, t *Tally) {
	v := &s.sl.V
	if v.flags&flagFinished != 0 {
		h.late.Add(1)
		t.Late++
		return
	}
	if h.traits[v.kind].Resumable && m.Pos.Epoch != 0 {
		if v.flags&flagResumed == 0 {
			// Before the router's answer to the resume: a router that
			// logged the session in without answering (a leader whose
			// lease was in doubt, a standby that took over since) will
			// answer it, from the client's own cursor, with everything
			// routed until then, this copy included. Taking it now would
			// move the cursor past the copies routed before it and leave
			// them out of that answer.
			h.late.Add(1)
			t.Late++
			return
		}
		if m.Pos.Epoch == v.epoch && m.Pos.Seq <= v.n {
			h.dups.Add(1)
			t.Dup++
			return
		}
		v.epoch, v.n = m.Pos.Epoch, m.Pos.Seq
	}
	s.sc.why = ReasonPeer
	if !h.kinds[v.kind].Deliver(s, m) {
		if s.sc.why == ReasonSlow {
			t.Slow++
		} else {
			t.Gone++
		}
		return
	}
	t.Queued++ // and in h.messages once per batch: one shared counter less per copy
	if o := v.out; o != nil && v.flags&flagHeld == 0 {
		o.ends = append(o.ends, int32(len(o.b))) // where this message ends in the pending output
	}
}

// resumed applies the router's answer to s's resume.
func (h *Hub) resumed(s Session, it *item) {
	v := &s.sl.V
	if !h.traits[v.kind].Resumable {
		return
	}
	if it.pos.Epoch != v.epoch || it.pos.Seq-1 > v.n || it.missed {
		v.epoch, v.n = it.pos.Epoch, it.pos.Seq-1
	}
	v.head = it.head
	v.flags |= flagResumed
	if it.missed {
		v.flags |= flagMissed
	}
	h.kinds[v.kind].Resumed(s)
}

// rewake sets the writer's timer for the earliest held session (soon, if
// the delay fell to 0 and some are still held).
func (h *Hub) rewake(sc *scratch, wake *time.Timer) {
	if wake == nil {
		return
	}
	at, ok := sc.held.next()
	if !ok {
		return
	}
	wait := time.Until(time.Unix(0, at))
	if sc.delay == 0 {
		wait = 0
	}
	wake.Reset(max(wait, time.Millisecond))
}

// spread is a session's share of the write delay: from half of it to all
// of it, fixed per connection, so that sessions written in the same round
// do not stay in step (all due at once, then none).
func spread(delay int64, key uint64) int64 {
	return delay/2 + delay/2*int64((key*0x9E3779B97F4A7C15)>>54)/1024
}

// flushDirty writes the output the round gathered, one write per session;
// under a write delay (adapt), a session written less than its share of
// the delay ago is held in sc.held until it is due. Then it writes the
// held sessions that are due, all of them once the delay is 0 or the
// writer stops.
func (h *Hub) flushDirty(sc *scratch) {
	sc.deferred = false
	now := time.Now().UnixNano()
	h.clock.Store(now)
	delay := int64(sc.delay)
	for _, key := range sc.dirty {
		sl := h.table.LookupKey(key)
		if sl == nil {
			continue
		}
		v := &sl.V
		if at := v.clock + spread(delay, key); delay > 0 && sc.due >= 0 && v.out != nil && at > now && v.flags&flagFinished == 0 {
			sc.held.push(at, key, len(v.out.b))
		} else {
			v.flags &^= flagDirty
			h.flush(sl, sc)
		}
		sl.Unlock()
	}
	sc.dirty = sc.dirty[:0]
	for {
		at, ok := sc.held.next()
		if !ok || at > now && delay > 0 && sc.due >= 0 {
			break
		}
		d := sc.held.pop()
		if sl := h.table.LookupKey(d.key); sl != nil {
			sl.V.flags &^= flagDirty
			h.flush(sl, sc)
			sl.Unlock()
		}
	}
	sc.lingering = sc.held.bytes
	sc.deferred = true
}
