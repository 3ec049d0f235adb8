//go:build linux

package chunked

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/netpoll"
)

// Listener hears about streams opening and closing. Both calls are made
// with the stream's lock held, so that, for one conn, they are ordered with
// Hub.Snapshot; they must not block.
type Listener interface {
	Opened(conn uint64, id int64)
	Closed(conn uint64)
}

// Reason says why a stream was closed.
type Reason uint8

// Close reasons.
const (
	ReasonPeer       Reason = iota // the client closed or reset the connection
	ReasonSlow                     // pending output passed Config.MaxPending
	ReasonTimeout                  // pending output made no progress for Config.WriteTimeout
	ReasonWriteError               // a write failed
	ReasonProtocol                 // the client sent more than a stream client may
	ReasonShutdown                 // the gateway is shutting down
	numReasons
)

var reasonNames = [numReasons]string{"peer", "slow", "timeout", "write_error", "protocol", "shutdown"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons lists every close reason, for metrics.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Config configures a Hub. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// MaxPending bounds the output kept for a stream whose socket does not
	// take it; past it the stream is closed (ReasonSlow). Default 64 KiB.
	MaxPending int
	// WriteTimeout closes a stream whose pending output has made no
	// progress for this long (ReasonTimeout). Default 10s.
	WriteTimeout time.Duration
	// Workers is the number of goroutines writing messages. Default
	// GOMAXPROCS.
	Workers int
	// QueueLen is the number of delivery batches each worker queues before
	// Deliver waits. Default 1024.
	QueueLen int
	// SendBuffer sets SO_SNDBUF on every stream socket. Default 0: the
	// kernel's default (autotuned).
	SendBuffer int
	// MaxStreams bounds the open streams, and so the file descriptor
	// numbers a stream may use. Default: the process's open-files limit.
	MaxStreams int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	max := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur > 0 && rl.Cur < 1<<24 {
		max = int(rl.Cur)
	}
	return Config{
		MaxPending:   64 << 10,
		WriteTimeout: 10 * time.Second,
		Workers:      runtime.GOMAXPROCS(0),
		QueueLen:     1024,
		MaxStreams:   max,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.QueueLen <= 0 {
		c.QueueLen = d.QueueLen
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = d.MaxStreams
	}
	return c
}

const (
	stateFree uint8 = iota
	stateOpen
)

// session is one stream: 56 bytes, stored inline in Hub.slots at the index
// of its file descriptor. An idle stream owns nothing else.
type session struct {
	mu      sync.Mutex
	gen     uint32 // bumped on every open; the high half of the conn number
	fd      int32
	id      int64
	n       uint64  // messages written, for "Recvd msg #N"
	pending *[]byte // output the socket did not take yet; nil when idle
	stalled int64   // unix nanos of the last write progress while pending
	state   uint8
	http10  bool // no chunked framing: the body ends when the conn closes
}

func (s *session) conn() uint64 { return uint64(s.gen)<<32 | uint64(uint32(s.fd)) }

// Stats are the hub's counters.
type Stats struct {
	Open     int64             `json:"open"`
	Opened   uint64            `json:"opened"`
	Closed   map[string]uint64 `json:"closed"`
	Messages uint64            `json:"messages"`
	Bytes    uint64            `json:"bytes"`
	Stale    uint64            `json:"stale"`
	Rejected uint64            `json:"rejected"`
}

type job struct {
	body  []byte // the message, already escaped
	conns []uint64
}

// Hub owns every open stream. See the package doc.
type Hub struct {
	cfg      Config
	log      *zap.Logger
	listener Listener
	slots    []session // by descriptor; only the pages up to maxFD are touched
	poller   *netpoll.Poller
	pool     sync.Pool // *[]byte pending buffers

	closeMu  sync.RWMutex // held for reading by Deliver, for writing by Close
	closed   bool
	queues   []chan job
	workers  sync.WaitGroup
	pollerWG sync.WaitGroup
	stop     chan struct{}

	maxFD    netpoll.HighWater // scans of slots stop there
	open     atomic.Int64
	opened   atomic.Uint64
	closes   [numReasons]atomic.Uint64
	messages atomic.Uint64
	bytes    atomic.Uint64
	stale    atomic.Uint64
	rejected atomic.Uint64
}

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("chunked: hub closed")

// NewHub starts a hub: its epoll goroutine, its writers and its write
// deadline sweeper.
func NewHub(cfg Config, l Listener, log *zap.Logger) (*Hub, error) {
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
		log:      log,
		listener: l,
		slots:    make([]session, cfg.MaxStreams),
		poller:   p,
		stop:     make(chan struct{}),
	}
	h.pool.New = func() any { b := make([]byte, 0, 4096); return &b }
	h.queues = make([]chan job, cfg.Workers)
	for i := range h.queues {
		h.queues[i] = make(chan job, cfg.QueueLen)
		h.workers.Add(1)
		go h.writer(h.queues[i])
	}
	h.pollerWG.Add(2)
	go h.pollLoop()
	go h.sweeper()
	return h, nil
}

// Config returns the hub's configuration with defaults applied.
func (h *Hub) Config() Config { return h.cfg }

// rawConn unwraps fasthttp's hijacked connection.
func rawConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return c
}

// takeFD duplicates c's socket descriptor and closes c, leaving the hub the
// only owner of the socket (non-blocking, close-on-exec).
func takeFD(c net.Conn) (int, error) {
	raw := rawConn(c)
	sc, ok := raw.(syscall.Conn)
	if !ok {
		raw.Close()
		return -1, fmt.Errorf("chunked: %T has no file descriptor", raw)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		raw.Close()
		return -1, fmt.Errorf("chunked: %w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		derr = err
	}
	raw.Close()
	if derr != nil {
		return -1, fmt.Errorf("chunked: dup: %w", derr)
	}
	return fd, nil
}

// Open takes over c (a hijacked connection whose request was GET /test/id)
// and makes it a stream: it writes the response head and the welcome chunk,
// tells the listener, and watches the socket. c must not be used after.
// The caller's goroutine returns at once; the stream holds no goroutine.
func (h *Hub) Open(c net.Conn, id int64, http10 bool) error {
	fd, err := takeFD(c)
	if err != nil {
		h.rejected.Add(1)
		return err
	}
	if fd >= len(h.slots) {
		unix.Write(fd, []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\ngateway stream limit hit"))
		unix.Close(fd)
		h.rejected.Add(1)
		return fmt.Errorf("chunked: fd %d beyond the stream limit %d", fd, len(h.slots))
	}
	if h.cfg.SendBuffer > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, h.cfg.SendBuffer)
	}
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		unix.Close(fd)
		h.rejected.Add(1)
		return ErrClosed
	}
	h.maxFD.Raise(fd)
	s := &h.slots[fd]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.fd, s.id, s.n, s.state, s.http10, s.pending = int32(fd), id, 0, stateOpen, http10, nil
	h.open.Add(1)
	h.opened.Add(1)

	var buf [256]byte
	head := buf[:0]
	if http10 {
		head = append(head, StreamHeader10...)
		head = AppendWelcome(head, id)
	} else {
		head = append(head, StreamHeader...)
		var w [64]byte
		head = AppendChunk(head, AppendWelcome(w[:0], id))
	}
	// Tell the listener first so that every close, even one right below,
	// follows an Opened. No message can be delivered to the conn before
	// the router has heard of it.
	if h.listener != nil {
		h.listener.Opened(s.conn(), id)
	}
	if !h.writeLocked(s, head) {
		return nil // closed, and counted, by writeLocked
	}
	if err := h.poller.Add(fd, s.gen); err != nil {
		h.closeLocked(s, ReasonWriteError, true)
		return err
	}
	return nil
}

// writeLocked writes p to s, keeping what the socket does not take. It
// returns false if s was closed.
func (h *Hub) writeLocked(s *session, p []byte) bool {
	if s.pending != nil {
		if len(*s.pending)+len(p) > h.cfg.MaxPending {
			h.closeLocked(s, ReasonSlow, true)
			return false
		}
		*s.pending = append(*s.pending, p...)
		return true
	}
	n, err := writeFD(int(s.fd), p)
	if err != nil {
		h.closeLocked(s, ReasonWriteError, true)
		return false
	}
	h.bytes.Add(uint64(n))
	if n < len(p) {
		if len(p)-n > h.cfg.MaxPending {
			h.closeLocked(s, ReasonSlow, true)
			return false
		}
		bp := h.pool.Get().(*[]byte)
		*bp = append((*bp)[:0], p[n:]...)
		s.pending = bp
		s.stalled = time.Now().UnixNano()
	}
	return true
}

// writeFD writes as much of p as the socket takes without blocking.
func writeFD(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == nil:
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return done, nil
		default:
			return done, err
		}
	}
	return done, nil
}

// flushLocked writes s's pending output.
func (h *Hub) flushLocked(s *session) {
	if s.pending == nil {
		return
	}
	p := *s.pending
	n, err := writeFD(int(s.fd), p)
	if err != nil {
		h.closeLocked(s, ReasonWriteError, true)
		return
	}
	h.bytes.Add(uint64(n))
	if n == len(p) {
		h.releasePending(s)
		return
	}
	if n > 0 {
		*s.pending = p[:copy(p, p[n:])]
		s.stalled = time.Now().UnixNano()
	}
}

func (h *Hub) releasePending(s *session) {
	if s.pending == nil {
		return
	}
	if cap(*s.pending) <= 64<<10 {
		h.pool.Put(s.pending)
	}
	s.pending = nil
}

// closeLocked closes s's socket and frees its slot.
func (h *Hub) closeLocked(s *session, why Reason, tell bool) {
	if s.state != stateOpen {
		return
	}
	conn := s.conn()
	unix.Close(int(s.fd))
	s.state = stateFree
	h.releasePending(s)
	h.open.Add(-1)
	h.closes[why].Add(1)
	if tell && h.listener != nil {
		h.listener.Closed(conn)
	}
	if why != ReasonPeer && why != ReasonShutdown && h.log.Core().Enabled(zap.DebugLevel) {
		h.log.Debug("stream closed", zap.Int64("id", s.id), zap.Uint64("conn", conn), zap.Stringer("reason", why))
	}
}

// lookup returns the session for conn, locked, or nil if it has closed.
func (h *Hub) lookup(conn uint64) *session {
	fd := uint32(conn)
	if uint64(fd) >= uint64(len(h.slots)) {
		return nil
	}
	s := &h.slots[fd]
	s.mu.Lock()
	if s.state != stateOpen || s.gen != uint32(conn>>32) {
		s.mu.Unlock()
		return nil
	}
	return s
}

// Deliver queues msg for every stream in conns. Each stream gets its
// messages in the order Deliver was called for it. Deliver waits while the
// writers' queues are full; after Close it drops msg.
func (h *Hub) Deliver(msg []byte, conns []uint64) {
	if len(conns) == 0 {
		return
	}
	body := AppendHTMLEscaped(make([]byte, 0, len(msg)+len(msg)/8), msg)
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		return
	}
	w := len(h.queues)
	if w == 1 || len(conns) == 1 {
		h.queues[int(uint32(conns[0]))%w] <- job{body, append([]uint64(nil), conns...)}
		return
	}
	parts := make([][]uint64, w)
	for _, c := range conns {
		i := int(uint32(c)) % w
		parts[i] = append(parts[i], c)
	}
	for i, p := range parts {
		if len(p) > 0 {
			h.queues[i] <- job{body, p}
		}
	}
}

func (h *Hub) writer(q chan job) {
	defer h.workers.Done()
	var scratch []byte
	var msg [128]byte
	for j := range q {
		for _, c := range j.conns {
			s := h.lookup(c)
			if s == nil {
				h.stale.Add(1)
				continue
			}
			s.n++
			m := AppendHTMLMessage(msg[:0], s.n, j.body)
			if s.http10 {
				scratch = append(scratch[:0], m...)
			} else {
				scratch = AppendChunk(scratch[:0], m)
			}
			if h.writeLocked(s, scratch) {
				h.messages.Add(1)
			}
			s.mu.Unlock()
		}
		if cap(scratch) > 256<<10 {
			scratch = nil
		}
	}
}

func (h *Hub) pollLoop() {
	defer h.pollerWG.Done()
	var buf [2048]byte
	err := h.poller.Wait(func(fd int, tag uint32, ev uint32) {
		s := h.lookup(uint64(tag)<<32 | uint64(uint32(fd)))
		if s == nil {
			return
		}
		defer s.mu.Unlock()
		if ev&(netpoll.Hup|netpoll.Err|netpoll.RdHup) != 0 {
			h.closeLocked(s, ReasonPeer, true)
			return
		}
		if ev&netpoll.In != 0 {
			// A stream client has nothing to say; read and drop what it
			// sends (edge-triggered: until EAGAIN), within a bound.
			total := 0
			for {
				n, err := unix.Read(fd, buf[:])
				if n > 0 {
					total += n
					if total > 64<<10 {
						h.closeLocked(s, ReasonProtocol, true)
						return
					}
					continue
				}
				if err == unix.EINTR {
					continue
				}
				if err == unix.EAGAIN {
					break
				}
				// n == 0: end of stream; or a read error.
				h.closeLocked(s, ReasonPeer, true)
				return
			}
		}
		if ev&netpoll.Out != 0 {
			h.flushLocked(s)
		}
	})
	if err != nil && err != netpoll.ErrClosed {
		h.log.Error("epoll loop stopped", zap.Error(err))
	}
}

// sweeper enforces WriteTimeout on streams whose output is stuck.
func (h *Hub) sweeper() {
	defer h.pollerWG.Done()
	every := max(min(h.cfg.WriteTimeout/4, time.Second), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			limit := now.Add(-h.cfg.WriteTimeout).UnixNano()
			for i := 0; i < h.maxFD.Limit(); i++ {
				s := &h.slots[i]
				s.mu.Lock()
				if s.state == stateOpen && s.pending != nil && s.stalled < limit {
					h.closeLocked(s, ReasonTimeout, true)
				}
				s.mu.Unlock()
			}
		}
	}
}

// Snapshot calls fn for every open stream, with that stream's lock held.
func (h *Hub) Snapshot(fn func(conn uint64, id int64)) {
	for i := 0; i < h.maxFD.Limit(); i++ {
		s := &h.slots[i]
		s.mu.Lock()
		if s.state == stateOpen {
			fn(s.conn(), s.id)
		}
		s.mu.Unlock()
	}
}

// Open streams right now.
func (h *Hub) Len() int { return int(h.open.Load()) }

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	st := Stats{
		Open:     h.open.Load(),
		Opened:   h.opened.Load(),
		Closed:   make(map[string]uint64, numReasons),
		Messages: h.messages.Load(),
		Bytes:    h.bytes.Load(),
		Stale:    h.stale.Load(),
		Rejected: h.rejected.Load(),
	}
	for i := range h.closes {
		st.Closed[Reason(i).String()] = h.closes[i].Load()
	}
	return st
}

// Closes returns how many streams closed for why.
func (h *Hub) Closes(why Reason) uint64 { return h.closes[why].Load() }

// Close stops the hub: it writes every queued message, ends every stream
// with the terminating chunk, closes the sockets (telling the listener of
// each) and stops its goroutines. Output a client has not taken within the
// socket's buffers is dropped.
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
	h.pollerWG.Wait()
	h.poller.Release()

	for i := 0; i < h.maxFD.Limit(); i++ {
		s := &h.slots[i]
		s.mu.Lock()
		if s.state == stateOpen {
			h.flushLocked(s)
			if s.state == stateOpen && s.pending == nil && !s.http10 {
				writeFD(int(s.fd), []byte(LastChunk))
			}
			h.closeLocked(s, ReasonShutdown, true)
		}
		s.mu.Unlock()
	}
}
