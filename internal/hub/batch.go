package hub

import (
	"sync"
	"sync/atomic"

	"github.com/cometgw/comet/internal/cursor"
)

// Tally says what became of the copies of messages in a batch.
type Tally struct {
	// Queued copies were written to their session's socket, or are in its
	// bounded pending output.
	Queued uint64 `json:"queued"`
	// Gone copies were for a session that had closed; Slow ones closed
	// their session, which could not take them (Config.MaxPending).
	Gone uint64 `json:"gone"`
	Slow uint64 `json:"slow"`
	// Dup copies were for a position the session already had; Late ones
	// for a session that had finished (a long-poll already answered,
	// whose next poll gets the message from the router's history).
	Dup  uint64 `json:"dup"`
	Late uint64 `json:"late"`
}

func (t *Tally) add(o *Tally) {
	t.Queued += o.Queued
	t.Gone += o.Gone
	t.Slow += o.Slow
	t.Dup += o.Dup
	t.Late += o.Late
}

// Batch is the work of one frame from the router, in order: deliveries
// and resume answers. Messages may alias the frame: the hub does not keep
// them once Done has been called. A Batch is reusable after Done (Reset).
type Batch struct {
	items []item
	conns []uint64 // every item's conns, back to back
	// Done, if set, is called once every item has been applied and the
	// output it made written as far as the sockets took it (the rest is
	// in bounded pending output), with Tally complete. It is called from
	// a writer goroutine and must not block.
	Done func(*Batch)
	// Tally is what became of the batch's copies; read it in Done.
	Tally Tally

	refs   atomic.Int32 // writers still applying the batch
	queued int64        // unix nanos when Submit queued it
	mu     sync.Mutex   // guards Tally while writers add to it
	all    bool         // an item is for every session (DeliverAll)
}

type item struct {
	op     uint8
	event  uint8 // deliver: EventMessage, or the type of an event
	missed bool
	msg    []byte
	pos    cursor.Cursor // deliver: the message's position; resumed: the epoch and the first position to follow
	head   uint64        // resumed: the last position of the catch-up
	c0, c1 int32         // conns[c0:c1]
}

// item operations.
const (
	opDeliver uint8 = iota
	opResumed
	opDeliverAll
	opKick
)

// Reset empties b for reuse (Done stays).
func (b *Batch) Reset() {
	clear(b.items)
	b.items, b.conns, b.Tally, b.all = b.items[:0], b.conns[:0], Tally{}, false
}

// Kick adds the end of the sessions in conns: each writes its last bytes
// (Kind.Shutdown), as at shutdown, and closes (ReasonKicked).
func (b *Batch) Kick(conns []uint64) {
	c0 := len(b.conns)
	b.conns = append(b.conns, conns...)
	b.items = append(b.items, item{op: opKick, c0: int32(c0), c1: int32(len(b.conns))})
}

// DeliverAll adds msg, with no position, for every session open when the
// writers apply it (a broadcast).
func (b *Batch) DeliverAll(msg []byte) {
	b.items = append(b.items, item{op: opDeliverAll, msg: msg})
	b.all = true
}

// Len is the number of items in b.
func (b *Batch) Len() int { return len(b.items) }

// Deliver adds msg, at position pos of its id (zero: none), for every
// session in conns. Resumable sessions take the position as their cursor
// and drop a position they already have.
func (b *Batch) Deliver(msg []byte, pos cursor.Cursor, conns []uint64) {
	c0 := len(b.conns)
	b.conns = append(b.conns, conns...)
	b.items = append(b.items, item{op: opDeliver, msg: msg, pos: pos, c0: int32(c0), c1: int32(len(b.conns))})
}

// DeliverEvent adds msg, an event of type ev (EventPresence) with no
// position, for every session in conns: each kind writes it as its
// clients tell events from messages (Message.Event).
func (b *Batch) DeliverEvent(ev uint8, msg []byte, conns []uint64) {
	c0 := len(b.conns)
	b.conns = append(b.conns, conns...)
	b.items = append(b.items, item{op: opDeliver, event: ev, msg: msg, c0: int32(c0), c1: int32(len(b.conns))})
}

// Resumed adds the router's answer to conn's resume: the messages from
// position seq to head of epoch follow; missed says messages after the
// client's cursor are no longer kept.
func (b *Batch) Resumed(conn, epoch, seq, head uint64, missed bool) {
	c0 := len(b.conns)
	b.conns = append(b.conns, conn)
	b.items = append(b.items, item{op: opResumed, missed: missed, pos: cursor.Cursor{Epoch: epoch, Seq: seq}, head: head,
		c0: int32(c0), c1: int32(len(b.conns))})
}

// copies is the number of message copies in b.
func (b *Batch) copies() uint64 {
	n := 0
	for i := range b.items {
		if b.items[i].op == opDeliver {
			n += int(b.items[i].c1 - b.items[i].c0)
		}
	}
	return uint64(n)
}
