package gateway

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/latency"
	"github.com/cometgw/comet/internal/wire"
)

// maxUpFrame bounds a gateway-to-router frame; NATS's default max payload
// is 1 MiB.
const maxUpFrame = 256 << 10

// link is the gateway's side of the router protocol. It batches logins and
// logouts into up frames (one NATS message carries every update made while
// the previous one was being published), sends a heartbeat every second,
// hands each down frame to the hub as one batch, and tells the router that
// sent it, in a done record, what became of its copies once the hub's
// writers are through with it: the router's window for this gateway (see
// docs/PROTOCOL.md) opens again only then.
type link struct {
	nc       *nats.Conn
	name     string
	instance uint64
	log      *zap.Logger
	hub      *hub.Hub
	sub      atomic.Pointer[nats.Subscription] // the down subscription, once made
	inbound  int                               // the down subscription's pending bytes limit
	// How long a down frame waited for the hub to take it (the writers'
	// queues full): the gateway's backpressure on the router.
	submitWait latency.Histogram

	mu sync.Mutex
	// up holds the up frames of each partition of the ids (one without
	// partitioned routers), published to its own subject.
	up    []upStream
	dones map[string][]byte // done frames being filled, by the reply subject (router) they go to
	// What the sessions that joined topics joined (resync repeats it);
	// sessions without topics cost nothing here.
	topics map[uint64]hub.Joins
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	downDec wire.Decoder
	downRec wire.Record
	batches sync.Pool // *downFrame

	published, badFrames, publishErrs atomic.Uint64
	inboundPeak                       atomic.Int64
}

// upStream is the up frames to the routers of one partition.
type upStream struct {
	subject string
	frames  [][]byte // full frames waiting to be published
	cur     []byte   // the frame being filled
	live    uint64   // logins announced and not yet logged out
}

// downFrame is one down frame's batch for the hub.
type downFrame struct {
	hub.Batch
	seq   uint64
	reply string
}

func newLink(nc *nats.Conn, name string, instance uint64, inbound, partitions int, log *zap.Logger) *link {
	l := &link{
		nc: nc, name: name, instance: instance, inbound: inbound, log: log,
		up:     make([]upStream, max(partitions, 1)),
		dones:  make(map[string][]byte),
		topics: make(map[uint64]hub.Joins),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	for k := range l.up {
		l.up[k].subject = wire.PartSubject(wire.SubjectUp, len(l.up), k)
	}
	l.batches.New = func() any {
		f := new(downFrame)
		f.Done = func(*hub.Batch) { l.frameDone(f) }
		return f
	}
	return l
}

// start subscribes to the gateway's down subject, says hello and starts
// the publisher and heartbeat.
func (l *link) start(hub *hub.Hub) error {
	l.hub = hub
	sub, err := l.nc.Subscribe(wire.DownSubject(l.name), l.handleDown)
	if err != nil {
		return err
	}
	// The routers' windows bound what is in flight to this gateway; the
	// limit is what NATS holds for it meanwhile, with room for several
	// routers and resume catch-ups. Past it NATS would drop frames (and
	// say so: nats_dropped in /stats, a log line); the routers then count
	// the copies as lost with the gateway.
	sub.SetPendingLimits(l.inbound/128, l.inbound)
	l.sub.Store(sub)
	if err := l.nc.Flush(); err != nil {
		return err
	}
	l.mu.Lock()
	l.each(-1, func(u *upStream) { u.hello(0, l.nc.ConnectedServerName()) })
	l.mu.Unlock()
	l.signal()
	l.wg.Add(1)
	go l.publisher()
	return nil
}

// server tells the routers the NATS server the gateway is connected to
// now (after a reconnection).
func (l *link) server(name string) {
	l.mu.Lock()
	l.each(-1, func(u *upStream) { u.cur = wire.AppendServer(u.cur, name) })
	l.mu.Unlock()
	l.signal()
}

// header returns partition k's up stream with a frame open. l.mu must be
// held.
func (l *link) header(k int) *upStream {
	u := &l.up[k]
	if len(u.cur) == 0 {
		u.cur = wire.AppendUpHeader(u.cur, wire.KindUp, l.name, l.instance)
	}
	return u
}

// each calls f with the up stream of partition part (-1: of every
// partition), a frame open. l.mu must be held.
func (l *link) each(part int, f func(u *upStream)) {
	for k := range l.up {
		if part < 0 || k == part {
			f(l.header(k))
		}
	}
}

// hello appends a hello record (a start with conns 0, or a resync's
// count) and the NATS server the gateway is on. l.mu must be held.
func (u *upStream) hello(conns uint64, server string) {
	u.cur = wire.AppendServer(wire.AppendHello(u.cur, conns), server)
}

// of returns the up stream of id's partition with a frame open. l.mu
// must be held.
func (l *link) of(id int64) *upStream { return l.header(wire.Partition(id, len(l.up))) }

// rotate moves u's frame aside once full. l.mu must be held.
func (u *upStream) rotate() {
	if len(u.cur) >= maxUpFrame {
		u.frames = append(u.frames, u.cur)
		u.cur = nil
	}
}

func (l *link) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Opened implements hub.Listener: the conn logs in as id and joins
// topics.
func (l *link) Opened(conn uint64, id int64, j hub.Joins) {
	l.mu.Lock()
	u := l.of(id)
	if j.Rewind > 0 && len(j.Topics) > 0 {
		u.cur = wire.AppendRewind(u.cur, conn, uint64(j.Rewind))
		j.Rewind = 0 // a resync's login asks for none
	}
	u.appendLogin(conn, id, j)
	u.live++
	if len(j.Topics) > 0 || j.Allowed != nil {
		l.topics[conn] = j
	}
	u.rotate()
	l.mu.Unlock()
	l.signal()
}

// appendLogin appends conn's login record. l.mu must be held.
func (u *upStream) appendLogin(conn uint64, id int64, j hub.Joins) {
	if len(j.Topics) > 0 {
		u.cur = wire.AppendLoginTopics(u.cur, conn, id, j.Topics, j.Presence)
	} else {
		u.cur = wire.AppendLogin(u.cur, conn, id)
	}
}

// Resume implements hub.Listener: the conn logs in as id, joins topics
// and resumes after cur.
func (l *link) Resume(conn uint64, id int64, cur cursor.Cursor, j hub.Joins) {
	l.mu.Lock()
	u := l.of(id)
	if j.Rewind > 0 && len(j.Topics) > 0 && cur.IsZero() { // one that continues from a cursor has what it had
		u.cur = wire.AppendRewind(u.cur, conn, uint64(j.Rewind))
	}
	j.Rewind = 0 // a resync's resume asks for none
	u.appendResume(conn, id, cur, j)
	u.live++
	if len(j.Topics) > 0 || j.Allowed != nil {
		l.topics[conn] = j
	}
	u.rotate()
	l.mu.Unlock()
	l.signal()
}

// appendResume appends conn's resume record. l.mu must be held.
func (u *upStream) appendResume(conn uint64, id int64, cur cursor.Cursor, j hub.Joins) {
	if len(j.Topics) > 0 {
		u.cur = wire.AppendResumeTopics(u.cur, conn, id, cur.Epoch, cur.Seq, j.Topics, j.Presence)
	} else {
		u.cur = wire.AppendResume(u.cur, conn, id, cur.Epoch, cur.Seq)
	}
}

// join adds topics to what conn (logged in as id) is in, and tells the
// routers: a WebSocket client's join request. It refuses a topic the
// client's token does not allow, or more than wire.MaxConnTopics in
// all; resumable says the client resumes. Called with the session's
// lock held, like the Listener's methods.
func (l *link) join(conn uint64, id int64, resumable bool, topics []string, presence bool, rewind int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	j := l.topics[conn]
	var add []string
	for _, t := range topics {
		if !wire.ValidTopic([]byte(t)) {
			return errNotTopic(t)
		}
		if j.Allowed != nil && !slices.Contains(j.Allowed, "*") && !slices.Contains(j.Allowed, t) {
			return fmt.Errorf("token does not allow topic %s", t)
		}
		if !slices.Contains(j.Topics, t) && !slices.Contains(add, t) {
			add = append(add, t)
		}
	}
	if len(j.Topics)+len(add) > wire.MaxConnTopics {
		return fmt.Errorf("a connection joins at most %d topics", wire.MaxConnTopics)
	}
	if len(add) == 0 {
		return nil
	}
	// A new slice: the old one may be in a resync's hands.
	j.Topics = append(slices.Clip(j.Topics), add...)
	j.Presence = j.Presence || presence
	l.topics[conn] = j
	u := l.of(id)
	if rewind > 0 {
		u.cur = wire.AppendRewind(u.cur, conn, uint64(rewind))
	}
	u.cur = wire.AppendJoin(u.cur, conn, id, resumable, add, presence)
	u.rotate()
	l.signal()
	return nil
}

// part takes topics out of what conn (logged in as id) is in, and tells
// the routers.
func (l *link) part(conn uint64, id int64, topics []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	j, ok := l.topics[conn]
	if !ok {
		return
	}
	var gone, kept []string
	for _, t := range j.Topics {
		if slices.Contains(topics, t) {
			gone = append(gone, t)
		} else {
			kept = append(kept, t)
		}
	}
	if len(gone) == 0 {
		return
	}
	j.Topics = kept
	l.topics[conn] = j
	u := l.of(id)
	u.cur = wire.AppendPart(u.cur, conn, gone)
	u.rotate()
	l.signal()
}

// in reports whether conn is in topic.
func (l *link) in(conn uint64, topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.topics[conn].Topics, topic)
}

// tokenHeld says whether conn's client came in with a token (its
// topics are bounded by the token's claim).
func (l *link) tokenHeld(conn uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topics[conn].Allowed != nil
}

// errNotTopic says why t is not a topic name.
func errNotTopic(t string) error {
	return fmt.Errorf("%q is not a topic: want 1 to %d bytes, each one of A-Z a-z 0-9 and . _ - : (no other)", clip(t), wire.MaxTopic)
}

// Closed implements hub.Listener: the conn, logged in as id, logs out.
func (l *link) Closed(conn uint64, id int64) {
	l.mu.Lock()
	u := l.of(id)
	u.cur = wire.AppendLogout(u.cur, conn)
	u.live--
	delete(l.topics, conn)
	u.rotate()
	l.mu.Unlock()
	l.signal()
}

func (l *link) publisher() {
	defer l.wg.Done()
	hb := time.NewTicker(time.Second)
	defer hb.Stop()
	for {
		select {
		case <-l.kick:
		case <-hb.C:
			l.mu.Lock()
			l.each(-1, func(u *upStream) { u.cur = wire.AppendHeartbeat(u.cur, u.live) })
			l.mu.Unlock()
		case <-l.done:
			l.flush()
			return
		}
		l.flush()
	}
}

// flush publishes every pending frame, in order per partition, and the
// done frames.
func (l *link) flush() {
	type out struct {
		subject string
		frames  [][]byte
	}
	var ups [4]out
	l.mu.Lock()
	frames := ups[:0]
	for k := range l.up {
		u := &l.up[k]
		if len(u.cur) > 0 {
			u.frames = append(u.frames, u.cur)
		}
		if len(u.frames) > 0 {
			frames = append(frames, out{u.subject, u.frames})
		}
		u.frames, u.cur = nil, nil
	}
	var dones map[string][]byte
	if len(l.dones) > 0 {
		dones, l.dones = l.dones, make(map[string][]byte, len(l.dones))
	}
	l.mu.Unlock()
	for _, o := range frames {
		for _, f := range o.frames {
			l.publish(o.subject, f)
		}
	}
	for subj, f := range dones {
		l.publish(subj, f)
	}
}

func (l *link) publish(subject string, f []byte) {
	if err := l.nc.Publish(subject, f); err != nil {
		l.publishErrs.Add(1)
		l.log.Warn("publish to router failed", zap.String("subject", subject), zap.Error(err))
		return
	}
	l.published.Add(1)
}

// frameDone is called by the hub when a down frame's batch is through:
// the router that sent it gets a done record (in the next done frame to
// it), and the batch goes back to the pool.
func (l *link) frameDone(f *downFrame) {
	if f.seq != 0 && f.reply != "" {
		t := f.Tally
		l.mu.Lock()
		d := l.dones[f.reply]
		if len(d) == 0 {
			d = wire.AppendUpHeader(d, wire.KindDone, l.name, l.instance)
		}
		l.dones[f.reply] = wire.AppendDone(d, f.seq, wire.Tally{Delivered: t.Queued, Gone: t.Gone, Slow: t.Slow, Dup: t.Dup, Late: t.Late})
		l.mu.Unlock()
		l.signal()
	}
	f.Reset()
	f.reply = ""
	l.batches.Put(f)
}

// handleDown hands a down frame's deliveries and resume answers to the
// hub as one batch (its messages alias the frame, which NATS gave this
// callback to keep), and answers resync requests. The hub's Submit waits
// while the writers are behind: NATS then holds the next frames, which the
// routers' windows bound.
func (l *link) handleDown(m *nats.Msg) {
	if sub := l.sub.Load(); sub != nil {
		if _, b, err := sub.Pending(); err == nil && int64(b) > l.inboundPeak.Load() {
			l.inboundPeak.Store(int64(b))
		}
	}
	h, err := l.downDec.Reset(m.Data)
	if err == nil && h.Kind != wire.KindDown {
		err = errWrongKind
	}
	if err != nil {
		l.badFrames.Add(1)
		l.log.Warn("bad frame from router", zap.Error(err))
		return
	}
	f := l.batches.Get().(*downFrame)
	f.seq, f.reply = h.Seq, m.Reply
	r := &l.downRec
	var fanout []byte // the message of the last fanout record
	var event uint8   // and its type (hub.EventPresence...)
	for l.downDec.Next(r) {
		switch r.Op {
		case wire.OpFanout:
			fanout, event = r.Msg, hub.EventMessage
		case wire.OpFanoutPresence:
			fanout, event = r.Msg, hub.EventPresence
		case wire.OpFanoutTo:
			if fanout == nil {
				l.badFrames.Add(1)
				l.log.Warn("bad frame from router: fanout-to without a fanout")
				continue
			}
			if event != hub.EventMessage {
				f.DeliverEvent(event, fanout, r.Conns)
				continue
			}
			f.Deliver(fanout, cursor.Cursor{Epoch: r.Epoch, Seq: r.Seq}, r.Conns)
		case wire.OpBroadcastAll:
			f.DeliverAll(r.Msg)
		case wire.OpKick:
			f.Kick(r.Conns)
		case wire.OpDeliver:
			f.Deliver(r.Msg, cursor.Cursor{}, r.Conns)
		case wire.OpDeliverAt:
			f.Deliver(r.Msg, cursor.Cursor{Epoch: r.Epoch, Seq: r.Seq}, r.Conns)
		case wire.OpResumed:
			f.Resumed(r.Conn, r.Epoch, r.Seq, r.Head, r.Missed)
		case wire.OpResync:
			l.resync(-1)
		case wire.OpResyncPart:
			if r.Count >= uint64(len(l.up)) {
				l.badFrames.Add(1)
				l.log.Warn("resync asked for a partition this gateway does not have: are the routers and this gateway given the same -partitions?",
					zap.Uint64("partition", r.Count), zap.Int("partitions", len(l.up)))
				continue
			}
			l.resync(int(r.Count))
		}
	}
	if err := l.downDec.Err(); err != nil {
		l.badFrames.Add(1)
		l.log.Warn("bad frame from router", zap.Error(err))
	}
	start := time.Now()
	l.hub.Submit(&f.Batch)
	l.submitWait.Since(start)
}

// resync sends a hello and then every live login, ordered with concurrent
// opens and closes (see hub.Hub.Snapshot), to the routers of partition
// part (-1: of every partition).
func (l *link) resync(part int) {
	l.mu.Lock()
	l.each(part, func(u *upStream) { u.hello(u.live, l.nc.ConnectedServerName()) })
	l.mu.Unlock()
	n := 0
	l.hub.Snapshot(func(conn uint64, id int64, resumable bool, cur cursor.Cursor) {
		k := wire.Partition(id, len(l.up))
		if part >= 0 && k != part {
			return
		}
		l.mu.Lock()
		u := l.header(k)
		if resumable {
			u.appendResume(conn, id, cur, l.topics[conn])
		} else {
			u.appendLogin(conn, id, l.topics[conn])
		}
		u.rotate()
		l.mu.Unlock()
		n++
	})
	l.signal()
	l.log.Info("resync sent to router", zap.Int("logins", n), zap.Int("partition", part))
}

// stop says bye, publishes what is pending and drains the connection.
func (l *link) stop() {
	l.mu.Lock()
	l.each(-1, func(u *upStream) { u.cur = wire.AppendBye(u.cur) })
	l.mu.Unlock()
	close(l.done)
	l.wg.Wait()
	if err := l.nc.Drain(); err != nil {
		l.nc.Close()
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	l.nc.Close()
}

// inboundStats reads the down subscription: bytes NATS holds for it now,
// the most seen, and frames dropped past its limit.
func (l *link) inboundStats() (bytes, peak int64, dropped uint64) {
	sub := l.sub.Load()
	if sub == nil {
		return 0, 0, 0
	}
	if _, b, err := sub.Pending(); err == nil {
		bytes = int64(b)
	}
	if d, err := sub.Dropped(); err == nil && d > 0 {
		dropped = uint64(d)
	}
	return bytes, max(l.inboundPeak.Load(), bytes), dropped
}
