package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/wire"
)

// histLog is a redundant router's history log (docs/PROTOCOL.md,
// "Redundant routers"): a standby follows it into its Store; the leader
// writes to it every history it opens and every position it gives,
// before it acks the send. Its methods are safe on a nil *histLog (a
// router that runs alone): it locks nothing and logs nothing.
type histLog struct {
	js      jetstream.JetStream
	st      jetstream.Stream
	stream  string
	subject string
	name    string // the router's: its messages' ids
	store   *retention.Store
	topics  *topichist.Store // the topics' histories (nil: none kept)
	frames  *frameTable
	fl      *flows
	log     *zap.Logger
	// fail ends the router's lead (a write that cannot be made);
	// leaseHeld asks whether the lease is still this router's.
	fail      func(error)
	leaseHeld func(ctx context.Context) bool

	// mu is held from a batch's first position to its records being
	// queued: the log holds positions in the order they were given.
	mu    sync.Mutex
	queue chan logged

	follow    jetstream.ConsumeContext
	applied   atomic.Uint64 // the last log sequence applied while following
	applyMu   sync.Mutex    // held while a log message is applied
	direct    atomic.Uint64 // takeovers that read the log's end from the stream (the follower lagged)
	badLog    atomic.Uint64
	stopWrite chan struct{}
	written   sync.WaitGroup
	// The log's last sequence (the writer's goroutine only, once leading).
	last uint64

	msgs, records, failed atomic.Uint64
}

// logged is a batch's records waiting to be written to the history log,
// and the ack that waits for it (nil: nobody waits).
type logged struct {
	rec []byte
	ack *pendingAck
}

// logs reports whether positions given are logged (a redundant router).
func (l *histLog) logs() bool { return l != nil }

// lock is taken before a batch's first position (nothing alone).
func (l *histLog) lock() {
	if l != nil {
		l.mu.Lock()
	}
}

// unlock releases lock.
func (l *histLog) unlock() {
	if l != nil {
		l.mu.Unlock()
	}
}

// queueUnlock queues rec (if any) for the log, ack waiting for it to be
// written, and releases lock.
func (l *histLog) queueUnlock(rec []byte, ack *pendingAck) {
	if l == nil {
		return
	}
	if len(rec) > 0 {
		l.enqueue(rec, ack)
	}
	l.mu.Unlock()
}

// enqueue queues records for the log; ack (if any) waits for them to be
// written. mu must be held.
func (l *histLog) enqueue(rec []byte, ack *pendingAck) {
	if l == nil {
		return
	}
	if ack != nil {
		ack.mu.Lock()
		ack.waiting++
		ack.mu.Unlock()
	}
	l.queue <- logged{rec, ack}
}

// startFollowing applies the history log from its start to the store.
func (l *histLog) startFollowing() error {
	cons, err := l.st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	l.follow, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		l.apply(meta.Sequence.Stream, m.Data(), meta.Timestamp, false)
	}, jetstream.PullMaxBytes(16<<20))
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	return nil
}

// apply applies history log message seq to the store, unless it was
// applied already (the follower and a takeover's direct reads may both
// have it). direct: only the next message after the last applied. at is
// when the message was stored.
func (l *histLog) apply(seq uint64, data []byte, at time.Time, direct bool) {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if a := l.applied.Load(); seq <= a || (direct && seq != a+1) {
		return
	}
	if err := l.store.ApplyLogTo(data, time.Now().UnixNano(), l.frames.retakenAt(at), l.applyTopic); err != nil {
		l.badLog.Add(1)
		l.log.Warn("malformed history log message", zap.Uint64("seq", seq), zap.Error(err))
	}
	l.applied.Store(seq)
}

// applyTopic keeps a topic's message at the position the leader gave it.
func (l *histLog) applyTopic(e retention.TopicEntry) {
	l.topics.Apply(e.Topic, e.Epoch, e.Seq, e.At, e.Msg)
}

// read reads history log messages from..to from the stream's leader and
// calls each for each, with the time it was stored (a sequence gone from
// the stream with nil).
func (l *histLog) read(ctx context.Context, from, to uint64, each func(seq uint64, data []byte, at time.Time)) error {
	for seq := from; seq <= to; seq++ {
		m, err := l.st.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			each(seq, nil, time.Time{})
		case err != nil:
			return fmt.Errorf("router: history log message %d: %w", seq, err)
		default:
			each(seq, m.Data, m.Time)
		}
	}
	return nil
}

// applyToEnd applies the log to its end (as the leader that wrote it
// left it) within ctx: from the follower, or, once it has lagged for
// lag, read from the stream's leader. It returns the log's last sequence.
func (l *histLog) applyToEnd(ctx context.Context, lag time.Duration) (uint64, error) {
	start := time.Now()
	info, err := l.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("the history log does not answer: %w", err)
	}
	last := info.State.LastSeq
	for l.applied.Load() < last {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("the history log is not applied yet: applied to %d of %d", l.applied.Load(), last)
		}
		if time.Since(start) > lag {
			// The follower lags (its consumer was on a server that
			// stopped, and waits for missed heartbeats to start over:
			// seconds): read the rest from the stream's leader.
			if err := l.read(ctx, l.applied.Load()+1, last, func(seq uint64, data []byte, at time.Time) { l.apply(seq, data, at, true) }); err != nil {
				return 0, fmt.Errorf("the history log does not answer: %w", err)
			}
			l.direct.Add(1)
			continue
		}
		time.Sleep(time.Millisecond)
	}
	return last, nil
}

// lead stops following the log, which was applied up to last, and
// starts writing it after last.
func (l *histLog) lead(last uint64) {
	l.follow.Stop()
	l.last = last
	l.written.Add(1)
	go l.writer()
}

// stop stops the writer once what is queued is written, waiting up to
// wait; it reports whether it was all written.
func (l *histLog) stop(wait time.Duration) bool {
	close(l.stopWrite)
	done := make(chan struct{})
	go func() { l.written.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// writer writes queued records to the log, as many per message as came
// meanwhile (up to maxLogMsg), each message at the sequence it expects
// the log to be at.
func (l *histLog) writer() {
	defer l.written.Done()
	var batch []logged
	var msg []byte
	for {
		batch, msg = batch[:0], msg[:0]
		select {
		case lg := <-l.queue:
			batch, msg = append(batch, lg), append(msg, lg.rec...)
		case <-l.stopWrite:
			select {
			case lg := <-l.queue:
				batch, msg = append(batch, lg), append(msg, lg.rec...)
			default:
				return
			}
		}
	more:
		for len(msg) < maxLogMsg {
			select {
			case lg := <-l.queue:
				batch, msg = append(batch, lg), append(msg, lg.rec...)
			default:
				break more
			}
		}
		err := l.write(msg)
		if err == nil {
			// Counted before the acks go: a sender that has its ack
			// sees the write in the stats.
			l.msgs.Add(1)
			l.records.Add(uint64(len(batch)))
		}
		for _, lg := range batch {
			l.done(lg, err == nil)
		}
		if err != nil {
			l.failed.Add(uint64(len(batch)))
			l.fail(err)
			l.drainFailed()
			return
		}
	}
}

// done resolves lg's part of its ack: written, or not (no ack then).
func (l *histLog) done(lg logged, written bool) {
	if lg.ack == nil {
		return
	}
	if !written {
		lg.ack.mu.Lock()
		lg.ack.unlogged = true
		lg.ack.mu.Unlock()
	}
	lg.ack.add(l.fl, wire.Tally{})
}

// drainFailed fails what is queued after the writer stopped.
func (l *histLog) drainFailed() {
	for {
		select {
		case lg := <-l.queue:
			l.failed.Add(1)
			l.done(lg, false)
		case <-time.After(time.Second):
			return
		}
	}
}

// write stores msg in the log, at the sequence after l.last. A log that
// has moved on means another router wrote it: what it wrote is applied
// (its positions are below this router's jump) and the write tried again,
// unless that router holds the lease. No answer (a stream electing its
// leader) is tried again, with the same message id (JetStream drops the
// repeat if the first got through), for up to 30 s (raft elects a
// stream's leader within about 10).
func (l *histLog) write(msg []byte) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := nats.NewMsg(l.subject)
		m.Data = msg
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(l.last, 10))
		m.Header.Set(jetstream.MsgIDHeader, l.name+"-"+strconv.FormatUint(l.last, 10))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ack, err := l.js.PublishMsg(ctx, m)
		cancel()
		if err == nil {
			l.last = ack.Sequence
			return nil
		}
		if subs.WrongLastSeq(err) {
			if err := l.catchUp(); err != nil {
				return err
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("router: history log not written for 30 s: %w", err)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// catchUp applies what another router wrote to the log after l.last (a
// leader paused past its lease, that has not yet learnt it lost it), if
// this router still holds the lease; else it is deposed.
func (l *histLog) catchUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !l.leaseHeld(ctx) {
		return errDeposed
	}
	info, err := l.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	err = l.read(ctx, l.last+1, info.State.LastSeq, func(_ uint64, data []byte, at time.Time) {
		if err := l.store.ApplyLogTo(data, time.Now().UnixNano(), l.frames.retakenAt(at), l.applyTopic); err != nil {
			l.badLog.Add(1)
		}
	})
	if err != nil {
		return err
	}
	l.log.Warn("the history log had moved on: another router wrote it while this one led; applied",
		zap.Uint64("from", l.last+1), zap.Uint64("to", info.State.LastSeq))
	l.last = info.State.LastSeq
	return nil
}
