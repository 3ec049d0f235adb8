// Package subs keeps the subscriptions the system stores for ids: id 123
// subscribed to topic lobby gets what is published to lobby on every
// connection it opens, on any gateway, whether it was online when it
// subscribed or not.
//
// They live in a JetStream stream (Stream, on the NATS the routers
// already use): each message a batch of subscribe and unsubscribe records
// (Encoder). Every router replays the stream when it starts and follows
// it (Follow), applying the records to its Index in stream order, so
// every router has the same subscriptions and they survive any router's
// restart. docs/PROTOCOL.md ("Stored subscriptions") has the format.
package subs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cometgw/comet/internal/wire"
)

// Record operations.
const (
	OpSubscribe   byte = 1
	OpUnsubscribe byte = 2
)

// Version is the batch format's version, its first byte.
const Version = 1

// MaxBatch bounds a batch message (NATS's default max payload is 1 MiB).
const MaxBatch = 512 << 10

// ErrFormat is a malformed batch.
var ErrFormat = errors.New("subs: malformed batch")

// AppendRecord appends one record to a batch (start a batch with
// []byte{Version}).
func AppendRecord(b []byte, op byte, id int64, topic string) []byte {
	b = binary.AppendVarint(append(b, op), id)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	return append(b, topic...)
}

// Decode calls fn for each record of batch, in order; topic aliases
// batch. It stops at the first malformed record (an unknown op, a bad id
// or topic) and returns an error saying where; the records before it were
// applied.
func Decode(batch []byte, fn func(op byte, id int64, topic []byte)) error {
	if len(batch) == 0 || batch[0] != Version {
		return fmt.Errorf("%w: version %v", ErrFormat, batch[:min(len(batch), 1)])
	}
	off := 1
	for off < len(batch) {
		op := batch[off]
		if op != OpSubscribe && op != OpUnsubscribe {
			return fmt.Errorf("%w: op %d at byte %d", ErrFormat, op, off)
		}
		off++
		id, n := binary.Varint(batch[off:])
		if n <= 0 {
			return fmt.Errorf("%w: id at byte %d", ErrFormat, off)
		}
		off += n
		l, n := binary.Uvarint(batch[off:])
		if n <= 0 || l > wire.MaxTopic || uint64(len(batch)-off-n) < l {
			return fmt.Errorf("%w: topic length at byte %d", ErrFormat, off)
		}
		off += n
		topic := batch[off : off+int(l)]
		if !wire.ValidTopic(topic) {
			return fmt.Errorf("%w: topic %q at byte %d", ErrFormat, topic, off)
		}
		off += int(l)
		fn(op, id, topic)
	}
	return nil
}

// Index is every stored subscription, by topic and by id. What one costs
// here: its id in its topic's list (8 bytes) and its topic in its id's
// list (8 bytes), with the lists trimmed as they grow (Compact after a
// bulk load gives the slack back).
type Index struct {
	mu     sync.RWMutex
	topics map[string]*topic
	ids    map[int64][]*topic
	n      int

	// Watch's: which topics' changes to report, and where.
	watched func(topic string) bool
	changed func(op byte, id int64, topic string)
	pending []change // under mu, reported once it is released
	// keep, if set, says which ids the index holds (a partitioned
	// router's share); records of other ids are skipped.
	keep func(id int64) bool
}

// Only makes the index hold the subscriptions of the ids keep says yes
// to, and skip the others' records. Call it before applying anything.
func (x *Index) Only(keep func(id int64) bool) { x.keep = keep }

type change struct {
	op    byte
	id    int64
	topic string
}

// Watch makes every applied record that changes a subscription to a topic
// watched says yes to (it must not block or take the index's lock) be
// reported to changed, with no lock held, after its batch is applied
// (presence events of subscribed ids). Call it before applying anything.
func (x *Index) Watch(watched func(topic string) bool, changed func(op byte, id int64, topic string)) {
	x.watched, x.changed = watched, changed
}

// takePending returns what the last apply changed in watched topics.
// x.mu must be held.
func (x *Index) takePending() []change {
	p := x.pending
	x.pending = nil
	return p
}

// report tells changed of p (takePending's). x.mu must not be held.
func (x *Index) report(p []change) {
	for _, c := range p {
		x.changed(c.op, c.id, c.topic)
	}
}

// note records a change for report if its topic is watched. x.mu is held.
func (x *Index) note(op byte, id int64, t *topic) {
	if x.watched != nil && x.watched(t.name) {
		x.pending = append(x.pending, change{op, id, t.name})
	}
}

type topic struct {
	name string
	ids  []int64 // unordered
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{topics: make(map[string]*topic), ids: make(map[int64][]*topic)}
}

// Apply applies one record.
func (x *Index) Apply(op byte, id int64, name []byte) {
	x.mu.Lock()
	x.apply(op, id, name)
	p := x.takePending()
	x.mu.Unlock()
	x.report(p)
}

// ApplyBatch applies a batch under one lock (Decode's rules).
func (x *Index) ApplyBatch(batch []byte) error {
	x.mu.Lock()
	err := Decode(batch, x.apply)
	p := x.takePending()
	x.mu.Unlock()
	x.report(p)
	return err
}

func (x *Index) apply(op byte, id int64, name []byte) {
	if x.keep != nil && !x.keep(id) {
		return
	}
	t := x.topics[string(name)]
	ts := x.ids[id]
	if op == OpSubscribe {
		if t != nil && slices.Contains(ts, t) {
			return
		}
		if t == nil {
			t = &topic{name: string(name)}
			x.topics[t.name] = t
		}
		t.ids = append(t.ids, id)
		x.ids[id] = append(ts, t)
		x.n++
		x.note(op, id, t)
		return
	}
	if t == nil {
		return
	}
	i := slices.Index(ts, t)
	if i < 0 {
		return
	}
	ts = slices.Delete(ts, i, i+1)
	if len(ts) == 0 {
		delete(x.ids, id)
	} else {
		x.ids[id] = ts
	}
	if j := slices.Index(t.ids, id); j >= 0 {
		t.ids[j] = t.ids[len(t.ids)-1]
		t.ids = t.ids[:len(t.ids)-1]
	}
	if len(t.ids) == 0 {
		delete(x.topics, t.name)
	}
	x.n--
	x.note(op, id, t)
}

// Subscribers calls fn, under the index's read lock, with topic's
// interned name and its subscribed ids (not to be kept); not at all if
// nobody is subscribed.
func (x *Index) Subscribers(name []byte, fn func(name string, ids []int64)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if t := x.topics[string(name)]; t != nil {
		fn(t.name, t.ids)
	}
}

// Topics appends the topics id is subscribed to to dst.
func (x *Index) Topics(id int64, dst []string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, t := range x.ids[id] {
		dst = append(dst, t.name)
	}
	return dst
}

// Reset forgets every subscription (a follower starting over from a
// compaction's snapshot), reporting each in a watched topic as
// unsubscribed; the snapshot subscribes them again.
func (x *Index) Reset() {
	x.mu.Lock()
	for _, t := range x.topics {
		for _, id := range t.ids {
			x.note(OpUnsubscribe, id, t)
		}
	}
	clear(x.topics)
	clear(x.ids)
	x.n = 0
	p := x.takePending()
	x.mu.Unlock()
	x.report(p)
}

// SnapshotBytes is about what a compaction's snapshot of x stores.
func (x *Index) SnapshotBytes() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var n uint64
	for _, t := range x.topics {
		n += uint64(len(t.ids)) * uint64(len(t.name)+8) // op, varint id (up to 10), length, topic
	}
	return n
}

// snapshot is every subscription as subscribe batches.
func (x *Index) snapshot() [][]byte {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out [][]byte
	var bt Batcher
	for _, t := range x.topics {
		for _, id := range t.ids {
			if full := bt.Add(OpSubscribe, id, t.name); full != nil {
				out = append(out, full)
			}
		}
	}
	if b := bt.Flush(); b != nil {
		out = append(out, b)
	}
	return out
}

// Compact trims every list to its length (after a bulk load).
func (x *Index) Compact() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range x.topics {
		if cap(t.ids) > len(t.ids) {
			t.ids = slices.Clone(t.ids)
		}
	}
	for id, ts := range x.ids {
		if cap(ts) > len(ts) {
			x.ids[id] = slices.Clone(ts)
		}
	}
}

// Stats counts the index.
type Stats struct {
	Subscriptions int `json:"subscriptions"`
	Topics        int `json:"topics"`
	IDs           int `json:"ids"`
}

// Stats returns the index's counts.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Subscriptions: x.n, Topics: len(x.topics), IDs: len(x.ids)}
}

// Batcher packs records into batches of at most MaxBatch bytes.
type Batcher struct {
	b []byte
	n int // records in b
}

// Add adds a record; it returns a full batch to store (valid until the
// next call), or nil.
func (bt *Batcher) Add(op byte, id int64, topic string) []byte {
	var full []byte
	if len(bt.b)+len(topic)+16 > MaxBatch && bt.n > 0 {
		full = bt.Flush()
	}
	if len(bt.b) == 0 {
		bt.b = append(bt.b[:0], Version)
	}
	bt.b = AppendRecord(bt.b, op, id, topic)
	bt.n++
	return full
}

// Flush returns the batch being filled (nil if empty) and starts another.
func (bt *Batcher) Flush() []byte {
	if bt.n == 0 {
		return nil
	}
	out := bt.b
	bt.b, bt.n = make([]byte, 0, MaxBatch), 0
	return out
}
