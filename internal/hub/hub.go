//go:build linux

package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/fdtable"
	"github.com/cometgw/comet/internal/latency"
	"github.com/cometgw/comet/internal/netpoll"
)

// Hub owns every open session. See the package doc.
type Hub struct {
	cfg      Config
	kinds    []Kind
	traits   []Traits
	log      *zap.Logger
	listener Listener
	table    *fdtable.Table[session]
	peers    []uint32 // by descriptor: Request.Peer, while Config.Release is set
	poller   *netpoll.Poller
	pool     sync.Pool    // *outbuf pending output
	scratch  sync.Pool    // *scratch for Open
	inPool   sync.Pool    // *inbuf held input
	readers  []Reader     // by kind: the kind, if it reads its clients' input
	inputs   *inputs      // held input of reading sessions; nil if no kind reads
	held     atomic.Int64 // bytes of every inbuf (inbuf.size): Config.InputBudget

	// The loop's ready list: sessions with more input than one turn
	// reads (Config.ReadBudget). ready is appended to under readyMu (the
	// loop, and ResumeInput's goroutine); spare is the loop's own.
	readyMu sync.Mutex
	ready   []uint64
	spare   []uint64

	closeMu sync.RWMutex // held for reading by deliveries and opens, for writing by Close
	closed  bool
	queues  []chan *Batch
	workers sync.WaitGroup
	loops   sync.WaitGroup // the epoll loop and the sweeper
	stop    chan struct{}

	// How long batches waited in the writers' queues, and how long a
	// writer's round (apply and write) took: the gateway's stages of a
	// delivery's latency (Latencies).
	queueWait, roundTime, outputWait latency.Histogram
	delays                           []atomic.Int64 // each writer's current write delay (adapt)

	clock      atomic.Int64  // unix nanos, refreshed by the sweeper
	idle       atomic.Uint64 // float64 bits: the machine's idle CPU fraction over the last sweep
	sweeps     atomic.Uint64 // sweeps so far: writers adapt their delay once per sweep
	open       atomic.Int64
	byKind     [MaxKinds]atomic.Int64
	opened     atomic.Uint64
	closes     [numReasons]atomic.Uint64
	messages   atomic.Uint64
	bytes      atomic.Uint64
	stale      atomic.Uint64
	rejected   atomic.Uint64
	dups       atomic.Uint64
	late       atomic.Uint64
	heartbeats atomic.Uint64
	throttled  atomic.Uint64             // times a session's input was throttled (Session.Throttle)
	lost       [numReasons]atomic.Uint64 // messages pending when their session closed, by reason

	tally  sync.Mutex
	copies Tally // of every batch
}

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("hub: closed")

// New starts a hub serving sessions of kinds (a Request's Kind is an index
// into it): its epoll goroutine, its writers and its sweeper. l hears of
// every login and logout.
func New(cfg Config, kinds []Kind, l Listener, log *zap.Logger) (*Hub, error) {
	if len(kinds) == 0 || len(kinds) > MaxKinds {
		return nil, fmt.Errorf("hub: %d kinds of session (want 1 to %d)", len(kinds), MaxKinds)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	p, err := netpoll.New()
	if err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:      cfg,
		kinds:    kinds,
		log:      log,
		listener: l,
		table:    fdtable.New[session](cfg.MaxSessions),
		poller:   p,
		stop:     make(chan struct{}),
	}
	if cfg.Release != nil {
		h.peers = make([]uint32, h.table.Cap())
	}
	for _, k := range kinds {
		t := k.Traits()
		r, _ := k.(Reader)
		if t.Reads && r == nil {
			return nil, fmt.Errorf("hub: kind %s reads input but has no Input method", t.Name)
		}
		if !t.Reads {
			r = nil
		}
		h.traits = append(h.traits, t)
		h.readers = append(h.readers, r)
		if r != nil && h.inputs == nil {
			h.inputs = newInputs(h.table.Cap())
		}
	}
	// Most output gathered in a round is a few messages: buffers start
	// small (every session a round writes holds one until the round's
	// write) and grow as a slow client's output does.
	h.pool.New = func() any { return &outbuf{b: make([]byte, 0, 512)} }
	h.scratch.New = func() any { return new(scratch) }
	h.inPool.New = func() any { return new(inbuf) }
	h.clock.Store(time.Now().UnixNano())
	h.idle.Store(math.Float64bits(1))
	h.queues = make([]chan *Batch, cfg.Workers)
	h.delays = make([]atomic.Int64, cfg.Workers)
	for i := range h.queues {
		h.queues[i] = make(chan *Batch, cfg.QueueLen)
		h.workers.Add(1)
		go h.writer(i, h.queues[i])
	}
	h.loops.Add(2)
	go h.loop()
	go h.sweeper()
	return h, nil
}

// Config returns the hub's configuration with defaults applied.
func (h *Hub) Config() Config { return h.cfg }

// Open takes over c, a connection whose request r describes (hijacked
// from the HTTP server), and makes it a session: the listener is told,
// the kind writes its response head, and the socket joins the epoll set.
// c must not be used after; the caller's goroutine returns at once, and
// the session holds no goroutine.
func (h *Hub) Open(c net.Conn, r Request) error {
	fd, err := TakeFD(c)
	if err != nil {
		h.rejected.Add(1)
		h.releasePeer(r.Peer)
		return err
	}
	return h.OpenFD(fd, r)
}

// OpenFD is Open for a socket the gateway accepted itself: fd is a
// non-blocking socket whose request has been read. The hub owns fd from
// here on, whatever the outcome.
func (h *Hub) OpenFD(fd int, r Request) error {
	if r.Kind < 0 || r.Kind >= len(h.kinds) {
		unix.Close(fd)
		h.releasePeer(r.Peer)
		h.rejected.Add(1)
		return fmt.Errorf("hub: no kind of session %d", r.Kind)
	}
	if fd >= h.table.Cap() {
		unix.Write(fd, []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\ngateway stream limit hit"))
		unix.Close(fd)
		h.releasePeer(r.Peer)
		h.rejected.Add(1)
		return fmt.Errorf("hub: fd %d beyond the session limit %d", fd, h.table.Cap())
	}
	if h.cfg.SendBuffer > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, h.cfg.SendBuffer)
	}
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		unix.Close(fd)
		h.releasePeer(r.Peer)
		h.rejected.Add(1)
		return ErrClosed
	}
	sl := h.table.Open(fd)
	defer sl.Unlock()
	if h.peers != nil {
		// Under the slot's lock: the session that had this descriptor
		// before has released its peer.
		h.peers[fd] = r.Peer
	}
	sl.V = session{id: r.ID, kind: uint8(r.Kind), kflags: r.Perm, clock: h.clock.Load(), expires: expiry(r.Expires)}
	resumable := h.traits[r.Kind].Resumable
	if resumable {
		sl.V.epoch, sl.V.n = r.Cursor.Epoch, r.Cursor.Seq
	}
	h.open.Add(1)
	h.byKind[r.Kind].Add(1)
	h.opened.Add(1)
	// Tell the listener first so that every close, even one right below,
	// follows the login. No message can be delivered to the session
	// before the router has heard of it.
	if h.listener != nil {
		if resumable {
			h.listener.Resume(sl.Key(), r.ID, r.Cursor, Joins{Topics: r.Topics, Presence: r.Presence, Rewind: r.Rewind, Allowed: r.Allowed})
		} else {
			h.listener.Opened(sl.Key(), r.ID, Joins{Topics: r.Topics, Presence: r.Presence, Rewind: r.Rewind, Allowed: r.Allowed})
		}
	}
	sc := h.scratch.Get().(*scratch)
	defer h.scratch.Put(sc)
	defer sc.trim()
	h.kinds[r.Kind].Open(Session{h, sl, sc}, &r)
	if len(r.Input) > 0 && sl.IsOpen() && h.readers[r.Kind] != nil {
		h.input(sl, r.Input, sc)
	}
	if !sl.IsOpen() {
		return nil // closed, and counted, while writing its head
	}
	if err := h.poller.Add(fd, sl.Gen()); err != nil {
		h.close(sl, ReasonWriteError)
		return err
	}
	return nil
}

// With calls fn with conn's session, its lock held, if it is still
// open, and reports whether it was. fn acts as a Kind method does (its
// writes go out at once); it must not block.
func (h *Hub) With(conn uint64, fn func(s Session)) bool {
	sl := h.table.LookupKey(conn)
	if sl == nil {
		return false
	}
	defer sl.Unlock()
	sc := h.scratch.Get().(*scratch)
	fn(Session{h, sl, sc})
	sc.trim()
	h.scratch.Put(sc)
	return true
}

// releasePeer gives a peer count back (Config.Release).
func (h *Hub) releasePeer(p uint32) {
	if p != 0 && h.cfg.Release != nil {
		h.cfg.Release(p)
	}
}

// takePeer returns and forgets the peer of sl's descriptor. sl's lock
// must be held.
func (h *Hub) takePeer(sl *slot) uint32 {
	if h.peers == nil {
		return 0
	}
	p := &h.peers[sl.FD()]
	v := *p
	*p = 0
	return v
}

// expiry is t in the slot's unix seconds, rounded up; 0 for the zero
// time. Times past 2106 are held as the last second a uint32 holds.
func expiry(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return uint32(min(max(s, 1), math.MaxUint32))
}

// Snapshot calls fn for every open session, with that session's lock
// held: resumable says its kind is, and cur is then its cursor (what it
// has; zero if it started from now and has nothing yet).
func (h *Hub) Snapshot(fn func(conn uint64, id int64, resumable bool, cur cursor.Cursor)) {
	h.table.Each(func(sl *slot) {
		v := &sl.V
		fn(sl.Key(), v.id, h.traits[v.kind].Resumable, cursor.Cursor{Epoch: v.epoch, Seq: v.n})
	})
}

// Len is the number of open sessions.
func (h *Hub) Len() int { return int(h.open.Load()) }

// Stats are the hub's counters.
type Stats struct {
	Open     int64             `json:"open"`
	OpenKind map[string]int64  `json:"open_by_kind"`
	Opened   uint64            `json:"opened"`
	Closed   map[string]uint64 `json:"closed"`
	Messages uint64            `json:"messages"`
	Bytes    uint64            `json:"bytes"`
	Stale    uint64            `json:"stale"`
	Rejected uint64            `json:"rejected"`
	// Deliveries dropped because the session already had that position
	// (a resume that overlapped live deliveries), deliveries to a
	// finished session (a long-poll after its answer: the router keeps
	// them for the next poll) or with a position to a session whose
	// resume the router has not answered (its answer will carry them),
	// and heartbeats written.
	Duplicates uint64 `json:"duplicates"`
	Late       uint64 `json:"late"`
	Heartbeats uint64 `json:"heartbeats"`
	// Copies of every batch from the router, by fate (queued, gone,
	// slow, dup, late), and messages that were still pending output when
	// their session closed, by close reason: what the gateway took and
	// then lost with a client it closed.
	Copies      Tally             `json:"copies"`
	LostPending map[string]uint64 `json:"lost_pending"`
	// Writes is the write(2) calls on session sockets: Messages / Writes
	// is how many messages a write carries on average.
	Writes uint64 `json:"writes"`
	// Throttled counts the times a client's input was paused until the
	// next second for its request rate (Session.Throttle).
	Throttled uint64 `json:"throttled"`
	// InputHeld is the bytes held for reading sessions' incomplete input
	// (Config.InputBudget bounds it).
	InputHeld int64 `json:"input_held"`
	// WriteDelay is the largest write delay a writer applies now
	// (Config.WriteDelay): at most what gathering adds to a delivery.
	WriteDelay time.Duration `json:"write_delay_ns"`
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	st := Stats{
		Open:       h.open.Load(),
		OpenKind:   make(map[string]int64, len(h.kinds)),
		Opened:     h.opened.Load(),
		Closed:     make(map[string]uint64, numReasons),
		Messages:   h.messages.Load(),
		Bytes:      h.bytes.Load(),
		Stale:      h.stale.Load(),
		Rejected:   h.rejected.Load(),
		Duplicates: h.dups.Load(),
		Late:       h.late.Load(),
		Heartbeats: h.heartbeats.Load(),
		Writes:     writes.Load(),
		InputHeld:  h.held.Load(),
		Throttled:  h.throttled.Load(),
	}
	for i, t := range h.traits {
		st.OpenKind[t.Name] = h.byKind[i].Load()
	}
	for i := range h.delays {
		st.WriteDelay = max(st.WriteDelay, time.Duration(h.delays[i].Load()))
	}
	st.LostPending = make(map[string]uint64, numReasons)
	for i := range h.closes {
		st.Closed[Reason(i).String()] = h.closes[i].Load()
		st.LostPending[Reason(i).String()] = h.lost[i].Load()
	}
	h.tally.Lock()
	st.Copies = h.copies
	h.tally.Unlock()
	return st
}

// Closes returns how many sessions closed for why.
func (h *Hub) Closes(why Reason) uint64 { return h.closes[why].Load() }

// Drain ends every open session, spread evenly over period but at least
// minRate a second (a few sessions end at once: their reconnecting is no
// storm), each as at shutdown with ReasonDrained (Kind.Shutdown writes
// its last bytes: a WebSocket's close 1012, an SSE stream's jittered
// retry:, a long-poll's answer), so the clients come back at moments of
// their own rather than all in one second. Sessions opened meanwhile are
// ended at the end. It returns when all are ended or ctx ends. Call it
// before Close, after the listener stopped accepting.
func (h *Hub) Drain(ctx context.Context, period time.Duration, minRate int) {
	var keys []uint64
	h.table.Each(func(sl *slot) { keys = append(keys, sl.Key()) })
	n := len(keys)
	if n == 0 {
		return
	}
	if minRate > 0 {
		period = min(period, time.Duration(n)*time.Second/time.Duration(minRate))
	}
	h.log.Info("draining sessions", zap.Int("sessions", n), zap.Duration("over", period))
	sc := new(scratch)
	end := func(k uint64) {
		if sl := h.table.LookupKey(k); sl != nil {
			h.finish(sl, sc, ReasonDrained)
			sl.Unlock()
			sc.trim()
		}
	}
	start := time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for i := 0; i < n; {
		// Every session whose moment has come (i/n of the period).
		due := n
		if period > 0 {
			due = min(n, int(int64(time.Since(start))*int64(n)/int64(period))+1)
		}
		for ; i < due; i++ {
			end(keys[i])
		}
		if i == n {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	h.table.Each(func(sl *slot) { h.finish(sl, sc, ReasonDrained) })
}

// Close stops the hub: it writes every queued delivery, lets every
// session write its last bytes (Kind.Shutdown), closes the sockets
// (telling the listener of each) and stops its goroutines. Output a client
// has not taken within the socket's buffers is dropped.
func (h *Hub) Close() {
	h.closeMu.Lock()
	if h.closed {
		h.closeMu.Unlock()
		return
	}
	h.closed = true
	for _, q := range h.queues {
		close(q)
	}
	h.closeMu.Unlock()
	h.workers.Wait()

	close(h.stop)
	h.poller.Close()
	h.loops.Wait()
	h.poller.Release()

	sc := new(scratch)
	h.table.Each(func(sl *slot) { h.finish(sl, sc, ReasonShutdown) })
}

// finish ends a session as at shutdown: its kind writes its last bytes
// (Kind.Shutdown), they are written, and it closes for why.
func (h *Hub) finish(sl *slot, sc *scratch, why Reason) {
	sc.why = why
	h.kinds[sl.V.kind].Shutdown(Session{h, sl, sc})
	if sl.IsOpen() {
		h.flush(sl, sc)
	}
	h.close(sl, why)
}
