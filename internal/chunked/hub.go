//go:build linux

package chunked

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/netpoll"
)

// Listener hears about sessions opening and closing. Every call is made
// with the session's lock held, so that, for one conn, they are ordered
// with Hub.Snapshot; they must not block.
type Listener interface {
	// Opened: a chunked stream logs in as id.
	Opened(conn uint64, id int64)
	// Resume: an SSE stream or a long-poll logs in as id, wanting every
	// kept message after cur (zero: from now on).
	Resume(conn uint64, id int64, cur longpoll.Cursor)
	// Closed: the session ends (for a long-poll, it was answered).
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
	ReasonAnswered                 // a long-poll was answered
	numReasons
)

var reasonNames = [numReasons]string{"peer", "slow", "timeout", "write_error", "protocol", "shutdown", "answered"}

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
	// SSEHeartbeat writes an SSE comment on an EventSource stream that
	// has been quiet this long, so proxies keep it. Default 15s; negative
	// disables.
	SSEHeartbeat time.Duration
	// StreamHeartbeat writes a chunk holding one newline on a chunked
	// HTML stream that has been quiet this long. Default 0: off.
	StreamHeartbeat time.Duration
	// SSERetry is the reconnection delay an EventSource is told to use.
	// Default 2s.
	SSERetry time.Duration
	// ResumeWait is how long past its timeout a long-poll waits for the
	// router's answer to its resume before it is answered 503. Default 5s.
	ResumeWait time.Duration
	// Handback receives a long-poll's socket after its answer, to read
	// the client's next request (HTTP keep-alive); it owns fd from then
	// on (the hub has stopped watching it). It is called with the
	// session's lock held and must not block. Default nil: the connection
	// is closed after the answer.
	Handback func(fd int)
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
		SSEHeartbeat: 15 * time.Second,
		SSERetry:     2 * time.Second,
		ResumeWait:   5 * time.Second,
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
	if c.SSEHeartbeat == 0 {
		c.SSEHeartbeat = d.SSEHeartbeat
	}
	if c.SSERetry <= 0 {
		c.SSERetry = d.SSERetry
	}
	if c.ResumeWait <= 0 {
		c.ResumeWait = d.ResumeWait
	}
	return c
}

const (
	stateFree uint8 = iota
	stateOpen
)

// Session kinds.
const (
	kindHTML uint8 = iota // chunked HTML stream (/test/{id})
	kindSSE               // EventSource stream (/sse/{id})
	kindPoll              // one long-poll request (/poll/{id})
)

// Session flags.
const (
	flagHTTP10    uint8 = 1 << iota // no chunked framing: the body ends when the conn closes
	flagResumed                     // the router answered the resume
	flagMissed                      // ... saying messages were missed
	flagAnswered                    // a long-poll's answer is written (pending is output)
	flagKeepAlive                   // hand a long-poll's connection back after the answer
	flagExpired                     // a long-poll's timeout passed before the router answered its resume
)

// session is one client connection: 72 bytes, stored inline in Hub.slots
// at the index of its file descriptor. An idle one owns nothing else.
type session struct {
	mu  sync.Mutex
	gen uint32 // bumped on every open; the high half of the conn number
	fd  int32
	id  int64
	// HTML: messages written, for "Recvd msg #N". SSE and long-poll: the
	// position (in epoch) of the last message the client has: its cursor.
	n     uint64
	epoch uint64
	head  uint64 // long-poll: the last position of the resume's catch-up
	// Output the socket did not take yet; nil when idle. For a long-poll
	// not yet answered: the messages of the answer being gathered.
	pending *[]byte
	// While output is pending: unix nanos of the last write progress.
	// Otherwise: of the last write (for heartbeats); for a long-poll not
	// yet answered: its deadline.
	stalled int64
	state   uint8
	kind    uint8
	flags   uint8
}

func (s *session) has(f uint8) bool { return s.flags&f != 0 }

func (s *session) cursor() longpoll.Cursor { return longpoll.Cursor{Epoch: s.epoch, Seq: s.n} }

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
	// By kind: open chunked streams, SSE streams and waiting long-polls.
	OpenHTML int64 `json:"open_html"`
	OpenSSE  int64 `json:"open_sse"`
	OpenPoll int64 `json:"open_poll"`
	// Deliveries dropped because the session already had that position
	// (a resume that overlapped live deliveries), and deliveries to a
	// long-poll after its answer (kept by the router for the next poll).
	Duplicates uint64 `json:"duplicates"`
	Late       uint64 `json:"late"`
	Heartbeats uint64 `json:"heartbeats"`
}

// job operations.
const (
	opDeliver uint8 = iota
	opResumed
)

type job struct {
	op     uint8
	missed bool
	msg    []byte // the message as sent
	conns  []uint64
	epoch  uint64 // position of msg, or of the resume
	seq    uint64 // deliver: msg's position; resumed: the first to follow
	head   uint64 // resumed: the last position of the catch-up
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
	clock    atomic.Int64      // unix nanos, refreshed by the sweeper
	open     atomic.Int64
	byKind   [3]atomic.Int64
	dups     atomic.Uint64
	late     atomic.Uint64
	hbeats   atomic.Uint64
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
	h.clock.Store(time.Now().UnixNano())
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
	return h.openSession(c, id, kindHTML, http10, longpoll.Cursor{}, 0)
}

// OpenSSE takes over c (GET /sse/id) as an EventSource stream: every
// message to id from cur on (the zero cursor: from now), each an event
// whose id is its cursor.
func (h *Hub) OpenSSE(c net.Conn, id int64, cur longpoll.Cursor, http10 bool) error {
	return h.openSession(c, id, kindSSE, http10, cur, 0)
}

// OpenPoll takes over c (GET /poll/id) as a long-poll: it is answered as
// soon as there are messages after cur, or when wait has passed. With
// keepAlive the connection is then handed to Config.Handback for the
// client's next request; otherwise it is closed.
func (h *Hub) OpenPoll(c net.Conn, id int64, cur longpoll.Cursor, wait time.Duration, keepAlive bool) error {
	return h.openSession(c, id, kindPoll, !keepAlive, cur, time.Now().Add(wait).UnixNano())
}

// OpenFD is Open for a connection accepted without Go's net package: fd is
// a non-blocking socket whose request (GET /test/id) has been read. The
// hub owns fd from here on, whatever the outcome.
func (h *Hub) OpenFD(fd int, id int64, http10 bool) error {
	return h.openFD(fd, id, kindHTML, http10, longpoll.Cursor{}, 0)
}

func (h *Hub) openSession(c net.Conn, id int64, kind uint8, http10 bool, cur longpoll.Cursor, deadline int64) error {
	fd, err := takeFD(c)
	if err != nil {
		h.rejected.Add(1)
		return err
	}
	return h.openFD(fd, id, kind, http10, cur, deadline)
}

func (h *Hub) openFD(fd int, id int64, kind uint8, http10 bool, cur longpoll.Cursor, deadline int64) error {
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
	s.fd, s.id, s.state, s.kind, s.pending = int32(fd), id, stateOpen, kind, nil
	s.n, s.epoch, s.head, s.flags = cur.Seq, cur.Epoch, 0, 0
	if http10 {
		s.flags |= flagHTTP10
	}
	s.stalled = h.clock.Load()
	h.open.Add(1)
	h.byKind[kind].Add(1)
	h.opened.Add(1)

	var buf [320]byte
	head := buf[:0]
	switch kind {
	case kindHTML:
		s.n = 0
		if http10 {
			head = append(head, StreamHeader10...)
			head = AppendWelcome(head, id)
		} else {
			head = append(head, StreamHeader...)
			var w [64]byte
			head = AppendChunk(head, AppendWelcome(w[:0], id))
		}
	case kindSSE:
		var w [32]byte
		retry := append(append(strconv.AppendInt(append(w[:0], "retry: "...), h.cfg.SSERetry.Milliseconds(), 10), '\n'), '\n')
		if http10 {
			head = append(append(head, SSEHeader10...), retry...)
		} else {
			head = AppendChunk(append(head, SSEHeader...), retry)
		}
	case kindPoll:
		s.stalled = deadline
		s.flags &^= flagHTTP10
		if !http10 {
			s.flags |= flagKeepAlive
		}
	}
	// Tell the listener first so that every close, even one right below,
	// follows the login. No message can be delivered to the conn before
	// the router has heard of it.
	if h.listener != nil {
		if kind == kindHTML {
			h.listener.Opened(s.conn(), id)
		} else {
			h.listener.Resume(s.conn(), id, cur)
		}
	}
	if len(head) > 0 && !h.writeLocked(s, head) {
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
	s.stalled = h.clock.Load()
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
	if s.pending == nil || s.kind == kindPoll && !s.has(flagAnswered) {
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
		s.stalled = h.clock.Load()
		if s.kind == kindPoll {
			h.finishPoll(s)
		}
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
	h.byKind[s.kind].Add(-1)
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

// Deliver queues msg for every session in conns. Each session gets its
// messages in the order Deliver, DeliverAt and Resumed were called for it.
// Deliver waits while the writers' queues are full; after Close it drops
// msg.
func (h *Hub) Deliver(msg []byte, conns []uint64) {
	h.DeliverAt(0, 0, msg, conns)
}

// DeliverAt is Deliver for a message at position (epoch, seq) of its id:
// SSE and long-poll clients get the position as their cursor, and drop a
// position they already have.
func (h *Hub) DeliverAt(epoch, seq uint64, msg []byte, conns []uint64) {
	if len(conns) == 0 {
		return
	}
	h.queue(job{op: opDeliver, msg: append([]byte(nil), msg...), epoch: epoch, seq: seq}, conns)
}

// Resumed applies the router's answer to conn's resume: the messages from
// position seq to head of epoch follow; missed says messages after the
// client's cursor are no longer kept.
func (h *Hub) Resumed(conn, epoch, seq, head uint64, missed bool) {
	h.queue(job{op: opResumed, epoch: epoch, seq: seq, head: head, missed: missed}, []uint64{conn})
}

// queue hands j to the writers owning conns (a conn always goes to the
// same writer, which keeps each session's order).
func (h *Hub) queue(j job, conns []uint64) {
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		return
	}
	w := len(h.queues)
	if w == 1 || len(conns) == 1 {
		j.conns = append([]uint64(nil), conns...)
		h.queues[int(uint32(conns[0]))%w] <- j
		return
	}
	parts := make([][]uint64, w)
	for _, c := range conns {
		i := int(uint32(c)) % w
		parts[i] = append(parts[i], c)
	}
	for i, p := range parts {
		if len(p) > 0 {
			j.conns = p
			h.queues[i] <- j
		}
	}
}

// encodings holds one message encoded for each kind of session, each made
// once per message when first needed.
type encodings struct {
	html, json []byte
	sse        []byte
	haveHTML   bool
	haveJSON   bool
	haveSSE    bool
	scratch    []byte
}

func (e *encodings) reset() {
	e.html, e.json = e.html[:0], e.json[:0]
	e.haveHTML, e.haveJSON, e.haveSSE = false, false, false
}

func (h *Hub) writer(q chan job) {
	defer h.workers.Done()
	var enc encodings
	for j := range q {
		enc.reset()
		for _, c := range j.conns {
			s := h.lookup(c)
			if s == nil {
				h.stale.Add(1)
				continue
			}
			if j.op == opResumed {
				h.resumedLocked(s, &j, &enc)
			} else {
				h.deliverLocked(s, &j, &enc)
			}
			s.mu.Unlock()
		}
		if cap(enc.scratch) > 256<<10 {
			enc.scratch = nil
		}
		if cap(enc.html) > 256<<10 || cap(enc.json) > 256<<10 || cap(enc.sse) > 256<<10 {
			enc.html, enc.json, enc.sse = nil, nil, nil
		}
	}
}

// frame writes body to s in a chunk (or bare for HTTP/1.0) and reports
// whether s is still open.
func (h *Hub) frame(s *session, enc *encodings, body []byte) bool {
	if s.has(flagHTTP10) {
		return h.writeLocked(s, body)
	}
	enc.scratch = AppendChunk(enc.scratch[:0], body)
	return h.writeLocked(s, enc.scratch)
}

// deliverLocked writes (or, for a long-poll, gathers) one message for s.
func (h *Hub) deliverLocked(s *session, j *job, enc *encodings) {
	if s.kind == kindHTML {
		if !enc.haveHTML {
			enc.html = AppendHTMLEscaped(enc.html[:0], j.msg)
			enc.haveHTML = true
		}
		s.n++
		var msg [128]byte
		if h.frame(s, enc, AppendHTMLMessage(msg[:0], s.n, enc.html)) {
			h.messages.Add(1)
		}
		return
	}
	if s.kind == kindPoll && s.has(flagAnswered) {
		h.late.Add(1)
		return
	}
	if j.epoch != 0 {
		if j.epoch == s.epoch && j.seq <= s.n {
			h.dups.Add(1)
			return
		}
		s.epoch, s.n = j.epoch, j.seq
	}
	if s.kind == kindSSE {
		// A positioned message has the same event (its id is the
		// position) for every conn of the job: encoded once.
		if !enc.haveSSE || j.epoch == 0 {
			var id [48]byte
			enc.sse = AppendSSEEvent(enc.sse[:0], s.cursor().Append(id[:0]), j.msg)
			enc.haveSSE = j.epoch != 0
		}
		if h.frame(s, enc, enc.sse) {
			h.messages.Add(1)
		}
		return
	}
	// A long-poll gathers the messages of its answer.
	if !enc.haveJSON {
		enc.json = longpoll.AppendJSONString(enc.json[:0], j.msg)
		enc.haveJSON = true
	}
	if s.pending == nil {
		s.pending = h.pool.Get().(*[]byte)
		*s.pending = (*s.pending)[:0]
	} else {
		*s.pending = append(*s.pending, ',')
	}
	*s.pending = longpoll.AppendMessage(*s.pending, s.n, enc.json)
	h.messages.Add(1)
	h.pollCheck(s)
}

// resumedLocked applies the router's answer to s's resume.
func (h *Hub) resumedLocked(s *session, j *job, enc *encodings) {
	if s.kind == kindHTML {
		return
	}
	if j.epoch != s.epoch || j.seq-1 > s.n || j.missed {
		s.epoch, s.n = j.epoch, j.seq-1
	}
	s.head = j.head
	s.flags |= flagResumed
	if j.missed {
		s.flags |= flagMissed
	}
	if s.kind == kindPoll {
		h.pollCheck(s)
		return
	}
	// SSE: set the client's Last-Event-ID to where it continues, and say
	// so if messages were missed.
	var b [160]byte
	ev := b[:0]
	var idb [48]byte
	id := s.cursor().Append(idb[:0])
	if j.missed {
		ev = append(ev, "event: missed\n"...)
		ev = AppendSSEEvent(ev, id, append(append([]byte(`{"missed":true,"cursor":"`), id...), `"}`...))
	} else {
		ev = append(append(append(ev, "id: "...), id...), "\n\n"...)
	}
	h.frame(s, enc, ev)
}

// maxAnswer is the size of gathered messages past which a long-poll is
// answered without waiting for the rest of its catch-up (the rest is kept
// by the router for the next poll).
const maxAnswer = 32 << 10

// pollCheck answers the long-poll s if it has what it waited for.
func (h *Hub) pollCheck(s *session) {
	if !s.has(flagResumed) {
		return
	}
	gathered := s.pending != nil
	if s.has(flagExpired) || s.has(flagMissed) && s.n >= s.head || gathered && (s.n >= s.head || len(*s.pending) >= maxAnswer) {
		h.answerLocked(s)
	}
}

// answerLocked writes the long-poll's answer: the messages gathered (maybe
// none, at its deadline or shutdown), or 503 if the router never answered
// its resume.
func (h *Hub) answerLocked(s *session) {
	body := h.pool.Get().(*[]byte)
	status := "HTTP/1.1 200 OK\r\n"
	if s.has(flagResumed) {
		var msgs []byte
		if s.pending != nil {
			msgs = *s.pending
		}
		*body = longpoll.AppendAnswer((*body)[:0], s.id, s.cursor(), msgs, s.has(flagMissed))
	} else {
		status = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
		*body = append((*body)[:0], `{"error":"the router did not answer in time; poll again"}`+"\n"...)
	}
	h.releasePending(s)
	out := h.pool.Get().(*[]byte)
	p := append((*out)[:0], status...)
	p = append(p, "Server: comet-gateway\r\nContent-Type: application/json\r\nCache-Control: no-cache, no-store\r\nAccess-Control-Allow-Origin: *\r\n"...)
	if !s.has(flagKeepAlive) {
		p = append(p, "Connection: close\r\n"...)
	}
	p = append(p, "Content-Length: "...)
	p = strconv.AppendInt(p, int64(len(*body)), 10)
	p = append(append(p, "\r\n\r\n"...), *body...)
	if cap(*body) <= 64<<10 {
		h.pool.Put(body)
	}
	s.flags |= flagAnswered
	ok := h.writeLocked(s, p)
	*out = p[:0]
	if cap(p) <= 64<<10 {
		h.pool.Put(out)
	}
	if ok && s.pending == nil {
		h.finishPoll(s)
	}
}

// finishPoll ends an answered long-poll whose answer is written: the
// connection goes to Config.Handback for the next request, or is closed.
func (h *Hub) finishPoll(s *session) {
	if !s.has(flagAnswered) || s.state != stateOpen {
		return
	}
	if !s.has(flagKeepAlive) || h.cfg.Handback == nil {
		h.closeLocked(s, ReasonAnswered, true)
		return
	}
	fd := int(s.fd)
	conn := s.conn()
	h.poller.Remove(fd)
	s.state = stateFree
	h.open.Add(-1)
	h.byKind[s.kind].Add(-1)
	h.closes[ReasonAnswered].Add(1)
	if h.listener != nil {
		h.listener.Closed(conn)
	}
	h.cfg.Handback(fd)
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
		if ev&netpoll.In != 0 && s.kind != kindPoll {
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

// sweeper enforces WriteTimeout on sessions whose output is stuck,
// answers long-polls at their deadline and writes heartbeats.
func (h *Hub) sweeper() {
	defer h.pollerWG.Done()
	every := max(min(h.cfg.WriteTimeout/4, 250*time.Millisecond), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var enc encodings
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			nowNS := now.UnixNano()
			h.clock.Store(nowNS)
			limit := now.Add(-h.cfg.WriteTimeout).UnixNano()
			sseQuiet := nowNS - int64(h.cfg.SSEHeartbeat)
			htmlQuiet := nowNS - int64(h.cfg.StreamHeartbeat)
			for i := 0; i < h.maxFD.Limit(); i++ {
				s := &h.slots[i]
				s.mu.Lock()
				if s.state == stateOpen {
					switch {
					case s.kind == kindPoll && !s.has(flagAnswered):
						switch {
						case s.stalled > nowNS:
						case s.has(flagResumed) || s.stalled+int64(h.cfg.ResumeWait) <= nowNS:
							h.answerLocked(s)
						default:
							// Timed out before the router said where the
							// client stands: answer as soon as it does.
							s.flags |= flagExpired
						}
					case s.pending != nil:
						if s.stalled < limit {
							h.closeLocked(s, ReasonTimeout, true)
						}
					case s.kind == kindSSE && h.cfg.SSEHeartbeat > 0 && s.stalled <= sseQuiet:
						h.hbeats.Add(1)
						h.frame(s, &enc, []byte(": \n\n"))
					case s.kind == kindHTML && h.cfg.StreamHeartbeat > 0 && s.stalled <= htmlQuiet:
						h.hbeats.Add(1)
						h.frame(s, &enc, []byte("\n"))
					}
				}
				s.mu.Unlock()
			}
		}
	}
}

// Snapshot calls fn for every open session, with that session's lock
// held: resumable says it is an SSE stream or a long-poll, and cur is then
// its cursor (what it has; zero if it started from now and has nothing).
func (h *Hub) Snapshot(fn func(conn uint64, id int64, resumable bool, cur longpoll.Cursor)) {
	for i := 0; i < h.maxFD.Limit(); i++ {
		s := &h.slots[i]
		s.mu.Lock()
		if s.state == stateOpen {
			fn(s.conn(), s.id, s.kind != kindHTML, s.cursor())
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

		OpenHTML:   h.byKind[kindHTML].Load(),
		OpenSSE:    h.byKind[kindSSE].Load(),
		OpenPoll:   h.byKind[kindPoll].Load(),
		Duplicates: h.dups.Load(),
		Late:       h.late.Load(),
		Heartbeats: h.hbeats.Load(),
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
		if s.state == stateOpen && s.kind == kindPoll && !s.has(flagAnswered) {
			// Answer with what it has (its cursor loses nothing), and
			// close: the next poll goes to another gateway process.
			s.flags &^= flagKeepAlive
			h.answerLocked(s)
		}
		if s.state == stateOpen {
			h.flushLocked(s)
			if s.state == stateOpen && s.pending == nil && !s.has(flagHTTP10) && s.kind != kindPoll {
				writeFD(int(s.fd), []byte(LastChunk))
			}
			h.closeLocked(s, ReasonShutdown, true)
		}
		s.mu.Unlock()
	}
}
