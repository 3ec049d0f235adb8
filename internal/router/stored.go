package router

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/topics"
)

// storedSubs is the router's stored subscriptions: the index, the stream
// it follows, and the ids whose subscribed presence may have changed.
// Its methods are safe on a nil *storedSubs (no JetStream): no id is
// subscribed to anything.
type storedSubs struct {
	x      *subs.Index
	st     *subs.Stream
	f      *subs.Follower
	topics *topics.Index
	log    *zap.Logger
	stop   chan struct{}
	// Ids whose subscribed presence may have changed (changed).
	pending struct {
		mu  sync.Mutex
		ids map[int64]struct{}
	}
	compactions atomic.Uint64
}

// openStored opens the stored subscriptions' stream and applies it
// before the router routes anything (a publish must reach every stored
// subscriber); with owns, only the ids it owns. A NATS without JetStream
// (an external server) leaves the router without stored subscriptions
// (nil, said in the log) unless required.
func openStored(nc *nats.Conn, replicas int, required bool, owns func(int64) bool, tx *topics.Index, log *zap.Logger) (*storedSubs, error) {
	// A JetStream cluster forming with its routers takes a moment.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := subs.Open(ctx, nc, replicas)
	cancel()
	if err != nil {
		if required {
			return nil, fmt.Errorf("router: %w", err)
		}
		log.Warn("no stored subscriptions: the NATS server has no JetStream", zap.Error(err))
		return nil, nil
	}
	s := &storedSubs{x: subs.NewIndex(), st: st, topics: tx, log: log, stop: make(chan struct{})}
	x := s.x
	if owns != nil {
		x.Only(owns)
	}
	// Subscribed ids are in their topics' presence while they have a
	// conn: their subscribing and unsubscribing are joins and leaves.
	x.Watch(tx.IsWatched, func(op byte, id int64, topic string) {
		tx.SyncSub(id, []string{topic}, op == subs.OpSubscribe)
	})
	tx.SetSubscribers(func(topic string) (ids []int64) {
		x.Subscribers([]byte(topic), func(_ string, s []int64) { ids = slices.Clone(s) })
		return ids
	})
	s.f, err = st.Follow(context.Background(), x, func(err error) {
		log.Warn("malformed subscriptions batch", zap.Error(err))
	})
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	limit := time.After(10 * time.Minute)
	for loading := true; loading; {
		select {
		case <-s.f.Ready():
			loading = false
		case <-tick.C:
			log.Info("loading stored subscriptions", zap.Int("subscriptions", x.Stats().Subscriptions))
		case <-limit:
			s.f.Stop()
			return nil, fmt.Errorf("router: stored subscriptions not loaded after 10 minutes (%d so far)", x.Stats().Subscriptions)
		}
	}
	compactIndex(x)
	log.Info("stored subscriptions loaded", zap.Int("subscriptions", x.Stats().Subscriptions), zap.Duration("took", time.Since(start)))
	return s, nil
}

// close stops following the stream and the compactor.
func (s *storedSubs) close() {
	if s == nil {
		return
	}
	close(s.stop)
	s.f.Stop()
}

// topicsOf appends the topics id is subscribed to to buf.
func (s *storedSubs) topicsOf(id int64, buf []string) []string {
	if s == nil {
		return buf
	}
	return s.x.Topics(id, buf)
}

// subscribers calls f with topic's interned name and its subscribed ids
// (not at all when it has none).
func (s *storedSubs) subscribers(topic []byte, f func(name string, ids []int64)) {
	if s != nil {
		s.x.Subscribers(topic, f)
	}
}

// stats is the index's figures (nil without stored subscriptions).
func (s *storedSubs) stats() *subs.Stats {
	if s == nil {
		return nil
	}
	st := s.x.Stats()
	return &st
}

// ErrNoStore: the router has no stored subscriptions (no JetStream).
var ErrNoStore = errors.New("stored subscriptions need JetStream on the router's NATS server")

// store stores a subscribe (op subs.OpSubscribe) or unsubscribe of id to
// topic, and returns once this router applies it (every router follows
// the same stream).
func (s *storedSubs) store(ctx context.Context, op byte, id int64, topic string) error {
	if s == nil {
		return ErrNoStore
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, err := s.st.Publish(ctx, subs.AppendRecord([]byte{subs.Version}, op, id, topic))
	if err != nil {
		return err
	}
	return s.f.WaitApplied(ctx, seq)
}

// changed notes that id got its first conn or lost its last, for its
// presence in the topics it is subscribed to that have watchers: the
// registry calls it from under other locks (a resume holds the id's
// history lock), so the id only goes into a set here, which sync works
// through before each round of presence events.
func (s *storedSubs) changed(id int64) {
	if s == nil || !s.topics.AnyWatched() {
		return
	}
	s.pending.mu.Lock()
	if s.pending.ids == nil {
		s.pending.ids = make(map[int64]struct{})
	}
	s.pending.ids[id] = struct{}{}
	s.pending.mu.Unlock()
}

// sync brings the presence of the ids changed noted up to date with
// whether they have a conn now (a set: at most one entry per id, however
// often it came and went).
func (s *storedSubs) sync() {
	if s == nil {
		return
	}
	s.pending.mu.Lock()
	ids := s.pending.ids
	s.pending.ids = nil
	s.pending.mu.Unlock()
	var buf [8]string
	for id := range ids {
		if ts := s.x.Topics(id, buf[:0]); len(ts) > 0 {
			s.topics.SyncSub(id, ts, true)
		}
	}
}

// compactIndex gives back what growing the index's lists left unused, to
// the operating system too: after a load the index is most of the
// router's memory.
func compactIndex(x *subs.Index) {
	x.Compact()
	debug.FreeOSMemory()
}

// compactor compacts the index after it grew by a tenth (a bulk load
// through another router or `router subscribe -file`), once no batch has
// come for a second, and, every minute, the stream if mayCompact says
// this router is the one to (compactStream).
func (s *storedSubs) compactor(mayCompact func() bool) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, applied := s.x.Stats().Subscriptions, s.f.Applied()
	for tick := 1; ; tick++ {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if tick%60 == 0 && mayCompact() {
			s.compactStream()
		}
		n, a := s.x.Stats().Subscriptions, s.f.Applied()
		if a != applied { // still coming
			applied = a
			continue
		}
		if n > last+last/10+100_000 {
			compactIndex(s.x)
			s.log.Info("stored subscriptions compacted", zap.Int("subscriptions", n))
			last = n
		}
	}
}

// compactStreamOver is the least size of the subscriptions' stream that
// a router compacts (when it is 4 times its snapshot's).
var compactStreamOver uint64 = 64 << 20

// compactStream rewrites the subscriptions' stream when unsubscribes and
// repeats make it 4 times what it nets to (subs.Stream.Compact). Only a
// router that holds every id's subscriptions and routes (not a
// partition's, not a standby) does it; two at once are safe (the
// snapshot's writes are fenced), only wasteful.
func (s *storedSubs) compactStream() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	size, err := s.st.Size(ctx)
	if err != nil || size < compactStreamOver || size < 4*s.x.SnapshotBytes() {
		return
	}
	s.log.Info("compacting the stored subscriptions' stream", zap.Uint64("bytes", size))
	c, err := s.st.CompactWith(ctx, s.x, s.f, nil)
	if err != nil {
		s.log.Warn("compaction of the stored subscriptions failed", zap.Error(err))
		return
	}
	s.compactions.Add(1)
	s.log.Info("stored subscriptions' stream compacted", zap.Int("subscriptions", c.Subscriptions), zap.Uint64("purged_batches", c.Purged),
		zap.Uint64("bytes_before", c.BytesBefore), zap.Uint64("bytes_after", c.BytesAfter))
}
