package subs

import (
	"context"
	"errors"
	"fmt"
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
	ready   chan struct{} // closed once caught up with the stream as it was at Follow
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
		close(f.ready)
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
		if err := x.ApplyBatch(m.Data()); err != nil {
			f.bad.Add(1)
			if onBad != nil {
				onBad(err)
			}
		}
		f.applied.Store(meta.Sequence.Stream)
		if meta.Sequence.Stream == last {
			close(f.ready)
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

// Applied is the last stream sequence applied; Bad the malformed batches.
func (f *Follower) Applied() uint64 { return f.applied.Load() }
func (f *Follower) Bad() uint64     { return f.bad.Load() }

// Stop stops following.
func (f *Follower) Stop() { f.cc.Stop() }
