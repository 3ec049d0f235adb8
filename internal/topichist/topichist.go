// Package topichist keeps the last messages published to each topic, at
// positions of the topic's own, so that a client joining a topic can be
// given what was said before it came (rewind) and GET
// /topics/{topic}/history can read them. It needs no NATS and holds one
// lock (Store.mu), taken under the topics index's (the router publishes
// and joins under it: see internal/router, topics_history.go).
package topichist

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/cometgw/comet/internal/fifo"
)

// Config bounds what is kept. A zero MaxMessages keeps nothing (New
// returns nil, whose methods keep and give nothing).
type Config struct {
	// MaxMessages is how many messages each topic keeps
	// (-topic-history). Default 0: none.
	MaxMessages int
	// MaxAge is how long a message is kept (-topic-history-age).
	// Default 1h.
	MaxAge time.Duration
	// MaxBytes bounds the memory of every topic's kept messages
	// (-topic-history-bytes): each counts its length and EntryOverhead;
	// past it the oldest, of any topic, go first. Default 64 MiB.
	MaxBytes int64
}

// EntryOverhead is what a kept message costs besides its bytes, as
// counted against MaxBytes: its entry in its topic's ring (40 B), its
// place in the store's order (16 B, up to twice that between two
// compactions) and its allocation's rounding. make bench-history
// measures the whole.
const EntryOverhead = 72

// MaxRewind bounds what one join may ask for.
const MaxRewind = 1000

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{MaxAge: time.Hour, MaxBytes: 64 << 20}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxMessages < 0 || c.MaxMessages > 1<<20 {
		return fmt.Errorf("topichist: -topic-history %d: want 0 (off) to %d", c.MaxMessages, 1<<20)
	}
	if c.MaxMessages > 0 && c.MaxAge < time.Second {
		return fmt.Errorf("topichist: -topic-history-age %s is below 1s", c.MaxAge)
	}
	if c.MaxMessages > 0 && c.MaxBytes < 1<<20 {
		return fmt.Errorf("topichist: -topic-history-bytes %d is below 1 MiB", c.MaxBytes)
	}
	return nil
}

// Entry is one kept message: its position in the topic, when it was
// published (unix nanos) and the message (shared: do not change it).
type Entry struct {
	Seq uint64
	At  int64
	Msg []byte
}

// topic is one topic's kept messages, oldest first: n of them in ring
// from start (the ring grows, doubling, to MaxMessages).
type topic struct {
	epoch    uint64
	ring     []Entry
	start, n int
	next     uint64 // the position the next message takes
	// last is when the topic last kept a message: an empty topic is
	// forgotten MaxAge after.
	last int64
}

func (t *topic) len() int { return t.n }

// at is t's i-th kept message, oldest first.
func (t *topic) at(i int) *Entry { return &t.ring[(t.start+i)%len(t.ring)] }

// push keeps e as t's newest; the ring grows to hold most at most (the
// caller made room).
func (t *topic) push(e Entry, most int) {
	if t.n == len(t.ring) {
		grown := make([]Entry, min(most, max(4, 2*len(t.ring))))
		for i := range t.n {
			grown[i] = *t.at(i)
		}
		t.ring, t.start = grown, 0
	}
	*t.at(t.n) = e
	t.n++
}

// dropOldest forgets t's oldest message and returns its size.
func (t *topic) dropOldest() int64 {
	e := t.at(0)
	size := int64(len(e.Msg)) + EntryOverhead
	*e = Entry{}
	t.start = (t.start + 1) % len(t.ring)
	t.n--
	if t.n == 0 {
		t.ring, t.start = nil, 0 // an idle topic holds no ring
	}
	return size
}

// queued is a kept message in the store's order: its topic and position.
type queued struct {
	t   *topic
	seq uint64
}

// Store is every topic's kept messages.
type Store struct {
	cfg   Config
	epoch uint64 // of the topics this store starts

	mu     sync.Mutex
	topics map[string]*topic
	order  []queued // every kept message, oldest first, from order[head]
	head   int
	bytes  int64
	msgs   int
}

// New returns a store, or nil when cfg keeps nothing.
func New(cfg Config) (*Store, error) {
	def := DefaultConfig()
	if cfg.MaxAge == 0 {
		cfg.MaxAge = def.MaxAge
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = def.MaxBytes
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxMessages == 0 {
		return nil, nil
	}
	var b [8]byte
	rand.Read(b[:])
	return &Store{cfg: cfg, epoch: binary.LittleEndian.Uint64(b[:])>>12 | 1, topics: make(map[string]*topic)}, nil
}

// Keeps says whether the store keeps anything.
func (s *Store) Keeps() bool { return s != nil }

// Append keeps msg (not copied: the caller gives it up) as topic's next
// message at unix nanos now, and returns its position.
func (s *Store) Append(name []byte, msg []byte, now int64) (epoch, seq uint64) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[string(name)]
	if t == nil {
		t = &topic{epoch: s.epoch, next: 1}
		s.topics[string(name)] = t
	}
	seq = t.next
	s.put(t, seq, now, msg)
	return t.epoch, seq
}

// Apply keeps msg at topic's position (epoch, seq), as the router that
// leads gave it (a redundant standby following its log). A topic of
// another epoch starts again at it; a position it passed is left alone.
func (s *Store) Apply(name string, epoch, seq uint64, at int64, msg []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[name]
	if t == nil || t.epoch != epoch {
		if t != nil {
			for t.len() > 0 {
				s.bytes -= t.dropOldest()
				s.msgs--
			}
		}
		t = &topic{epoch: epoch, next: seq}
		s.topics[name] = t
	}
	if seq < t.next {
		return
	}
	s.put(t, seq, at, msg)
}

// put keeps msg at seq in t and makes room. s.mu must be held.
func (s *Store) put(t *topic, seq uint64, at int64, msg []byte) {
	if t.len() == s.cfg.MaxMessages {
		s.bytes -= t.dropOldest()
		s.msgs--
	}
	t.push(Entry{Seq: seq, At: at, Msg: msg}, s.cfg.MaxMessages)
	t.next, t.last = seq+1, at
	s.order = append(s.order, queued{t, seq})
	s.bytes += int64(len(msg)) + EntryOverhead
	s.msgs++
	for s.bytes > s.cfg.MaxBytes && s.popOldest() {
	}
	s.order, s.head = fifo.Compact(s.order, s.head)
}

// popOldest forgets the oldest message of the store's order, if its
// topic still keeps it; it reports whether the order had one. s.mu must
// be held.
func (s *Store) popOldest() bool {
	if s.head == len(s.order) {
		return false
	}
	q := s.order[s.head]
	s.order[s.head] = queued{}
	s.head++
	if t := q.t; t.len() > 0 && t.at(0).Seq == q.seq {
		s.bytes -= t.dropOldest()
		s.msgs--
	}
	return true
}

// Expire forgets the messages older than MaxAge at unix nanos now, and
// the topics that kept nothing for as long.
func (s *Store) Expire(now int64) {
	if s == nil {
		return
	}
	limit := now - int64(s.cfg.MaxAge)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.head < len(s.order) {
		q := s.order[s.head]
		t := q.t
		if t.len() > 0 && t.at(0).Seq == q.seq && t.at(0).At >= limit {
			break
		}
		s.popOldest()
	}
	s.order, s.head = fifo.Compact(s.order, s.head)
	for name, t := range s.topics {
		if t.len() == 0 && t.last < limit {
			delete(s.topics, name)
		}
	}
}

// Head is topic's last position given (0: none yet) and its epoch.
func (s *Store) Head(name []byte) (epoch, seq uint64) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topics[string(name)]; t != nil {
		return t.epoch, t.next - 1
	}
	return 0, 0
}

// Read appends to dst topic's kept messages after position after, up to
// upto (0: the last), at most max (the last max of them), not older than
// MaxAge at unix nanos now, and returns them with the topic's epoch.
func (s *Store) Read(name []byte, after, upto uint64, max int, now int64, dst []Entry) ([]Entry, uint64) {
	if s == nil || max <= 0 {
		return dst, 0
	}
	limit := now - int64(s.cfg.MaxAge)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[string(name)]
	if t == nil {
		return dst, 0
	}
	hi := t.len()
	for hi > 0 && upto != 0 && t.at(hi-1).Seq > upto {
		hi--
	}
	lo := hi
	for lo > 0 && hi-lo < max && t.at(lo-1).Seq > after && t.at(lo-1).At >= limit {
		lo--
	}
	for i := lo; i < hi; i++ {
		dst = append(dst, *t.at(i))
	}
	return dst, t.epoch
}

// Stats counts what is kept.
type Stats struct {
	Topics   int   `json:"topics"`
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"` // as counted against MaxBytes
	MaxBytes int64 `json:"max_bytes"`
}

func (s *Store) Stats() *Stats {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Stats{Topics: len(s.topics), Messages: s.msgs, Bytes: s.bytes, MaxBytes: s.cfg.MaxBytes}
}
