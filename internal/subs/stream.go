package subs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream stream that holds the subscriptions, and its subject.
const (
	StreamName = "COMET_SUBS"
	Subject    = "comet.v3.subs"
)

// Stream is the subscriptions' stream on a NATS with JetStream.
type Stream struct {
	js jetstream.JetStream
	st jetstream.Stream
}

// Open makes (or finds) the stream: file storage, every message kept
// (each is a batch of records that later ones may undo), on replicas
// servers of a JetStream cluster (1: not clustered). A JetStream that has
// just started (a cluster still electing its leader) may not answer the
// first requests: Open asks again, every 2 s, until ctx ends.
func Open(ctx context.Context, nc *nats.Conn, replicas int) (*Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("subs: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "comet: stored subscriptions (batches of subscribe and unsubscribe records)",
		Subjects:    []string{Subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxMsgSize:  MaxBatch + 1024,
		Replicas:    max(replicas, 1),
	}
	var st jetstream.Stream
	err = WhileForming(ctx, func(try context.Context) (err error) {
		st, err = js.CreateOrUpdateStream(try, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("subs: stream %s (does the NATS server have JetStream?): %w", StreamName, err)
	}
	return &Stream{js: js, st: st}, nil
}

// Find finds the stream the routers made (a tool that stores or compacts
// subscriptions must not change its configuration, its replicas).
func Find(ctx context.Context, nc *nats.Conn) (*Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("subs: %w", err)
	}
	// A cluster still forming may not know the stream for a moment
	// (WhileForming asks again); past 10 s it is not there.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st jetstream.Stream
	err = WhileForming(wait, func(try context.Context) (err error) {
		st, err = js.Stream(try, StreamName)
		return err
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("subs: no stream %s on this NATS: start a router on it first", StreamName)
	}
	if err != nil {
		return nil, fmt.Errorf("subs: stream %s (does the NATS server have JetStream?): %w", StreamName, err)
	}
	return &Stream{js: js, st: st}, nil
}

// WhileForming calls try, with 2 s to get its answer, until it succeeds,
// fails otherwise than by getting no answer in time, or ctx ends. A
// JetStream still forming (a cluster electing its leaders) may not
// answer the first requests, or not know yet a stream just created (a
// router of four failed to start on "stream not found" right after the
// stream was made); no responders, or JetStream not enabled (a server
// without one), is said at once.
func WhileForming(ctx context.Context, try func(context.Context) error) error {
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := try(c)
		cancel()
		forming := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrStreamNotFound)
		if err == nil || ctx.Err() != nil || !forming {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Publish stores one batch and returns its stream sequence once
// JetStream has it. While the stream has no leader (a server of its
// cluster was lost and the others elect a new one), it asks again until
// ctx ends.
func (s *Stream) Publish(ctx context.Context, batch []byte) (uint64, error) {
	for {
		ack, err := s.js.Publish(ctx, Subject, batch)
		if err == nil {
			return ack.Sequence, nil
		}
		if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
			return 0, fmt.Errorf("subs: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("subs: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Follower applies the stream to an Index: every batch from the first,
// then each new one as it comes.
type Follower struct {
	cc      jetstream.ConsumeContext
	applied atomic.Uint64 // the last stream sequence applied
	bad     atomic.Uint64 // malformed batches (their records up to the error applied)
	restart atomic.Uint64 // gaps: a compaction purged batches not yet applied
	ready   chan struct{} // closed once caught up with the stream as it was at Follow
	once    sync.Once
}

// Follow starts applying the stream to x. Ready is closed when every
// batch stored before Follow was called has been applied.
func (s *Stream) Follow(ctx context.Context, x *Index, onBad func(error)) (*Follower, error) {
	// A stream whose cluster is still forming may not answer at once.
	var info *jetstream.StreamInfo
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := WhileForming(wait, func(try context.Context) (err error) {
		info, err = s.st.Info(try)
		return err
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("subs: %w", err)
	}
	last := info.State.LastSeq
	f := &Follower{ready: make(chan struct{})}
	if last == 0 {
		f.once.Do(func() { close(f.ready) })
	}
	var cons jetstream.Consumer
	wait, cancel = context.WithTimeout(ctx, 30*time.Second)
	err = WhileForming(wait, func(try context.Context) (err error) {
		cons, err = s.st.OrderedConsumer(try, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		return err
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("subs: %w", err)
	}
	// At most 16 MiB of batches asked for at once: the client's buffer
	// for the consumer (64 MiB by default) must never overflow, or NATS
	// drops batches and the consumer has to start over.
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		f.apply(x, meta.Sequence.Stream, m.Data(), onBad)
		if meta.Sequence.Stream >= last {
			f.once.Do(func() { close(f.ready) })
		}
	}, jetstream.PullMaxBytes(16<<20), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if onBad != nil {
			onBad(err)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("subs: %w", err)
	}
	return f, nil
}

// apply applies the batch at stream sequence seq to x.
func (f *Follower) apply(x *Index, seq uint64, batch []byte, onBad func(error)) {
	if prev := f.applied.Load(); prev != 0 && seq > prev+1 {
		// The stream's sequences have no gaps but a compaction's purge
		// (Compact), which ends where its snapshot of every subscription
		// begins: what was applied is replaced by it.
		f.restart.Add(1)
		x.Reset()
	}
	if err := x.ApplyBatch(batch); err != nil {
		f.bad.Add(1)
		if onBad != nil {
			onBad(err)
		}
	}
	f.applied.Store(seq)
}

// Ready is closed once the stream as it was at Follow is applied.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// WaitApplied waits until the batch at stream sequence seq is applied.
func (f *Follower) WaitApplied(ctx context.Context, seq uint64) error {
	for f.applied.Load() < seq {
		select {
		case <-ctx.Done():
			return errors.New("subs: the stored subscription is not applied yet")
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Applied is the last stream sequence applied; Bad the malformed batches;
// Restarts how often a compaction's purge made it start its index over.
func (f *Follower) Applied() uint64  { return f.applied.Load() }
func (f *Follower) Bad() uint64      { return f.bad.Load() }
func (f *Follower) Restarts() uint64 { return f.restart.Load() }

// Stop stops following.
func (f *Follower) Stop() { f.cc.Stop() }

// Compacted is what Compact did.
type Compacted struct {
	Subscriptions int    // in the snapshot: every subscription the stream held
	Batches       int    // the snapshot's batches
	Purged        uint64 // batches removed from before the snapshot
	BytesBefore   uint64 // the stream's size before
	BytesAfter    uint64 // and after
	Tries         int    // snapshots begun (another writer's record makes it start over)
}

// Compact rewrites the stream as the subscriptions it holds now, so that
// unsubscribes and repeats stop costing every router that replays it.
// It applies the whole stream to an index of its own, stores that index
// as subscribe batches, each write fenced on the stream's last sequence
// (Nats-Expected-Last-Sequence: a record stored meanwhile by anyone else
// makes the snapshot start over after it, so no record is ever ordered
// before a snapshot that missed it), then purges every batch before the
// snapshot. Routers that follow the stream see their own subscriptions
// again (no change); one that had not applied the purged batches sees a
// gap in the sequences and starts its index over from the snapshot
// (Follower). Two compactions at once cannot both write a snapshot: the
// fence lets one through. progress, if set, hears of each stored batch.
func (s *Stream) Compact(ctx context.Context, progress func(batches int)) (Compacted, error) {
	x := NewIndex()
	f, err := s.Follow(ctx, x, nil)
	if err != nil {
		return Compacted{}, err
	}
	defer f.Stop()
	select {
	case <-f.Ready():
	case <-ctx.Done():
		return Compacted{}, fmt.Errorf("subs: reading the stream: %w", ctx.Err())
	}
	return s.CompactWith(ctx, x, f, progress)
}

// CompactWith is Compact from an index that f keeps following the whole
// stream (a router's own, when it holds every id's subscriptions).
func (s *Stream) CompactWith(ctx context.Context, x *Index, f *Follower, progress func(batches int)) (Compacted, error) {
	var c Compacted
	if x.keep != nil {
		return c, errors.New("subs: a compaction needs every id's subscriptions, not a partition's")
	}
	info, err := s.st.Info(ctx)
	if err != nil {
		return c, fmt.Errorf("subs: %w", err)
	}
	c.BytesBefore = info.State.Bytes
	firstBefore := max(info.State.FirstSeq, 1)
	if err := f.WaitApplied(ctx, info.State.LastSeq); err != nil {
		return c, err
	}
	for {
		c.Tries++
		if err := ctx.Err(); err != nil {
			return c, fmt.Errorf("subs: compaction: %w", err)
		}
		// The index as of the last batch applied: a batch applied while
		// the snapshot is taken makes the first write's fence fail.
		last := f.Applied()
		batches := x.snapshot()
		first, err := s.storeFenced(ctx, last, batches, progress)
		if errors.Is(err, errMoved) {
			// Someone stored a record (or a part of our snapshot
			// got in before the fence failed): apply it all and take
			// the snapshot again, after it.
			if info, err = s.st.Info(ctx); err != nil {
				return c, fmt.Errorf("subs: %w", err)
			}
			if err := f.WaitApplied(ctx, info.State.LastSeq); err != nil {
				return c, err
			}
			continue
		}
		if err != nil {
			return c, err
		}
		c.Subscriptions, c.Batches = x.Stats().Subscriptions, len(batches)
		if first == 0 {
			first = last + 1 // no subscription at all: purge everything up to now
		}
		if err := s.st.Purge(ctx, jetstream.WithPurgeSequence(first)); err != nil {
			return c, fmt.Errorf("subs: purge before sequence %d: %w", first, err)
		}
		if info, err = s.st.Info(ctx); err == nil {
			c.BytesAfter = info.State.Bytes
			c.Purged = info.State.FirstSeq - firstBefore
		}
		return c, nil
	}
}

// errMoved: the stream's last sequence was not the one a fenced write
// expected.
var errMoved = errors.New("subs: the stream moved on")

// storeFenced stores batches in order, the first expecting the stream to
// end at last, each next one at the one before; it returns the first's
// sequence (0 if there was none).
func (s *Stream) storeFenced(ctx context.Context, last uint64, batches [][]byte, progress func(int)) (uint64, error) {
	var first uint64
	for i, b := range batches {
		ack, err := s.js.Publish(ctx, Subject, b, jetstream.WithExpectLastSequence(last))
		if WrongLastSeq(err) {
			return 0, errMoved
		}
		if err != nil {
			return 0, fmt.Errorf("subs: storing the snapshot: %w", err)
		}
		if i == 0 {
			first = ack.Sequence
		}
		last = ack.Sequence
		if progress != nil {
			progress(i + 1)
		}
	}
	return first, nil
}

// Size is the stream's bytes now.
func (s *Stream) Size(ctx context.Context) (uint64, error) {
	info, err := s.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("subs: %w", err)
	}
	return info.State.Bytes, nil
}

// WrongLastSeq reports whether err is JetStream refusing a write fenced
// on a last sequence the stream no longer ends at.
func WrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
