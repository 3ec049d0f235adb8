package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// lead is a redundant router's part in the election: it holds or seeks
// the lease, and takes over the routing (and the history log, hist) when
// it gets it. Its methods used on the routing paths are safe on a nil
// *lead (a router that runs alone, which always routes).
type lead struct {
	r     *Router
	lease time.Duration
	// The lease's key (one per partition: leaseNames).
	key  string
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	hist *histLog

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
	fatal      chan error

	// The lease (the lead loop's goroutine only, until loopDone), and
	// since when a standby has seen it free.
	rev       uint64
	freeSince time.Time
	loopDone  chan struct{} // closed when run returns; nil if it never ran
	quit      chan struct{} // closed by release: the loop stops
	quitOnce  sync.Once

	// heldSeen (unix nanos): when a seek last saw the lease held.
	heldSeen atomic.Int64

	takeovers, notLeading atomic.Uint64
}

// leaderKnown says why no router is known to lead, or nil: this one
// leads, or a standby saw the lease held within two leases (nil alone).
func (l *lead) leaderKnown() error {
	if l == nil || l.leading.Load() {
		return nil
	}
	if seen := l.heldSeen.Load(); seen != 0 && time.Since(time.Unix(0, seen)) < 2*l.lease {
		return nil
	}
	return errors.New("router: a standby that has seen no leader for two leases")
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
func openLead(r *Router) (*lead, error) {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	l := &lead{r: r, lease: r.cfg.Lease, js: js, fatal: make(chan error, 1), quit: make(chan struct{})}
	h := &histLog{js: js, name: r.name, store: r.store, topics: r.thist, frames: r.frames, fl: r.fl, log: r.log,
		queue: make(chan logged, logQueue), stopWrite: make(chan struct{}), fail: l.fail, leaseHeld: l.leaseHeld}
	l.key, h.stream, h.subject = leaseNames(r.cfg.Partitions, r.cfg.Partition)
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
			h.st, err = js.CreateOrUpdateStream(try, jetstream.StreamConfig{
				Name: h.stream, Description: "comet: the history log (histories opened, positions given) of the router that leads",
				Subjects: []string{h.subject}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
				Discard: jetstream.DiscardOld, MaxAge: ret.MaxAge + time.Minute, MaxBytes: 4 * ret.MaxBytes,
				MaxMsgSize: 2 * maxLogMsg, Replicas: replicas, Duplicates: time.Minute,
			})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("router: redundant routers need JetStream for the lease and the history log: %w", err)
	}
	l.hist = h
	return l, h.startFollowing()
}

// histLog returns the lead's history log (nil alone).
func (l *lead) histLog() *histLog {
	if l == nil {
		return nil
	}
	return l.hist
}

// standby reports whether the router is a redundant one that does not
// lead now.
func (l *lead) standby() bool { return l != nil && !l.leading.Load() }

// takes reports whether the router routes a send frame now (it leads, or
// runs alone); one it does not take is counted.
func (l *lead) takes() bool {
	if l.standby() {
		l.notLeading.Add(1)
		return false
	}
	return true
}

// fatalErr is where the lead's end comes (nil alone: never).
func (l *lead) fatalErr() <-chan error {
	if l == nil {
		return nil
	}
	return l.fatal
}

// start runs the lead loop until done (nothing alone).
func (l *lead) start(done <-chan struct{}) {
	if l == nil {
		return
	}
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
	if answered && st.held {
		l.heldSeen.Store(time.Now().UnixNano())
	}
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

// leaseHeld asks the bucket whether the lease is this router's.
func (l *lead) leaseHeld(ctx context.Context) bool {
	e, err := l.kv.Get(ctx, l.key)
	return err == nil && string(e.Value()) == l.r.name
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
		l.r.up.resyncAll()
	}
}

// answers reports whether the router answers resumes now: it runs alone,
// or it leads and its lease is surely still its own.
func (l *lead) answers() bool {
	if l == nil {
		return true
	}
	if !l.leading.Load() {
		return false
	}
	if time.Now().UnixNano() < l.validUntil.Load() {
		return true
	}
	l.unanswered.Store(true)
	return false
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
	last, err := l.hist.applyToEnd(ctx, l.lease/8)
	if err != nil {
		l.giveBack("the history log", err)
		return nil
	}
	l.hist.lead(last)
	if last > 0 {
		r.store.Jump(jumpPositions)
	}
	l.leading.Store(true) // before the first frame can come
	if err := r.subscribeSenders(); err != nil {
		return err
	}
	l.takeovers.Add(1)
	n := r.up.resyncAll()
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
	streams := []string{"KV_" + leaderBucket, l.hist.stream}
	if r.cfg.Partitions > 1 {
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
		l.r.senders.stop(0)
	}
}

// release ends the lead when the router stops: no more sends taken, what
// was routed is logged (for a few seconds at most), and the lease is
// given up so a standby takes over at once.
func (l *lead) release() {
	if l == nil {
		return
	}
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
	r.senders.stop(2 * time.Second)
	l.leading.Store(false)
	// Up to 15 s: the log's stream may be electing a leader (a server
	// of the cluster restarted); the lease is kept meanwhile, so no
	// standby leads before every frame routed is in the log (a copy of
	// one sent again is then answered, not routed twice).
	if !l.hist.stop(15 * time.Second) {
		r.log.Warn("history log writes unfinished after 15 s: the lease is given up with them (their sends are not acked)")
	}
	for end := time.Now().Add(r.cfg.DeliverTimeout); r.fl.acksPending.Load() > 0 && time.Now().Before(end); {
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

func (l *lead) stats() *LeadStats {
	if l == nil {
		return nil
	}
	role := "standby"
	if l.leading.Load() {
		role = "leader"
	}
	h := l.hist
	return &LeadStats{
		Role: role, Takeovers: l.takeovers.Load(), LogMessages: h.msgs.Load(), LogBatches: h.records.Load(),
		LogApplied: h.applied.Load(), LogBad: h.badLog.Load(), LogFailed: h.failed.Load(), NotLeading: l.notLeading.Load(),
		LogReadDirect: h.direct.Load(),
	}
}

// ErrNoLeader: a standby could not route a send through the leader (none
// leads at the moment, or it did not answer); nothing was acked.
var ErrNoLeader = errors.New("router: no leading router took the send; retry")

// ErrNotLogged: the send was routed but its positions could not be
// written to the history log (the router lost the lead meanwhile): it is
// not acked.
var ErrNotLogged = errors.New("router: the send's positions were not logged (this router lost the lead); not acked")
