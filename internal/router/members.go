package router

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// members is the gateways' side of the router: it applies their up
// frames (hello, logins, logouts, joins, resumes, heartbeats, bye) to the
// gateway table, the registry and the topics, answers resumes from the
// histories, asks a gateway for its logins when it lost count, and
// forgets gateways that went silent.
type members struct {
	gws    *gateways
	fl     *flows
	reg    *registry.Registry
	store  *retention.Store
	topics *topics.Index
	thist  *topichist.Store // nil: topics keep no history
	stored *storedSubs
	lead   *lead
	hist   *histLog
	part   *partition
	nc     *nats.Conn
	log    *zap.Logger
	c      *counters
	// timeout forgets a silent gateway; deliverTimeout fails its
	// unconfirmed flights.
	timeout, deliverTimeout time.Duration

	// mu serializes the up frames and the purges; it guards what
	// follows and the peers' fields that say so.
	mu      sync.Mutex
	dec     wire.Decoder
	rec     wire.Record
	buf     []byte   // resume answers
	one     []uint64 // one conn
	keptBuf []retention.Entry
	// rewind: the conn whose next join asks for kept messages (a rewind
	// record just before it), and how many of each topic.
	rewindConn, rewindN uint64
	rewindBuf           []topichist.Entry

	strayWarned sync.Map // gateways named already by handleStray
}

// handleUp applies one gateway frame: logins, logouts, heartbeats.
func (m *members) handleUp(msg *nats.Msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, err := m.dec.Reset(msg.Data)
	if err != nil || h.Kind != wire.KindUp {
		m.c.badFrames.Add(1)
		m.log.Warn("bad frame on up subject", zap.Error(err), zap.Stringer("kind", h.Kind))
		return
	}
	gw := m.gws.named(h.Gateway)
	fresh := false
	if gw == nil || gw.instance != h.Instance {
		if gw != nil {
			n := m.forget(gw)
			m.log.Info("gateway restarted", zap.String("gateway", gw.name), zap.Int("purged", n))
		}
		gw = m.gws.add(h.Gateway, h.Instance)
		m.log.Info("gateway joined", zap.String("gateway", gw.name), zap.Uint64("instance", gw.instance))
		fresh = true
	}
	gw.lastSeen.Store(time.Now().UnixNano())
	rec := &m.rec
	first := true
	for m.dec.Next(rec) {
		if first && fresh && rec.Op != wire.OpHello && rec.Op != wire.OpBye {
			// A gateway we do not know that is not starting: we (the
			// router) restarted or forgot it. Ask for its logins.
			m.log.Info("unknown gateway, asking for its logins", zap.String("gateway", gw.name))
			m.askResync(gw)
		}
		first = false
		m.apply(gw, rec, fresh)
	}
	if err := m.dec.Err(); err != nil {
		m.c.badFrames.Add(1)
		m.log.Warn("bad frame from gateway", zap.String("gateway", gw.name), zap.Error(err))
	}
}

// apply applies one up record of gw (fresh: just added). mu is held.
func (m *members) apply(gw *peer, rec *wire.Record, fresh bool) {
	conn := registry.Conn{GW: gw.idx, Conn: rec.Conn}
	switch rec.Op {
	case wire.OpHello:
		if !fresh || gw.conns.Load() != 0 {
			gw.conns.Store(0)
			m.reg.LogoutGateway(gw.idx)
			m.topics.LeaveGateway(gw.idx, m.store.Has)
		}
		gw.resyncAt = time.Time{}
		gw.mismatches = 0
		m.log.Info("gateway hello", zap.String("gateway", gw.name), zap.Uint64("conns", rec.Count))
	case wire.OpServer:
		if gw.server != string(rec.Server) {
			gw.server = string(rec.Server)
			m.log.Info("gateway's NATS server", zap.String("gateway", gw.name), zap.String("server", gw.server))
		}
	case wire.OpLogin:
		m.login(gw, rec.ID, rec.Conn)
	case wire.OpRewind:
		m.rewindConn, m.rewindN = rec.Conn, min(rec.Count, topichist.MaxRewind)
		return // for the next record
	case wire.OpLoginTopics:
		m.topics.JoinThen(conn, rec.ID, false, rec.Presence, rec.Topics, m.rewind(gw, rec.Conn))
		m.login(gw, rec.ID, rec.Conn)
	case wire.OpJoin:
		m.topics.JoinThen(conn, rec.ID, rec.Resumable, rec.Presence, rec.Topics, m.rewind(gw, rec.Conn))
	case wire.OpPart:
		m.topics.Part(conn, rec.Topics)
	case wire.OpResume:
		m.resume(gw, rec.Conn, rec.ID, cursor.Cursor{Epoch: rec.Epoch, Seq: rec.Seq})
	case wire.OpResumeTopics:
		// Joined first: the resume's catch-up is what was kept for
		// these topics (and sent to the id). A client with no cursor
		// (a fresh one) resumes from where the id's history was before
		// the join: what is published to the topics from the join on
		// is in the catch-up or live, never between the two. Only such
		// a client is given a rewind (one with a cursor continues).
		cur := cursor.Cursor{Epoch: rec.Epoch, Seq: rec.Seq}
		var then func([][]byte)
		if cur.IsZero() {
			cur = m.store.Head(rec.ID)
			then = m.rewind(gw, rec.Conn)
		}
		m.topics.JoinThen(conn, rec.ID, true, rec.Presence, rec.Topics, then)
		m.resume(gw, rec.Conn, rec.ID, cur)
	case wire.OpLogout:
		m.topics.Leave(conn, m.store.Has)
		if m.reg.Logout(conn) > 0 {
			gw.conns.Add(-1)
			m.c.logouts.Add(1)
		}
	case wire.OpHeartbeat:
		if int64(rec.Count) != gw.conns.Load() && gw.resyncAt.IsZero() {
			// Frames are applied in the order the gateway wrote
			// them, so a mismatch means a frame was lost.
			gw.mismatches++
			m.log.Warn("gateway login count mismatch", zap.String("gateway", gw.name),
				zap.Uint64("gateway_says", rec.Count), zap.Int64("router_has", gw.conns.Load()))
			m.askResync(gw)
		}
	case wire.OpBye:
		n := m.forget(gw)
		m.log.Info("gateway bye", zap.String("gateway", gw.name), zap.Int("purged", n))
	}
	m.rewindConn, m.rewindN = 0, 0 // a rewind is for the record right after it
}

// rewind returns what a join of conn does, under the topics' lock, with
// the topics it joined: if a rewind record asked for it (and this router
// answers, and topics keep a history), send the gateway, in one down
// frame, up to that many of each topic's kept messages for conn, before
// any live one (nil: nothing to do). mu is held.
func (m *members) rewind(gw *peer, conn uint64) func(joined [][]byte) {
	n := m.rewindN
	if m.rewindConn != conn || n == 0 || !m.thist.Keeps() || !m.lead.answers() {
		return nil
	}
	return func(joined [][]byte) {
		now := time.Now().UnixNano()
		o := m.startOut(gw, conn)
		rewound := uint64(0)
		for _, t := range joined {
			m.rewindBuf, _ = m.thist.Read(t, 0, 0, int(n), now, m.rewindBuf[:0])
			for _, e := range m.rewindBuf {
				o.room()
				o.f = wire.AppendDeliver(o.f, e.Msg, m.one)
				o.copies++
			}
			rewound += uint64(len(m.rewindBuf))
		}
		clear(m.rewindBuf)
		if rewound == 0 {
			return // nothing kept
		}
		m.c.rewound.Add(rewound)
		// Sent before the topics' lock is released: before any live
		// copy.
		o.send()
	}
}

// login logs gw's conn in as id. mu is held.
func (m *members) login(gw *peer, id int64, conn uint64) {
	if newConn, newPair := m.reg.Login(id, registry.Conn{GW: gw.idx, Conn: conn}); newPair {
		m.c.logins.Add(1)
		if newConn {
			gw.conns.Add(1)
		}
	}
}

// resume logs gw's conn in as id and sends the gateway, in one down frame
// ordered before any later delivery to conn, where the conn's client
// continues and every kept message from there. mu is held.
//
// The catch-up holds what was sent to id and what was published to the
// topics conn joined; a message of another topic is left out (its
// position is a gap the client skips), and the answer's head is the last
// position the catch-up carries.
func (m *members) resume(gw *peer, conn uint64, id int64, cur cursor.Cursor) {
	if !m.lead.answers() {
		// A standby: the leader answers. The login is all it needs.
		// (A leader whose lease is in doubt answers once it is
		// renewed, by a resync.)
		m.login(gw, id, conn)
		return
	}
	// The history it opens is logged in order with the positions.
	m.hist.lock()
	defer m.hist.unlock()
	ts := m.topics.TopicsOf(registry.Conn{GW: gw.idx, Conn: conn})
	ts = m.stored.topicsOf(id, ts)
	h := m.store.Lock(id)
	defer h.Unlock()
	res, kept := h.Resume(cur)
	kept = m.filterKept(kept, ts)
	if len(kept) > 0 {
		res.Head = kept[len(kept)-1].Seq
	} else if res.Head >= res.From {
		res.Head = res.From - 1
	}
	if res.Opened {
		m.hist.enqueue(retention.AppendOpen(nil, id, res.Epoch), nil)
	}
	m.login(gw, id, conn)
	m.c.resumes.Add(1)
	if res.Missed {
		m.c.missed.Add(1)
	}
	o := m.startOut(gw, conn)
	o.f = wire.AppendResumed(o.f, conn, res.Epoch, res.From, res.Head, res.Missed)
	for _, e := range kept {
		o.room()
		o.f = wire.AppendDeliverAt(o.f, res.Epoch, e.Seq, e.Msg, m.one)
		o.copies++
	}
	m.c.caughtUp.Add(uint64(len(kept)))
	// The catch-up is published now, under the id's lock, whatever the
	// window: it is ordered before any later send to the conn, and
	// bounded by what the router keeps for the id.
	o.send()
}

// connOut is down frames to one conn of a gateway, in order: a resume's
// answer and catch-up, a rewind. Each is published, whatever the
// gateway's window (what they carry is bounded by what the router
// keeps), when it reaches maxDownFrame (room) and at the end (send).
// mu is held: it writes into m.buf and m.one.
type connOut struct {
	m      *members
	gw     *peer
	seq    uint64
	f      []byte
	copies uint64
}

// startOut opens the first frame to conn (m.one holds it).
func (m *members) startOut(gw *peer, conn uint64) connOut {
	m.one[0] = conn
	seq := gw.nextSeq.Add(1)
	return connOut{m: m, gw: gw, seq: seq, f: wire.AppendDownHeader(m.buf[:0], seq)}
}

// room publishes the frame once full and opens the next.
func (o *connOut) room() {
	if len(o.f) >= maxDownFrame {
		o.m.fl.send(o.gw, o.seq, o.f, o.copies, nil, false)
		o.seq, o.copies = o.gw.nextSeq.Add(1), 0
		o.f = wire.AppendDownHeader(o.f[:0], o.seq)
	}
}

// send publishes the last frame and keeps its buffer for the next.
func (o *connOut) send() {
	o.m.fl.send(o.gw, o.seq, o.f, o.copies, nil, false)
	if cap(o.f) <= 4*maxDownFrame {
		o.m.buf = o.f[:0]
	}
}

// filterKept returns the entries of kept a client in ts gets: those sent
// to its id and those published to one of its topics. It filters into
// m.keptBuf (mu is held) when something is left out.
func (m *members) filterKept(kept []retention.Entry, ts []string) []retention.Entry {
	all := true
	for i := range kept {
		if kept[i].Topic != "" && !slices.Contains(ts, kept[i].Topic) {
			all = false
			break
		}
	}
	if all {
		return kept
	}
	out := m.keptBuf[:0]
	for _, e := range kept {
		if e.Topic == "" || slices.Contains(ts, e.Topic) {
			out = append(out, e)
		}
	}
	m.keptBuf = out
	return out
}

// sweep forgets gateways that went silent, repeats resyncs that were not
// answered, and fails the flights a live gateway never confirmed.
func (m *members) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := now.Add(-m.timeout).UnixNano()
	stale := now.Add(-m.deliverTimeout).UnixNano()
	for _, gw := range m.gws.all() {
		switch {
		case gw.lastSeen.Load() < limit:
			n := m.forget(gw)
			m.log.Warn("gateway silent, forgotten", zap.String("gateway", gw.name), zap.Int("conns", n),
				zap.Duration("timeout", m.timeout))
			continue
		case !gw.resyncAt.IsZero() && now.Sub(gw.resyncAt) > m.timeout:
			m.askResync(gw)
		}
		// Frames a live gateway did not confirm within the deliver
		// timeout: their copies are counted lost (the acks err on the
		// side of loss). Lost on the way (say, while its NATS
		// connection was down) or only slow (a broadcast to a million
		// streams takes longer)? A later frame confirmed before them
		// says lost: the gateway is then asked for its sessions, and a
		// resuming client whose copy was lost gets it from the catch-up
		// of its resume. A slow one is not: asking every gateway busy
		// with a broadcast for all its sessions at once is what made
		// the router fall behind on heartbeats and forget 47 of 53
		// (bench-fanout FULL=1).
		if n := m.fl.failFlights(gw, stale); n > 0 {
			m.c.unconfirmed.Add(uint64(n))
		}
		if m.fl.takeLost(gw) && gw.resyncAt.IsZero() {
			m.log.Warn("a down frame was lost on the way (a later one was confirmed first); asking the gateway for its sessions", zap.String("gateway", gw.name))
			m.askResync(gw)
		}
	}
}

// forget purges gw's logins and drops it. mu is held.
func (m *members) forget(gw *peer) int {
	n := m.reg.LogoutGateway(gw.idx)
	m.topics.LeaveGateway(gw.idx, m.store.Has)
	m.c.purges.Add(1)
	m.gws.remove(gw)
	m.fl.forget(gw)
	return n
}

// askResync asks gw to send every live login again. mu is held.
func (m *members) askResync(gw *peer) {
	gw.resyncAt = time.Now()
	gw.mismatches = 0
	m.c.resyncs.Add(1)
	frame := m.part.appendResync(wire.AppendDownHeader(make([]byte, 0, 8), 0))
	if err := m.nc.Publish(gw.subject, frame); err != nil {
		m.log.Warn("resync request failed", zap.String("gateway", gw.name), zap.Error(err))
	}
}

// resyncAll asks every gateway for its logins and sessions.
func (m *members) resyncAll() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	gws := m.gws.all()
	for _, gw := range gws {
		m.askResync(gw)
	}
	return len(gws)
}

// handleStray counts an up frame sent where this router does not read
// up frames (a gateway given another -partitions than the routers': a
// partitioned gateway's to an unpartitioned router, or the reverse) and
// says once per gateway how to mend it.
func (m *members) handleStray(msg *nats.Msg) {
	m.c.strayUp.Add(1)
	var d wire.Decoder
	h, err := d.Reset(msg.Data)
	if err != nil {
		return
	}
	if _, seen := m.strayWarned.LoadOrStore(h.Gateway, true); !seen {
		n := 1
		if m.part != nil {
			n = m.part.n
		}
		m.log.Error("a gateway sends its logins where this router does not read them: give it the routers' -partitions, or its clients get nothing",
			zap.String("gateway", h.Gateway), zap.String("subject", msg.Subject), zap.Int("partitions", n))
	}
}

// gatewayStats describes every gateway, sorted by name.
func (m *members) gatewayStats() []GatewayStats {
	out := []GatewayStats{}
	m.mu.Lock()
	m.fl.mu.Lock()
	m.gws.each(func(gw *peer) bool {
		out = append(out, GatewayStats{
			Name: gw.name, Instance: gw.instance, Conns: gw.conns.Load(),
			LastSeen: time.Unix(0, gw.lastSeen.Load()).UTC().Format(time.RFC3339Nano), NATSServer: gw.server,
			InflightBytes: gw.inflight, InflightFrames: len(gw.flights),
		})
		return true
	})
	m.fl.mu.Unlock()
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b GatewayStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}
