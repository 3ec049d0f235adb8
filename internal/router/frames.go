package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometgw/comet/internal/wire"
)

// Sending a frame again (docs/PROTOCOL.md): a sender whose frame starts
// with a frame-id may send it again when no ack came (its NATS server
// went away with the frame or the ack, the lead moved). The router
// remembers every such frame it took for wire.FrameWindow, at most
// maxFrames of them, and answers a copy instead of routing it twice: with
// the first's ack once it is known, or when it is (the copy waits with
// it). A redundant leader writes each frame's id to the history log with
// its positions, so a standby that takes over knows the frames the old
// leader routed, and answers a copy of one with a retaken ack (its sends
// counted, what became of their copies unknown).

// maxFrames bounds the frames remembered; past it the oldest is forgotten
// early (counted: a copy of it sent later would be routed again).
const maxFrames = 100_000

type frameKey struct{ sender, n uint64 }

// frameEntry is one frame taken: routing (ack set), answered (answer
// set), routed by an earlier leader (retaken), or routed but never
// answered (failed: its positions were not logged, or a partition did
// not answer; copies get no answer either).
type frameEntry struct {
	at      time.Time
	ack     *pendingAck // routing: its copies wait in ack.copies
	answer  []byte
	sends   uint64 // retaken: the frame's sends
	retaken bool
	failed  bool
}

type frameTable struct {
	mu    sync.Mutex
	m     map[frameKey]*frameEntry
	order []frameKey // oldest first, from head
	head  int

	// Copies answered (with the first's ack, or retaken), copies that
	// waited for the first's ack, copies of a frame never answered,
	// frames forgotten before the window (the table full).
	answered, waited, unanswerable, forgotten atomic.Uint64
}

func newFrameTable() *frameTable { return &frameTable{m: make(map[frameKey]*frameEntry)} }

// expire forgets frames past the window, and the oldest while full. mu
// must be held.
func (t *frameTable) expire(now time.Time) {
	for t.head < len(t.order) {
		k := t.order[t.head]
		e := t.m[k]
		full := len(t.m) >= maxFrames
		if e != nil && !full && now.Sub(e.at) < wire.FrameWindow {
			break
		}
		if e != nil {
			if full {
				t.forgotten.Add(1)
			}
			delete(t.m, k)
		}
		t.head++
	}
	if t.head > 1024 && t.head*2 > len(t.order) {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

// add remembers k (mu held).
func (t *frameTable) add(k frameKey, e *frameEntry) {
	t.expire(time.Now())
	t.m[k] = e
	t.order = append(t.order, k)
}

// take is called for a frame with a frame-id: true if it is new (ack
// routes it, and its answer is remembered); false if a copy of it was
// taken already: reply is answered now, or with the first's ack.
func (t *frameTable) take(fl *flows, k frameKey, ack *pendingAck, reply string) bool {
	t.mu.Lock()
	e := t.m[k]
	if e == nil {
		ack.frame, ack.framed = k, true
		t.add(k, &frameEntry{at: time.Now(), ack: ack})
		t.mu.Unlock()
		return true
	}
	var answer []byte
	switch {
	case e.answer != nil:
		answer = e.answer
	case e.retaken:
		answer = wire.AppendRetaken(wire.AppendAck(wire.AppendHeader(nil, wire.KindAck), e.sends, 0, 0, wire.Tally{}))
	case e.failed:
		t.unanswerable.Add(1)
	default:
		// Kept with the ack, not the entry: an entry forgotten while
		// its frame routes still has its copies answered.
		e.ack.copies = append(e.ack.copies, reply)
		t.waited.Add(1)
	}
	t.mu.Unlock()
	if answer != nil && reply != "" {
		t.answered.Add(1)
		fl.ack(reply, answer)
	}
	return false
}

// done records the answer of a's frame (nil: it gets none) and returns
// the copies waiting for it.
func (t *frameTable) done(a *pendingAck, answer []byte) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[a.frame]; e != nil && e.ack == a { // else forgotten meanwhile
		e.ack, e.answer, e.failed = nil, answer, answer == nil
	}
	copies := a.copies
	a.copies = nil
	return copies
}

// retaken remembers frame k, routed by the leader whose log this router
// applies at at (the log message's time), with sends sends.
func (t *frameTable) retaken(k frameKey, sends uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[k] == nil {
		t.add(k, &frameEntry{at: at, retaken: true, sends: sends})
	}
}

func (t *frameTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// FrameStats: frames with a frame-id remembered now, and what became of
// copies sent again (docs/PROTOCOL.md, "Sending a frame again").
type FrameStats struct {
	Remembered   int    `json:"remembered"`
	Answered     uint64 `json:"answered"`
	Waited       uint64 `json:"waited"`
	Unanswerable uint64 `json:"unanswerable"`
	Forgotten    uint64 `json:"forgotten"`
}

func (t *frameTable) stats() FrameStats {
	return FrameStats{Remembered: t.len(), Answered: t.answered.Load(), Waited: t.waited.Load(),
		Unanswerable: t.unanswerable.Load(), Forgotten: t.forgotten.Load()}
}

// retakenAt applies the history log's frame records of a message
// stored at at (a standby's): remembered until the window after at, and
// not at all if it has passed (a router that starts replays the log from
// its start).
func (t *frameTable) retakenAt(at time.Time) func(sender, n, sends uint64) {
	return func(sender, n, sends uint64) {
		if time.Since(at) < wire.FrameWindow {
			t.retaken(frameKey{sender, n}, sends, at)
		}
	}
}
