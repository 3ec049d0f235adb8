package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometgw/comet/internal/subs"
)

// The JetStream stream that queues the events, and its subjects: one per
// partition (SubjectPrefix and the partition), each drained by its own
// durable consumer (ConsumerPrefix and the partition).
const (
	StreamName     = "COMET_WEBHOOKS"
	SubjectPrefix  = "comet.v3.webhooks."
	ConsumerPrefix = "webhooks-"
)

// MaxBatch bounds one queued batch (and so one stored message); a POST
// carries up to MaxPost bytes of events, several queued batches merged.
const (
	MaxBatch = 256 << 10
	MaxPost  = 1 << 20
)

// ErrFull is a batch the queue had no room for.
var ErrFull = errors.New("webhook: queue full")

// Queue is the events waiting for the receiver: a work-queue stream
// (a batch is removed once the receiver took it), bounded in bytes; a
// batch past the bound is refused (ErrFull). It survives a router's
// restart when JetStream stores to a kept directory (-store), and a
// redundant router's takeover (every router of a partition uses the
// same stream and consumer).
type Queue struct {
	st       jetstream.Stream
	js       jetstream.JetStream
	cons     jetstream.Consumer
	subject  string
	maxBytes int64
}

// OpenQueue makes (or finds) the stream, bounded to maxBytes, on
// replicas servers of a JetStream cluster, and partition's consumer.
func OpenQueue(ctx context.Context, nc *nats.Conn, replicas int, partition int, maxBytes int64) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "comet: webhook events waiting for their receiver",
		Subjects:    []string{SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes,
		MaxMsgSize:  MaxBatch + 1024,
		Replicas:    max(replicas, 1),
	}
	q := &Queue{js: js, subject: SubjectPrefix + strconv.Itoa(partition), maxBytes: maxBytes}
	err = subs.WhileForming(ctx, func(try context.Context) (err error) {
		q.st, err = js.CreateOrUpdateStream(try, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: stream %s: %w", StreamName, err)
	}
	err = subs.WhileForming(ctx, func(try context.Context) (err error) {
		q.cons, err = q.st.CreateOrUpdateConsumer(try, jetstream.ConsumerConfig{
			Durable:       ConsumerPrefix + strconv.Itoa(partition),
			FilterSubject: q.subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			// A batch being delivered is kept in progress (deliver)
			// while its POST is tried; one whose router died is given
			// to the next after this.
			AckWait:       ackWait,
			MaxAckPending: 1024,
			MaxDeliver:    -1,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: consumer: %w", err)
	}
	return q, nil
}

// Add queues one batch (a JSON object {"events":[...],"lost":N}) and
// returns once JetStream stored it: ErrFull when the stream is at its
// bound.
//
// While the stream has no leader (a server of its cluster was lost and
// the others elect a new one: seconds), it asks again until ctx ends.
func (q *Queue) Add(ctx context.Context, batch []byte) error {
	for {
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := q.js.Publish(try, q.subject, batch)
		cancel()
		switch {
		case err == nil:
			return nil
		case isFull(err):
			return ErrFull
		case !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("webhook: queue: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook: queue: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// isFull recognizes JetStream's refusal of a message past the stream's
// limits (nats-server's ErrMaxBytes and ErrMaxMsgs, in the publish
// acknowledgement's description).
func isFull(err error) bool {
	s := err.Error()
	return strings.Contains(s, "maximum bytes exceeded") || strings.Contains(s, "maximum messages exceeded")
}

// Depth is the bytes and batches queued now.
func (q *Queue) Depth(ctx context.Context) (bytes, batches uint64, err error) {
	info, err := q.st.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.State.Bytes, info.State.Msgs, nil
}

// MaxBytes is the queue's bound.
func (q *Queue) MaxBytes() int64 { return q.maxBytes }

// queued is a stored batch as the deliverer reads it.
type queued struct {
	Events []json.RawMessage `json:"events"`
	Lost   uint64            `json:"lost"`
}

// Delivery counts what Deliver did.
type Delivery struct {
	Posts, Events, Lost uint64 // POSTs the receiver took, their events and lost counts
	Malformed           uint64 // stored batches that were not JSON (acked and counted)
}

// Deliver takes queued batches while active() says this router is the
// one to deliver (the leader of its partition), merges up to MaxPost
// bytes of them into one POST, delivers it (p.Deliver: until the
// receiver takes it) and only then removes them from the queue. It
// returns when ctx ends; a POST in progress then stays queued, for the
// next router or the next start.
func (q *Queue) Deliver(ctx context.Context, p *Poster, active func() bool, took func(Delivery), failed func(attempt int, err error, wait time.Duration)) {
	var body []byte
	for ctx.Err() == nil {
		if !active() {
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		batch, err := q.cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			select { // JetStream not answering: a moment, then again
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		for len(msgs) > 0 && ctx.Err() == nil {
			var d Delivery
			var n int
			body, n, d = merge(body[:0], msgs)
			if d.Events > 0 || d.Lost > 0 {
				if deliver(ctx, p, body, msgs[:n], failed) != nil {
					break // stopping
				}
				d.Posts = 1
			}
			for _, m := range msgs[:n] {
				m.Ack()
			}
			if took != nil {
				took(d)
			}
			msgs = msgs[n:]
		}
		for _, m := range msgs {
			m.Nak() // stopping: the next router takes them at once
		}
	}
}

// deliver POSTs body (p.Deliver) and keeps its batches in progress
// meanwhile: told to JetStream every AckWait/3, so that they go to
// another router only if this one stops saying so.
func deliver(ctx context.Context, p *Poster, body []byte, msgs []jetstream.Msg, failed func(int, error, time.Duration)) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, m := range msgs {
					m.InProgress()
				}
			}
		}
	}()
	return p.Deliver(ctx, body, failed)
}

// ackWait is how long a batch given to a router that says nothing more
// (it died) waits before it goes to another.
const ackWait = 6 * time.Second

// merge appends to body the POST of the first queued batches of msgs,
// up to MaxPost bytes (at least one), and says how many it took.
func merge(body []byte, msgs []jetstream.Msg) ([]byte, int, Delivery) {
	var d Delivery
	body = append(body, `{"events":[`...)
	n := 0
	for _, m := range msgs {
		if n > 0 && len(body)+len(m.Data()) > MaxPost {
			break
		}
		n++
		var b queued
		if err := json.Unmarshal(m.Data(), &b); err != nil {
			d.Malformed++
			continue
		}
		for _, e := range b.Events {
			if d.Events > 0 {
				body = append(body, ',')
			}
			body = append(body, e...)
			d.Events++
		}
		d.Lost += b.Lost
	}
	body = append(body, ']')
	if d.Lost > 0 {
		body = append(body, `,"lost":`...)
		body = strconv.AppendUint(body, d.Lost, 10)
	}
	return append(body, '}'), n, d
}
