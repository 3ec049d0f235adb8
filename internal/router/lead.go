package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/wire"
)

// Redundant routers (docs/PROTOCOL.md, "Redundant routers"): with
// Config.Redundant, one router at a time leads: it holds a lease in a
// JetStream key-value bucket, takes the senders' frames and numbers the
// positions, and writes every history it opens and every position it
// gives to a JetStream stream (the history log) before it acks the send.
// The others follow: they apply the gateways' updates as the leader does
// and the history log to their own Store. When the lease ends (the leader
// stopped, died or was cut off), one of them takes it, applies the log to
// its end, moves every history past any position the old leader could
// have given without logging it (Store.Jump), and leads. The log is
// written with the sequence the writer expects it to be at
// (Nats-Expected-Last-Sequence), so two routers that both believe they
// lead cannot both write it: positions stay consistent whatever the
// timing of the lease.
const (
	leaderBucket = wire.LeaderBucket
	// jumpPositions is how far the router taking the lead moves every
	// history: more than any number of positions one router gives.
	jumpPositions = wire.TakeoverJump
	// maxLogMsg bounds one message of the history log.
	maxLogMsg = 512 << 10
	// logQueue bounds the batches waiting to be logged; past it the
	// routing waits.
	logQueue = 1024
)

// errDeposed is the end of a router that learns another leads.
var errDeposed = errors.New("router: another router took the lead (this one was cut off or paused past its lease); it stops: start it again and it follows as a standby")

// logged is a batch's records waiting to be written to the history log,
// and the ack that waits for it (nil: nobody waits).
type logged struct {
	rec []byte
	ack *pendingAck
}

// lead is a redundant router's part in the election and the history log.
type lead struct {
	r     *Router
	lease time.Duration
	// The lease's key, the history log's stream and subject: one of
	// each per partition (leaseNames).
	key, stream, subject string
	js                   jetstream.JetStream
	kv                   jetstream.KeyValue
	st                   jetstream.Stream

	// mu is held from a batch's first position to its records being
	// queued: the log holds positions in the order they were given.
	mu    sync.Mutex
	queue chan logged

	leading   atomic.Bool
	holds     atomic.Bool // the lease is this router's
	releasing atomic.Bool // stopping: the lease is kept until given up, never sought
	// validUntil (unix nanos): the lease was renewed recently enough
	// that no other router can hold it before then; past it the leader
	// answers no resume (it may have been deposed without knowing it),
	// and asks the gateways for their sessions again once renewed
	// (unanswered).
	validUntil atomic.Int64
	unanswered atomic.Bool
	follow     jetstream.ConsumeContext
	applied    atomic.Uint64 // the last log sequence applied while following
	applyMu    sync.Mutex    // held while a log message is applied
	direct     atomic.Uint64 // takeovers that read the log's end from the stream (the follower lagged)
	badLog     atomic.Uint64
	fatal      chan error
	stopWrite  chan struct{}
	written    sync.WaitGroup

	// The lease (the lead loop's goroutine only, until loopDone), and
	// since when a standby has seen it free.
	rev       uint64
	freeSince time.Time
	loopDone  chan struct{} // closed when run returns; nil if it never ran
	quit      chan struct{} // closed by release: the loop stops
	quitOnce  sync.Once
	// The log's last sequence (the writer's goroutine only, once leading).
	last uint64

	takeovers, logMsgs, logRecords, logFailed, notLeading atomic.Uint64
}

// leaseNames are the lease's key, and the history log's stream and
// subject, of partition k of n: "leader", COMET_HISTORY and
// comet.v3.history unpartitioned, else "leader-n-k", COMET_HISTORY_n_k
// and comet.v3.history.n.k.
func leaseNames(n, k int) (key, stream, subject string) {
	if n <= 1 {
		return "leader", "COMET_HISTORY", wire.SubjectHistory
	}
	part := fmt.Sprintf("%d_%d", n, k)
	return "leader-" + strings.ReplaceAll(part, "_", "-"), "COMET_HISTORY_" + part, wire.PartSubject(wire.SubjectHistory, n, k)
}

// openLead makes (or finds) the lease bucket and the history log, and
// starts following the log.
func (r *Router) openLead() error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	l := &lead{r: r, lease: r.cfg.Lease, js: js, queue: make(chan logged, logQueue), fatal: make(chan error, 1), stopWrite: make(chan struct{}), quit: make(chan struct{})}
	l.key, l.stream, l.subject = leaseNames(r.cfg.Partitions, r.cfg.Partition)
	replicas := max(r.cfg.StoreReplicas, 1)
	ret := r.store.Config()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = subs.WhileForming(ctx, func(try context.Context) (err error) {
		l.kv, err = js.CreateOrUpdateKeyValue(try, jetstream.KeyValueConfig{
			Bucket: leaderBucket, Description: "comet: the lease of the router that leads",
			TTL: l.lease, History: 1, Storage: jetstream.MemoryStorage, Replicas: replicas,
		})
		if err == nil {
			l.st, err = js.CreateOrUpdateStream(try, jetstream.StreamConfig{
				Name: l.stream, Description: "comet: the history log (histories opened, positions given) of the router that leads",
				Subjects: []string{l.subject}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
				Discard: jetstream.DiscardOld, MaxAge: ret.MaxAge + time.Minute, MaxBytes: 4 * ret.MaxBytes,
				MaxMsgSize: 2 * maxLogMsg, Replicas: replicas, Duplicates: time.Minute,
			})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("router: redundant routers need JetStream for the lease and the history log: %w", err)
	}
	r.lead = l
	return l.startFollowing()
}

// startFollowing applies the history log from its start to the store.
func (l *lead) startFollowing() error {
	cons, err := l.st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	l.follow, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		l.applyLog(meta.Sequence.Stream, m.Data(), meta.Timestamp, false)
	}, jetstream.PullMaxBytes(16<<20))
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	return nil
}

// applyLog applies history log message seq to the store, unless it was
// applied already (the follower and a takeover's direct reads may both
// have it). direct: only the next message after the last applied. at is
// when the message was stored.
func (l *lead) applyLog(seq uint64, data []byte, at time.Time, direct bool) {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if a := l.applied.Load(); seq <= a || (direct && seq != a+1) {
		return
	}
	if err := l.r.store.ApplyLog(data, time.Now().UnixNano(), l.r.frameRetaken(at)); err != nil {
		l.badLog.Add(1)
		l.r.log.Warn("malformed history log message", zap.Uint64("seq", seq), zap.Error(err))
	}
	l.applied.Store(seq)
}

// readLog reads history log messages from..to from the stream's leader
// and calls each for each, with the time it was stored (a sequence gone
// from the stream with nil).
func (l *lead) readLog(ctx context.Context, from, to uint64, each func(seq uint64, data []byte, at time.Time)) error {
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

// start runs the lead loop until done.
func (l *lead) start(done <-chan struct{}) {
	l.loopDone = make(chan struct{})
	go func() {
		defer close(l.loopDone)
		l.run(done)
	}()
}

// run holds or seeks the lease every quarter of it until done.
func (l *lead) run(done <-chan struct{}) {
	t := time.NewTicker(l.lease / 4)
	defer t.Stop()
	for {
		var err error
		if l.holds.Load() {
			err = l.renew()
		} else if !l.releasing.Load() {
			err = l.seek()
		}
		if err != nil {
			l.fail(err)
			return
		}
		select {
		case <-done:
			return
		case <-l.quit:
			return
		case <-t.C:
		}
	}
}

// fail ends the router's part: it stops taking sends, and Run returns err.
func (l *lead) fail(err error) {
	l.stopRouting()
	select {
	case l.fatal <- err:
	default:
	}
}

// seek takes the lease once the bucket's leader has said for half a
// lease that nobody holds it, and then the lead. The wait gives a leader
// whose renewals got no answer (the bucket's stream electing a leader:
// seconds on a loaded cluster, while the key's TTL runs out) the first
// chance to take its lease again when the bucket answers: it tries every
// quarter of a lease. A time with no answer starts the wait over.
func (l *lead) seek() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.lease)
	defer cancel()
	st, answered := l.leaseState(ctx)
	switch {
	case !answered || st.held:
		l.freeSince = time.Time{}
		return nil
	case l.freeSince.IsZero():
		l.freeSince = time.Now()
		return nil
	case time.Since(l.freeSince) < l.lease/2:
		return nil
	}
	asked := time.Now()
	rev, err := l.kv.Create(ctx, l.key, []byte(l.r.name))
	if err != nil {
		return nil // held by another, or no answer: try again
	}
	l.held(rev, asked)
	return l.takeOver()
}

// leaseState is the lease as the bucket's stream leader has it: held
// (not expired or deleted), by whom, at which revision.
type leaseState struct {
	held   bool
	holder string
	rev    uint64
}

// leaseState asks the lease bucket's stream leader for the lease key;
// answered is false when it does not answer. Not the key-value Get: it
// may be answered by a replica, which lets the key expire while the
// stream elects its leader and no write can be made (measured: a standby
// took a healthy leader's lease the moment the bucket answered again,
// and the deposed leader stopped).
func (l *lead) leaseState(ctx context.Context) (st leaseState, answered bool) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + leaderBucket + "." + l.key})
	m, err := l.r.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+leaderBucket, req)
	if err != nil {
		return st, false
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			ErrCode int `json:"err_code"`
		} `json:"error"`
	}
	switch {
	case json.Unmarshal(m.Data, &resp) != nil:
		return st, false
	case resp.Error != nil:
		return st, resp.Error.ErrCode == errCodeNoMessage // absent
	case resp.Message == nil:
		return st, false
	}
	// A delete or purge leaves a marker with a KV-Operation header.
	if bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation")) {
		return st, true
	}
	return leaseState{held: true, holder: string(resp.Message.Data), rev: resp.Message.Seq}, true
}

// errCodeNoMessage is JetStream's "no message found" (JSNoMessageFoundErr).
const errCodeNoMessage = 10037

// renew extends the lease. It errs if another router holds it.
func (l *lead) renew() error {
	// Tried again every quarter of a lease: a call that gets no answer
	// gives up by then (seek's wait counts on it).
	ctx, cancel := context.WithTimeout(context.Background(), l.lease/4)
	defer cancel()
	asked := time.Now()
	rev, err := l.kv.Update(ctx, l.key, []byte(l.r.name), l.rev)
	if err == nil {
		l.held(rev, asked)
		return nil
	}
	if !subs.WrongLastSeq(err) {
		l.r.log.Warn("lease not renewed", zap.Error(err))
		return nil // no answer: the log's fence keeps positions safe meanwhile
	}
	// Expired: ours again if nobody took it.
	if rev, err = l.kv.Create(ctx, l.key, []byte(l.r.name)); err == nil {
		l.held(rev, asked)
		l.r.log.Warn("lease had expired; taken again")
		return nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		// Held: by this router if a renewal went through but its
		// answer was lost (the revision it knows is then old).
		check, cancel := context.WithTimeout(context.Background(), l.lease/2)
		defer cancel()
		st, ok := l.leaseState(check)
		switch {
		case !ok:
			return nil // not known: asked again at the next renewal
		case st.held && st.holder == l.r.name:
			l.held(st.rev, asked)
			l.r.log.Warn("a lease renewal's answer was lost; the lease is this router's")
			return nil
		}
		l.holds.Store(false)
		return errDeposed
	}
	return nil
}

// held records the lease at revision rev, written at or after asked: no
// other router can take it for a lease from then (less a margin for the
// clocks' rates). Resumes left unanswered while it was in doubt are asked
// for again.
func (l *lead) held(rev uint64, asked time.Time) {
	l.rev = rev
	l.holds.Store(true)
	l.validUntil.Store(asked.Add(l.lease * 3 / 4).UnixNano())
	if l.unanswered.Swap(false) && l.leading.Load() {
		l.resyncAll()
	}
}

// answers reports whether the router answers resumes now: it leads, and
// its lease is surely still its own.
func (l *lead) answers() bool {
	if !l.leading.Load() {
		return false
	}
	if time.Now().UnixNano() < l.validUntil.Load() {
		return true
	}
	l.unanswered.Store(true)
	return false
}

// resyncAll asks every gateway for its logins and sessions.
func (l *lead) resyncAll() int {
	r := l.r
	r.upMu.Lock()
	defer r.upMu.Unlock()
	gws := r.peers()
	for _, gw := range gws {
		r.askResync(gw)
	}
	return len(gws)
}

// giveBack gives up a lease taken whose takeover could not be made now
// (why, err): a standby (this one again, at its next seek) tries later.
func (l *lead) giveBack(why string, err error) {
	l.r.log.Warn("took the lease but cannot lead yet; given back, to be tried again", zap.String("why", why), zap.Error(err))
	l.holds.Store(false)
	l.dropLease(l.lease / 2) // else it expires
}

// dropLease deletes the lease key if it is still this router's, waiting
// up to wait for the answer. A revision it does not know (a renewal got
// through but its answer was lost) is checked with the bucket's leader:
// still this router's, it is deleted at that revision.
func (l *lead) dropLease(wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	if err == nil || ctx.Err() != nil {
		return err
	}
	if st, answered := l.leaseState(ctx); answered && st.held && st.holder == l.r.name && st.rev != l.rev {
		return l.kv.Delete(ctx, l.key, jetstream.LastRevision(st.rev))
	}
	return err
}

// takeOver makes this router the leader: the log applied to its end,
// every history moved past what the old leader could have given, the
// senders' subjects subscribed, and every gateway asked for its logins
// and its clients' positions (their resumes fill what they lack).
func (l *lead) takeOver() error {
	r := l.r
	start := time.Now()
	// The lease is not renewed meanwhile: what does not answer within
	// half of it (the log's stream electing its leader after its server
	// died, say) is given up, and the lease with it, to be tried again
	// at the next seek (not a reason to stop).
	ctx, cancel := context.WithTimeout(context.Background(), l.lease/2)
	defer cancel()
	info, err := l.st.Info(ctx)
	if err != nil {
		l.giveBack("the history log does not answer", err)
		return nil
	}
	last := info.State.LastSeq
	for l.applied.Load() < last {
		if ctx.Err() != nil {
			l.giveBack("the history log is not applied yet", fmt.Errorf("applied to %d of %d", l.applied.Load(), last))
			return nil
		}
		if time.Since(start) > l.lease/8 {
			// The follower lags (its consumer was on a server that
			// stopped, and waits for missed heartbeats to start over:
			// seconds): read the rest from the stream's leader.
			if err := l.readLog(ctx, l.applied.Load()+1, last, func(seq uint64, data []byte, at time.Time) { l.applyLog(seq, data, at, true) }); err != nil {
				l.giveBack("the history log does not answer", err)
				return nil
			}
			l.direct.Add(1)
			continue
		}
		time.Sleep(time.Millisecond)
	}
	l.follow.Stop()
	l.last = last
	if last > 0 {
		r.store.Jump(jumpPositions)
	}
	l.leading.Store(true) // before the first frame can come
	if err := r.subscribeSenders(); err != nil {
		return err
	}
	l.takeovers.Add(1)
	l.written.Add(1)
	go l.writer()
	n := l.resyncAll()
	r.log.Info("took the lead", zap.Uint64("log_seq", last), zap.Int("gateways", n), zap.Duration("took", time.Since(start)))
	go l.moveStreamLeaders()
	return nil
}

// moveStreamLeaders asks the lease's and the log's streams to elect
// their leader on another server of the cluster if it is on the one this
// router embeds: when this router dies its server goes with it, and a
// stream that lost its leader elects another (seconds, raft's election
// timeouts) before it takes writes, which would hold up the standby
// taking over.
func (l *lead) moveStreamLeaders() {
	r := l.r
	if r.ns == nil || r.cfg.StoreReplicas < 2 {
		return
	}
	self := r.nc.ConnectedServerName()
	streams := []string{"KV_" + leaderBucket, l.stream}
	if r.part != nil {
		// The lease bucket is every partition's: its election would
		// hold up every partition's renewals (a CI run lost a leader of
		// the other partition so). Only this partition's log moves.
		streams = streams[1:]
	}
	for _, name := range streams {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := l.js.Stream(ctx, name)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader == self {
				_, err = r.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, nil)
				if err == nil {
					r.log.Info("stream leader moved off this router's server", zap.String("stream", name))
				}
			}
		}
		cancel()
		if err != nil {
			r.log.Warn("stream leader not moved", zap.String("stream", name), zap.Error(err))
		}
	}
}

// stopRouting stops taking sends at once (the router is deposed).
func (l *lead) stopRouting() {
	if l.leading.Swap(false) {
		l.r.unsubscribeSenders(0)
	}
}

// release ends the lead when the router stops: no more sends taken, what
// was routed is logged (for a few seconds at most), and the lease is
// given up so a standby takes over at once.
func (l *lead) release() {
	l.releasing.Store(true)
	stopLoop := func() {
		l.quitOnce.Do(func() { close(l.quit) })
		if l.loopDone != nil {
			<-l.loopDone // the loop owns the lease's revision
		}
	}
	if !l.leading.Load() {
		stopLoop()
		return
	}
	// Route what NATS holds for this router, let the log take it, and
	// let the gateways confirm it, so every send taken is acked before
	// the lease goes (each bounded: a few seconds at most). The loop
	// renews the lease meanwhile: no standby takes over before.
	r := l.r
	r.unsubscribeSenders(2 * time.Second)
	l.leading.Store(false)
	close(l.stopWrite)
	wait := make(chan struct{})
	go func() { l.written.Wait(); close(wait) }()
	// Up to 15 s: the log's stream may be electing a leader (a server
	// of the cluster restarted); the lease is kept meanwhile, so no
	// standby leads before every frame routed is in the log (a copy of
	// one sent again is then answered, not routed twice).
	select {
	case <-wait:
	case <-time.After(15 * time.Second):
		r.log.Warn("history log writes unfinished after 15 s: the lease is given up with them (their sends are not acked)")
	}
	for end := time.Now().Add(r.cfg.DeliverTimeout); r.acksPending.Load() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	stopLoop()
	if !l.holds.Load() {
		return
	}
	if err := l.dropLease(2 * time.Second); err != nil {
		l.r.log.Warn("lease not given up (a standby takes over when it expires)", zap.Error(err))
	}
}

// enqueue queues records for the log; ack (if any) waits for them to be
// written. mu must be held.
func (l *lead) enqueue(rec []byte, ack *pendingAck) {
	if ack != nil {
		ack.mu.Lock()
		ack.waiting++
		ack.mu.Unlock()
	}
	l.queue <- logged{rec, ack}
}

// writer writes queued records to the log, as many per message as came
// meanwhile (up to maxLogMsg), each message at the sequence it expects
// the log to be at.
func (l *lead) writer() {
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
			l.logMsgs.Add(1)
			l.logRecords.Add(uint64(len(batch)))
		}
		for _, lg := range batch {
			l.logDone(lg, err == nil)
		}
		if err != nil {
			l.logFailed.Add(uint64(len(batch)))
			l.fail(err)
			l.drainFailed()
			return
		}
	}
}

// logDone resolves lg's part of its ack: written, or not (no ack then).
func (l *lead) logDone(lg logged, written bool) {
	if lg.ack == nil {
		return
	}
	if !written {
		lg.ack.mu.Lock()
		lg.ack.unlogged = true
		lg.ack.mu.Unlock()
	}
	lg.ack.add(l.r, wire.Tally{})
}

// drainFailed fails what is queued after the writer stopped.
func (l *lead) drainFailed() {
	for {
		select {
		case lg := <-l.queue:
			l.logFailed.Add(1)
			l.logDone(lg, false)
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
func (l *lead) write(msg []byte) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := nats.NewMsg(l.subject)
		m.Data = msg
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(l.last, 10))
		m.Header.Set(jetstream.MsgIDHeader, l.r.name+"-"+strconv.FormatUint(l.last, 10))
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
func (l *lead) catchUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := l.kv.Get(ctx, l.key)
	if err != nil || string(e.Value()) != l.r.name {
		return errDeposed
	}
	info, err := l.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("router: history log: %w", err)
	}
	err = l.readLog(ctx, l.last+1, info.State.LastSeq, func(_ uint64, data []byte, at time.Time) {
		if err := l.r.store.ApplyLog(data, time.Now().UnixNano(), l.r.frameRetaken(at)); err != nil {
			l.badLog.Add(1)
		}
	})
	if err != nil {
		return err
	}
	l.r.log.Warn("the history log had moved on: another router wrote it while this one led; applied",
		zap.Uint64("from", l.last+1), zap.Uint64("to", info.State.LastSeq))
	l.last = info.State.LastSeq
	return nil
}

// LeadStats is a redundant router's part (absent on a router that runs
// alone).
type LeadStats struct {
	Role string `json:"role"` // "leader" or "standby"
	// Takeovers: times this router took the lead.
	Takeovers uint64 `json:"takeovers"`
	// The history log: messages and batches written (leader), the last
	// sequence applied (standby), malformed messages, batches that could
	// not be written (their sends were not acked), send frames that came
	// while not leading (not acked).
	LogMessages uint64 `json:"log_messages"`
	LogBatches  uint64 `json:"log_batches"`
	LogApplied  uint64 `json:"log_applied"`
	LogBad      uint64 `json:"log_bad"`
	LogFailed   uint64 `json:"log_failed"`
	NotLeading  uint64 `json:"not_leading"`
	// LogReadDirect: takeovers that read the log's end from the stream
	// because the follower lagged.
	LogReadDirect uint64 `json:"log_read_direct"`
}

func (r *Router) leadStats() *LeadStats {
	l := r.lead
	if l == nil {
		return nil
	}
	role := "standby"
	if l.leading.Load() {
		role = "leader"
	}
	return &LeadStats{
		Role: role, Takeovers: l.takeovers.Load(), LogMessages: l.logMsgs.Load(), LogBatches: l.logRecords.Load(),
		LogApplied: l.applied.Load(), LogBad: l.badLog.Load(), LogFailed: l.logFailed.Load(), NotLeading: l.notLeading.Load(),
		LogReadDirect: l.direct.Load(),
	}
}

// forward routes a send frame through the leader (an HTTP send made to a
// standby) and returns what its ack says.
func (r *Router) forward(frame []byte) (SendResult, error) {
	m, err := r.nc.Request(wire.SubjectSend, frame, r.cfg.DeliverTimeout+r.cfg.OverloadWait+time.Second)
	if err != nil {
		return SendResult{}, fmt.Errorf("%w: %w", ErrNoLeader, err)
	}
	rec, err := wire.ParseAck(m.Data)
	if err != nil {
		return SendResult{}, fmt.Errorf("%w: the leader's answer: %w", ErrNoLeader, err)
	}
	return SendResult{Kept: rec.Kept > 0, Tally: rec.Tally}, nil
}

// standby reports whether the router is a redundant one that does not
// lead now.
func (r *Router) standby() bool { return r.lead != nil && !r.lead.leading.Load() }

// ErrNoLeader: a standby could not route a send through the leader (none
// leads at the moment, or it did not answer); nothing was acked.
var ErrNoLeader = errors.New("router: no leading router took the send; retry")

// ErrNotLogged: the send was routed but its positions could not be
// written to the history log (the router lost the lead meanwhile): it is
// not acked.
var ErrNotLogged = errors.New("router: the send's positions were not logged (this router lost the lead); not acked")
