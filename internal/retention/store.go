package retention

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/fifo"
)

// Config bounds the retention window. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// MaxMessages is the most messages kept per id. Default 128.
	MaxMessages int
	// MaxAge is how long a message is kept. Default 2m.
	MaxAge time.Duration
	// MaxBytes caps the memory of every id's kept messages together
	// (message bytes plus about 88 bytes of bookkeeping each); past it
	// the oldest messages of all ids go first. Default 64 MiB.
	MaxBytes int64
	// Grace is how long an id's history is kept, and its sequence goes
	// on, after its last client logged out: the time a long-poll client
	// has to come back for its next poll. Default 60s.
	Grace time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{MaxMessages: 128, MaxAge: 2 * time.Minute, MaxBytes: 64 << 20, Grace: time.Minute}
}

// Validate reports a configuration that cannot work (zero fields are
// defaults, negative ones are errors).
func (c Config) Validate() error {
	if c.MaxMessages < 0 || c.MaxAge < 0 || c.MaxBytes < 0 || c.Grace < 0 {
		return fmt.Errorf("retention: bounds cannot be negative (messages %d, age %s, bytes %d, grace %s)",
			c.MaxMessages, c.MaxAge, c.MaxBytes, c.Grace)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxMessages == 0 {
		c.MaxMessages = d.MaxMessages
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.Grace == 0 {
		c.Grace = d.Grace
	}
	return c
}

// Entry is one kept message.
type Entry struct {
	Seq uint64
	At  int64 // unix nanos when it was sent
	Msg []byte
	// Topic is the topic it was published to ("": sent to the id): a
	// resume gives it only to a client in that topic. The string is the
	// caller's (shared, not copied).
	Topic string
}

// What one kept message costs beyond its bytes: its Entry in its id's
// slice, and its place in the eviction queue (given back when popped).
const (
	entrySize  = 56
	queuedSize = 24
	entryCost  = entrySize + queuedSize
)

// history is one id's sequence and window.
type history struct {
	id    int64
	epoch uint64
	next  uint64 // the position the next message gets; the first is 1
	// lo is first(), and gone says the history was dropped or replaced:
	// written under the shard's lock, read by evict without it, so that
	// a queued position the history no longer keeps (most of them: a
	// history at its count bound drops one message per message kept) is
	// popped without the lock.
	lo   atomic.Uint64
	gone atomic.Bool
	// kept[head:] are the kept messages, ascending Seq, contiguous but
	// across the gap; kept[:head] are cleared slots of dropped ones,
	// reused (the live ones moved to the front) when kept is full, so
	// that a history at its count bound allocates nothing per message.
	kept      []Entry
	head      int
	idleSince int64 // unix nanos when the id lost its last login; 0 while held
	// Positions gapFrom to gapTo-1 were skipped, never given to a
	// message: a router that took the lead from another went on past
	// what the other could have given (Jump), or a follower saw it do
	// so. A cursor in the gap has missed nothing.
	gapFrom, gapTo uint64
}

// newHistory returns id's history of epoch, empty, its first position 1.
func newHistory(id int64, epoch uint64, idleSince int64) *history {
	h := &history{id: id, epoch: epoch, next: 1, idleSince: idleSince}
	h.moved()
	return h
}

// skipGap returns seq, or, if seq is in h's gap, the first position
// after it: the first position at or after seq that can hold a message.
func (h *history) skipGap(seq uint64) uint64 {
	if seq >= h.gapFrom && seq < h.gapTo {
		return h.gapTo
	}
	return seq
}

// live returns the kept messages.
func (h *history) live() []Entry { return h.kept[h.head:] }

// from returns the index in live() of the first message at seq or later.
func (h *history) from(seq uint64) int {
	l := h.live()
	return sort.Search(len(l), func(i int) bool { return l[i].Seq >= seq })
}

// first is the oldest position kept, or next when nothing is.
func (h *history) first() uint64 {
	if h.head == len(h.kept) {
		return h.next
	}
	return h.kept[h.head].Seq
}

// moved records first() in lo after the kept messages or next changed.
func (h *history) moved() { h.lo.Store(h.first()) }

// holds reports whether h may still keep the message at seq: false is
// sure (read without the shard's lock), true is to be checked under it.
func (h *history) holds(seq uint64) bool { return !h.gone.Load() && seq >= h.lo.Load() }

// push keeps e after the others. When kept is full and at least half of
// it is dropped slots, the live messages move to the front instead of
// kept growing: at the count bound a history reuses one array.
func (h *history) push(e Entry) {
	if len(h.kept) == cap(h.kept) && h.head > 0 && 2*h.head >= len(h.kept) {
		n := copy(h.kept, h.kept[h.head:])
		clear(h.kept[n:])
		h.kept, h.head = h.kept[:n], 0
	}
	h.kept = append(h.kept, e)
}

type shard struct {
	mu sync.Mutex
	m  map[int64]*history
}

// queued is a kept message's place in the eviction queue: the history
// that kept it (not its id: a history that is dropped or replaced is
// told so, gone) and its position.
type queued struct {
	h   *history
	seq uint64
	at  int64
}

// Store keeps every resumable id's recent messages. It lives in the
// router, which every gateway process reaches, so a client resumes through
// any of them. Safe for concurrent use.
type Store struct {
	cfg    Config
	shards [64]shard
	epochs atomic.Uint64 // the next epoch; its high 32 bits are random per Store

	qmu   sync.Mutex
	queue []queued // every kept message in the order it was kept: evicted from the front
	qhead int

	bytes   atomic.Int64
	ids     atomic.Int64
	msgs    atomic.Int64
	evicted atomic.Uint64 // dropped for the byte cap
	expired atomic.Uint64 // dropped for age or count
	dropped atomic.Uint64 // histories dropped after their grace period

	onDrop func(id int64) // hears of every history Sweep drops
}

// OnDrop makes Sweep call f, with no lock held, for every id whose
// history it drops. Call it before any other method.
func (s *Store) OnDrop(f func(id int64)) { s.onDrop = f }

// Has reports whether id has a history.
func (s *Store) Has(id int64) bool {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id] != nil
}

// NewStore returns an empty store whose epochs differ from any other
// Store's (with high probability): a router that restarts starts a new
// epoch for every id.
func NewStore(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	var r [4]byte
	rand.Read(r[:])
	hi := uint64(binary.LittleEndian.Uint32(r[:])|1) << 32
	s.epochs.Store(hi)
	for i := range s.shards {
		s.shards[i].m = make(map[int64]*history)
	}
	return s, nil
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) shard(id int64) *shard {
	return &s.shards[(uint64(id)*0x9E3779B97F4A7C15)>>58]
}

// Held is one id's history locked: what Lock hands back. Append and
// Resume act on it; Unlock releases it. While it is held, a message is
// either in the catch-up of a resume or routed to the resumed conn,
// never both and never neither: the caller routes the position Append
// gives, and logs a resumed client in, before it unlocks. A Held is a
// value (no allocation); it must not call the Store while held.
type Held struct {
	s  *Store
	sh *shard
	id int64
	// The position Append kept in h, queued for eviction at Unlock (the
	// queue's lock is not taken under a shard's).
	h   *history
	seq uint64
	at  int64
}

// Lock locks id's history (whether or not it has one) and hands it back.
func (s *Store) Lock(id int64) Held {
	sh := s.shard(id)
	sh.mu.Lock()
	return Held{s: s, sh: sh, id: id}
}

// Unlock releases the history, then queues what Append kept for
// eviction and evicts what is past the byte cap.
func (l *Held) Unlock() {
	l.sh.mu.Unlock()
	if l.h != nil {
		l.queue()
	}
}

// queue queues the position Append kept for eviction.
func (l *Held) queue() {
	h := l.h
	l.h = nil
	l.s.enqueue(h, l.seq, l.at)
}

// Shared is one message's bytes, copied by the first Append that keeps
// them and shared by every history that keeps them after it: a publish
// to a topic's thousand members keeps one copy, not a thousand. (The
// byte cap still counts the bytes once per history that keeps them: it
// over-counts, never under.)
type Shared struct{ src, kept []byte }

// Share returns msg to be kept; msg must not change while Appends use it
// (the copy is made from it on the first one).
func Share(msg []byte) Shared { return Shared{src: msg} }

func (m *Shared) bytes() []byte {
	if m.kept == nil {
		m.kept = append(make([]byte, 0, len(m.src)), m.src...)
	}
	return m.kept
}

// Append gives msg the next position of the id if it has a history (a
// resumable client now or within the grace period), keeps it and
// returns the position; epoch 0 when the id has no history. At most one
// Append per Lock. topic is the topic msg was published to ("" for a
// send to the id), kept with it.
func (l *Held) Append(topic string, msg *Shared, now int64) (epoch, seq uint64) {
	h := l.sh.m[l.id]
	if h == nil {
		return 0, 0
	}
	if l.h != nil {
		panic("retention: one Append per Lock")
	}
	s := l.s
	seq = h.next
	h.next++
	b := msg.bytes()
	h.push(Entry{Seq: seq, At: now, Msg: b, Topic: topic})
	s.msgs.Add(1)
	s.bytes.Add(int64(len(b)) + entryCost)
	s.trim(h, now) // lo moves only if trim drops (push keeps first())
	l.h, l.seq, l.at = h, seq, now
	return h.epoch, seq
}

// enqueue puts a message just kept in the eviction queue and evicts
// what is past the byte cap.
func (s *Store) enqueue(h *history, seq uint64, at int64) {
	s.qmu.Lock()
	s.queue = append(s.queue, queued{h, seq, at})
	s.qmu.Unlock()
	if s.bytes.Load() > s.cfg.MaxBytes {
		s.evict(func(queued) bool { return s.bytes.Load() > s.cfg.MaxBytes })
	}
}

// trim drops what is past the count and age bounds. sh.mu must be held.
func (s *Store) trim(h *history, now int64) {
	limit := now - int64(s.cfg.MaxAge)
	l := h.live()
	n := 0
	for n < len(l) && (len(l)-n > s.cfg.MaxMessages || l[n].At < limit) {
		n++
	}
	s.expired.Add(uint64(s.dropFront(h, n)))
	// At the bound push moves the live ones down when kept is full, so
	// kept stays within twice the bound; it is made smaller only when
	// far past that (a follower's burst of inserts).
	if l := h.live(); cap(h.kept) > 4*s.cfg.MaxMessages+8 && len(l) <= s.cfg.MaxMessages {
		h.kept, h.head = append(make([]Entry, 0, 2*len(l)+8), l...), 0
	}
}

// dropFront drops h's n oldest kept messages and returns n. The shard's
// lock must be held.
func (s *Store) dropFront(h *history, n int) int {
	if n == 0 {
		return 0
	}
	l := h.live()[:n]
	for i := range l {
		s.bytes.Add(-int64(len(l[i].Msg)) - entrySize)
		l[i] = Entry{}
	}
	h.head += n
	if h.head == len(h.kept) {
		h.kept, h.head = nil, 0
	}
	h.moved()
	s.msgs.Add(-int64(n))
	return n
}

// evict pops the eviction queue while more(front) says so, dropping each
// popped message from its history if still kept. Positions no longer
// kept are popped under the queue's lock alone.
func (s *Store) evict(more func(queued) bool) {
	for {
		s.qmu.Lock()
		var q queued
		live := false
		for s.qhead < len(s.queue) && more(s.queue[s.qhead]) {
			q = s.queue[s.qhead]
			s.queue[s.qhead] = queued{}
			s.qhead++
			s.bytes.Add(-queuedSize)
			if q.h.holds(q.seq) {
				live = true
				break
			}
		}
		if !live {
			s.queue, s.qhead = fifo.Compact(s.queue, s.qhead)
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()

		h := q.h
		sh := s.shard(h.id)
		sh.mu.Lock()
		if !h.gone.Load() {
			l := h.live()
			n := 0
			for n < len(l) && l[n].Seq <= q.seq {
				n++
			}
			s.evicted.Add(uint64(s.dropFront(h, n)))
		}
		sh.mu.Unlock()
	}
}

// Resumed is the answer to a resume: the messages from position From to
// Head of Epoch follow; Missed says that messages after the client's
// cursor are no longer kept (or the cursor is from another epoch), and
// the client continues from the oldest kept.
type Resumed struct {
	Epoch  uint64
	From   uint64
	Head   uint64
	Missed bool
	// Opened: the resume started the id's history (a new epoch).
	Opened bool
}

// Resume starts (or keeps) the id's history and returns where a client
// whose cursor is cur continues and the kept messages from there on
// (valid until Unlock). The caller logs the client in before it
// unlocks, so that every later Append reaches it.
func (l *Held) Resume(cur cursor.Cursor) (Resumed, []Entry) {
	s, sh, id := l.s, l.sh, l.id
	h := sh.m[id]
	opened := h == nil
	if opened {
		h = newHistory(id, s.epochs.Add(1), 0)
		sh.m[id] = h
		s.ids.Add(1)
	}
	h.idleSince = 0
	res := Resumed{Epoch: h.epoch, Head: h.next - 1, Opened: opened}
	first := h.first()
	switch {
	case cur.IsZero():
		res.From = h.next
	case cur.Epoch != h.epoch || cur.Seq >= h.next:
		// Another life of this id's history, or a position it never
		// reached: nothing can be said of what the client lacks.
		res.Missed = true
		res.From = first
	case h.skipGap(cur.Seq+1) < first:
		res.Missed = true
		res.From = first
	default:
		res.From = cur.Seq + 1
	}
	var kept []Entry
	if res.From <= res.Head {
		kept = h.live()[h.from(res.From):]
	}
	return res, kept
}

// Head is where id's history is now: its epoch and last position given
// (zero: id has no history). A client that joins a topic resumes from it
// so that nothing published to the topic after its join is missed.
func (s *Store) Head(id int64) cursor.Cursor {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if h := sh.m[id]; h != nil {
		return cursor.Cursor{Epoch: h.epoch, Seq: h.next - 1}
	}
	return cursor.Cursor{}
}

// Idle records that id lost its last login at now: its history is
// dropped after the grace period unless a client comes back.
func (s *Store) Idle(id int64, now int64) {
	sh := s.shard(id)
	sh.mu.Lock()
	if h := sh.m[id]; h != nil {
		h.idleSince = now
	}
	sh.mu.Unlock()
}

// Sweep expires old messages and drops the histories of ids idle past the
// grace period. held reports whether an id has a login now (an id that is
// held again is no longer idle); it is called with id's lock held.
func (s *Store) Sweep(now int64, held func(id int64) bool) {
	limit := now - int64(s.cfg.MaxAge)
	s.evict(func(q queued) bool { return q.at < limit })
	graceLimit := now - int64(s.cfg.Grace)
	var dropped []int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, h := range sh.m {
			s.trim(h, now)
			if h.idleSince == 0 {
				continue
			}
			if held(id) {
				h.idleSince = 0
				continue
			}
			if h.idleSince < graceLimit {
				s.dropFront(h, len(h.live()))
				h.gone.Store(true)
				delete(sh.m, id)
				s.ids.Add(-1)
				s.dropped.Add(1)
				if s.onDrop != nil {
					dropped = append(dropped, id)
				}
			}
		}
		sh.mu.Unlock()
	}
	for _, id := range dropped {
		s.onDrop(id)
	}
}

// Stats is a snapshot of the store.
type Stats struct {
	IDs      int64  `json:"ids"`      // ids with a history
	Messages int64  `json:"messages"` // messages kept
	Bytes    int64  `json:"bytes"`    // their accounted memory
	Evicted  uint64 `json:"evicted"`  // dropped early for the byte cap
	Expired  uint64 `json:"expired"`  // dropped for age or count
	Dropped  uint64 `json:"dropped"`  // histories dropped after the grace period
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		IDs: s.ids.Load(), Messages: s.msgs.Load(), Bytes: s.bytes.Load(),
		Evicted: s.evicted.Load(), Expired: s.expired.Load(), Dropped: s.dropped.Load(),
	}
}
