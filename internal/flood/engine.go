//go:build linux

package flood

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/chunkparse"
	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/fdtable"
	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/memstat"
	"github.com/cometgw/comet/internal/netpoll"
)

// Config configures one engine (one process's share of the clients).
type Config struct {
	// Target returns the i-th URL of this engine, 0 <= i < Count.
	Target func(i int) (Target, error)
	// Count is the number of clients to open.
	Count int
	// Rate is the arrival rate in new connections per second over this
	// engine; 0 opens them as fast as MaxConnecting allows.
	Rate float64
	// Sources, if set, are the local addresses sockets bind to, client i
	// to Sources[i % len]. Spreading clients over 127.x addresses
	// multiplies the ephemeral ports available and, more, keeps each
	// address's ports under half used: Linux's connect() takes even
	// ports first and, once they are gone, scans them all on every
	// connect before trying odd ones, which collapses the arrival rate.
	Sources []netip.Addr
	// ConnectTimeout bounds connect plus response head. Default 10s.
	ConnectTimeout time.Duration
	// Retry, if set, dials again, after about this long, a client whose
	// connect failed or timed out, or whose connection broke before its
	// response head came (as browsers and real clients do); the failure
	// is still counted. Zero: a failed client stays failed.
	Retry time.Duration
	// Resume dials again, after Retry (default 1s), an SSE or long-poll
	// client whose stream the server or the network ended, with its
	// cursor (Last-Event-ID, cursor=) and the last numbered seq it got,
	// as an EventSource does: a gateway restarted under it then loses
	// nothing unseen, every message still checked once. The end is
	// still counted (ended, peer_closed...).
	Resume bool
	// MaxConnecting bounds connections not yet streaming. Default 1000.
	MaxConnecting int
	// Headers are extra request header lines ("Name: value"), e.g.
	// "TE: chunked" for nchan's http-chunked subscribers.
	Headers []string
	// NoCheck counts chunks without checking what they hold (for servers
	// other than the gateway): no welcome chunk, no "Recvd msg #N".
	NoCheck bool
	// PollTimeout is the ?timeout= of long-poll clients (targets whose
	// path starts /poll/). Default 30s.
	PollTimeout time.Duration
	// WSPublish makes each WebSocket client in a topic (?topics=) publish
	// into it every WSPublish (in steps of 10 ms, the clients' turns
	// spread evenly over the period, as independent clients would be):
	// the message "chat from ID t=NANOS", whose stamp gives its receivers
	// latency. Zero: never.
	WSPublish time.Duration
	// TokenSecretFile, if set, holds an HS256 secret: every request
	// carries "Authorization: Bearer" and a token for its client's id
	// (valid for a day), as for a gateway run with -auth-secret-file.
	TokenSecretFile string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{ConnectTimeout: 10 * time.Second, MaxConnecting: 1000, PollTimeout: 30 * time.Second}
}

// withDefaults is c with every zero field that has a default given it,
// and Retry 1s when Resume has none.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.MaxConnecting <= 0 {
		c.MaxConnecting = d.MaxConnecting
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = d.PollTimeout
	}
	if c.Resume && c.Retry <= 0 {
		c.Retry = time.Second
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Target == nil || c.Count < 0:
		return errors.New("flood: no targets")
	case c.Rate < 0:
		return fmt.Errorf("flood: rate %g: must be >= 0", c.Rate)
	case c.WSPublish < 0:
		return fmt.Errorf("flood: ws publish period %s: must be >= 0", c.WSPublish)
	}
	return nil
}

// Client kinds, by the target's path.
const (
	kindStream uint8 = iota // /test/{id}: a chunked HTML stream
	kindSSE                 // /sse/{id}: an EventSource stream
	kindPoll                // /poll/{id}: long-polls, one after the other
	kindWS                  // /ws/{id}: a WebSocket
)

func kindOf(path string) uint8 {
	switch {
	case strings.HasPrefix(path, "/sse/"):
		return kindSSE
	case strings.HasPrefix(path, "/poll/"):
		return kindPoll
	case strings.HasPrefix(path, "/ws/"):
		return kindWS
	}
	return kindStream
}

const (
	stFree       uint8 = iota
	stConnecting       // connect in progress
	stHead             // request sent, reading the response head
	stWelcome          // streaming, the welcome chunk not yet read
	stBody             // streaming
)

// chunkProblems counts what the chunks of one read got wrong.
type chunkProblems struct{ order, lost, dup, welcome uint64 }

// conn is one client's state: with its table slot's lock, generation and
// descriptor, 88 bytes, inline in Engine.conns at the index of its
// descriptor. An idle client owns nothing else.
type conn struct {
	state   uint8
	kind    uint8
	hcr     uint8  // CR LF CR LF matched at the end of the head
	hpos    uint16 // head bytes read
	idx     int32  // target index
	started int32  // seconds since the engine started
	next    uint32 // the "Recvd msg #N" expected next
	lastSeq uint32 // last numbered seq seen (msggen's seq is 32 bits)
	p       chunkparse.Parser
	// SSE and long-poll: the cursor (the position of the last message),
	// and, for a long-poll answer read in parts, what came so far.
	epoch, pos uint64
	partial    *[]byte
}

// redial is a client to dial again and what it carries over: the
// cursor and numbered seq of a client that resumes (Config.Resume).
type redial struct {
	idx        int32
	lastSeq    uint32
	epoch, pos uint64
	due        int64 // unix nanos: Config.Retry after it ended
}

// client is one client's slot in the table.
type client = fdtable.Slot[conn]

var statusOK = []byte("HTTP/1.1 200 ")

// Engine runs the clients of one process.
type Engine struct {
	cfg    Config
	conns  *fdtable.Table[conn]
	poller *netpoll.Poller
	start  time.Time
	lat    latencies // stamped messages (msggen -stamp)

	baseRSS    atomic.Int64 // this process's memory before its first client
	opened     atomic.Int64 // sockets created
	active     atomic.Int64 // streams established and open
	connecting atomic.Int64
	closed     atomic.Int64
	firstAt    atomic.Int64 // unix nanos: the first client streaming
	lastAt     atomic.Int64 // and the latest
	chunks     atomic.Uint64
	messages   atomic.Uint64
	published  atomic.Uint64
	bytes      atomic.Uint64
	errs       sync.Map // kind -> *atomic.Uint64
	redialed   atomic.Uint64
	retryMu    sync.Mutex
	resumed    atomic.Uint64
	retries    []redial // clients to dial again (Config.Retry, Config.Resume)

	cur     *conn // the conn whose chunks are being parsed (poll goroutine)
	now     int64 // unix nanos of the read being parsed: the arrival time of its messages
	curErrs chunkProblems
	onChunk func([]byte)
	readBuf [64 << 10]byte // used by the poll goroutine only
	reqBuf  []byte         // likewise
	secret  []byte         // Config.TokenSecretFile's
	wg      sync.WaitGroup
}

// New prepares an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil, err
	}
	var secret []byte
	if cfg.TokenSecretFile != "" {
		var err error
		if secret, err = auth.ReadSecret(cfg.TokenSecretFile); err != nil {
			return nil, err
		}
	}
	p, err := netpoll.New()
	if err != nil {
		return nil, err
	}
	// One slot per possible descriptor. Descriptors are handed out
	// lowest first and the loops stop at the highest used, so only the
	// pages of slots in use become resident.
	e := &Engine{cfg: cfg, conns: fdtable.New[conn](int(min(rl.Cur, 1<<24))), poller: p, secret: secret}
	e.onChunk = e.chunk
	return e, nil
}

// Run opens the clients at the configured rate and holds them until ctx
// ends; then it closes every connection and returns.
func (e *Engine) Run(ctx context.Context) error {
	e.start = time.Now()
	e.baseRSS.Store(memstat.SelfRSSKB())
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.poller.Wait(e.event)
	}()
	stopSweep := make(chan struct{})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.sweep(stopSweep)
	}()
	if e.cfg.WSPublish > 0 {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.publisher(stopSweep)
		}()
	}
	err := e.open(ctx)
	// The ramp's garbage (request buffers, URLs) goes back to the
	// system once every client is streaming, so what floodtest holds
	// while it holds the clients is what a client costs.
	e.settle(ctx)
	<-ctx.Done()
	close(stopSweep)
	e.poller.Close()
	e.wg.Wait()
	e.poller.Release()
	e.conns.Each(func(sl *client) { e.closeLocked(sl, "") })
	return err
}

// open creates the sockets, paced.
func (e *Engine) open(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for i := 0; i < e.cfg.Count; {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due := e.cfg.Count - i
		if e.cfg.Rate > 0 {
			due = min(due, int(e.cfg.Rate*time.Since(e.start).Seconds())-i)
		}
		due = min(due, e.cfg.MaxConnecting-int(e.connecting.Load()))
		for ; due > 0; due-- {
			if err := e.dial(i); err != nil {
				return err
			}
			i++
		}
	}
	return nil
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}

// dial starts connecting client i. Errors that concern one client are
// counted; an error returned stops the ramp (no descriptors left).
func (e *Engine) dial(i int) error { return e.dialAs(redial{idx: int32(i)}) }

// dialAs starts connecting client r.idx with what it carries over.
func (e *Engine) dialAs(r redial) error {
	i := int(r.idx)
	t, err := e.cfg.Target(i)
	if err != nil {
		return err
	}
	family := unix.AF_INET
	if t.Addr.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if err == unix.EMFILE || err == unix.ENFILE {
			return fmt.Errorf("flood: out of file descriptors after %d clients (raise ulimit -n or use more workers): %w", i, err)
		}
		e.count(ErrConnect, 1)
		return nil
	}
	if fd >= e.conns.Cap() {
		unix.Close(fd)
		return fmt.Errorf("flood: descriptor %d beyond the open-files limit %d", fd, e.conns.Cap())
	}
	if len(e.cfg.Sources) > 0 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(e.cfg.Sources[i%len(e.cfg.Sources)], 0))); err != nil {
			unix.Close(fd)
			e.count(ErrConnect, 1)
			return nil
		}
	}
	sl := e.conns.Open(fd)
	defer sl.Unlock()
	c := &sl.V
	c.state, c.hcr, c.hpos, c.idx, c.next, c.lastSeq = stConnecting, 0, 0, int32(i), 1, r.lastSeq
	c.kind, c.epoch, c.pos, c.partial = kindOf(t.Path), r.epoch, r.pos, nil
	c.started = int32(time.Since(e.start) / time.Second)
	c.p = chunkparse.Parser{}
	e.opened.Add(1)
	e.connecting.Add(1)
	if err := unix.Connect(fd, sockaddr(t.Addr)); err != nil && err != unix.EINPROGRESS {
		e.closeLocked(sl, ErrConnect)
		return nil
	}
	if err := e.poller.Add(fd, sl.Gen()); err != nil {
		e.closeLocked(sl, ErrConnect)
	}
	return nil
}

// closeLocked closes c's socket. kind is why: a problem counted, or ""
// when floodtest itself closes the client at the end (not counted as
// Closed, which counts what the server or the network ended).
func (e *Engine) closeLocked(sl *client, kind string) {
	c := &sl.V
	switch c.state {
	case stFree:
		return
	case stWelcome, stBody:
		e.active.Add(-1)
		if e.cfg.Resume && resumable(kind) && (c.kind == kindSSE || c.kind == kindPoll) {
			e.resumed.Add(1)
			e.again(c)
		}
	default:
		e.connecting.Add(-1)
		if e.cfg.Retry > 0 && retryable(kind) || e.cfg.Resume && c.epoch != 0 && resumable(kind) {
			e.again(c)
		}
	}
	unix.Close(sl.FD())
	e.conns.Free(sl)
	c.state = stFree
	c.p = chunkparse.Parser{}
	c.partial = nil
	if kind != "" {
		e.closed.Add(1)
		e.count(kind, 1)
	}
}

func (e *Engine) event(fd int, tag uint32, ev uint32) {
	sl := e.conns.Lookup(fd, tag)
	if sl == nil {
		return
	}
	defer sl.Unlock()
	c := &sl.V
	if c.state == stConnecting {
		if ev&(netpoll.Out|netpoll.Err|netpoll.Hup) == 0 {
			return
		}
		// A failed connect makes the write below fail (ECONNREFUSED...):
		// no getsockopt(SO_ERROR) needed.
		t, err := e.cfg.Target(int(c.idx))
		if err != nil {
			e.closeLocked(sl, ErrConnect)
			return
		}
		if !e.request(sl, t) {
			e.closeLocked(sl, ErrConnect)
			return
		}
		c.state = stHead
	}
	if ev&(netpoll.In|netpoll.RdHup|netpoll.Hup|netpoll.Err) != 0 {
		e.read(sl, ev&(netpoll.RdHup|netpoll.Hup|netpoll.Err) != 0)
	}
}

// request writes c's next request: the target's path, or for a long-poll
// its path with the cursor c has and the poll timeout (a first poll asks
// only for the cursor: timeout=1ms).
func (e *Engine) request(sl *client, t Target) bool {
	c := &sl.V
	req := append(e.reqBuf[:0], "GET "...)
	if c.kind == kindPoll {
		req = e.pollPath(req, c, t.Path)
	} else {
		req = append(req, t.Path...)
	}
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, t.Host...)
	req = append(req, "\r\nUser-Agent: floodtest\r\n"...)
	if c.kind == kindWS {
		req = append(req, upgradeHead...)
	}
	if c.kind == kindSSE && c.epoch != 0 {
		req = cursor.Cursor{Epoch: c.epoch, Seq: c.pos}.Append(append(req, "Last-Event-ID: "...))
		req = append(req, "\r\n"...)
	}
	if e.secret != nil {
		id, _ := ids.Parse(string(t.ID))
		req = auth.AppendHS256(append(req, "Authorization: Bearer "...), e.secret, id, time.Now().Add(24*time.Hour))
		req = append(req, "\r\n"...)
	}
	for _, h := range e.cfg.Headers {
		req = append(append(req, h...), "\r\n"...)
	}
	req = append(req, "\r\n"...)
	e.reqBuf = req
	n, err := unix.Write(sl.FD(), req)
	return err == nil && n == len(req)
}

// read drains the socket (edge-triggered) and parses what came. A read
// that does not fill the buffer has emptied the socket: more data will
// raise a new edge, so no read to EAGAIN is needed, unless the peer hung
// up (its end of stream must be read).
func (e *Engine) read(sl *client, hup bool) {
	c := &sl.V
	for c.state != stFree {
		n, err := unix.Read(sl.FD(), e.readBuf[:])
		if n > 0 {
			e.now = time.Now().UnixNano()
			e.bytes.Add(uint64(n))
			e.consume(sl, e.readBuf[:n])
			if n < len(e.readBuf) && !hup {
				return
			}
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return
		case nil: // end of stream
			switch {
			case c.p.Done():
				e.closeLocked(sl, ErrEnded)
			case c.state >= stWelcome:
				e.closeLocked(sl, ErrPeerShut)
			default:
				e.closeLocked(sl, ErrHead)
			}
		default:
			e.closeLocked(sl, ErrReset)
		}
		return
	}
}

func (e *Engine) consume(sl *client, b []byte) {
	c := &sl.V
	if c.kind == kindPoll {
		e.pollConsume(sl, b)
		return
	}
	if c.state == stHead {
		status := statusOK
		if c.kind == kindWS {
			status = status101
		}
		i := 0
		for ; i < len(b) && c.hcr < 4; i++ {
			ch := b[i]
			if int(c.hpos) < len(status) && ch != status[c.hpos] {
				e.closeLocked(sl, statusProblem(c.hpos, b[i:]))
				return
			}
			c.hpos++
			if c.hpos > 8192 {
				e.closeLocked(sl, ErrHead)
				return
			}
			switch {
			case ch == '\r' && c.hcr%2 == 0:
				c.hcr++
			case ch == '\n' && c.hcr%2 == 1:
				c.hcr++
			case ch == '\r':
				c.hcr = 1
			default:
				c.hcr = 0
			}
		}
		if c.hcr < 4 {
			return
		}
		c.state = stWelcome
		e.activated()
		b = b[i:]
	}
	if c.kind == kindWS {
		e.wsConsume(sl, b)
		return
	}
	e.cur, e.curErrs = c, chunkProblems{}
	err := c.p.Feed(b, e.onChunk)
	e.cur = nil
	e.count(ErrOrder, e.curErrs.order)
	e.count(ErrLost, e.curErrs.lost)
	e.count(ErrDup, e.curErrs.dup)
	e.count(ErrWelcome, e.curErrs.welcome)
	if err != nil {
		e.closeLocked(sl, ErrFraming)
	}
}

// activated counts a client that has started streaming.
func (e *Engine) activated() {
	e.connecting.Add(-1)
	e.active.Add(1)
	now := time.Now().UnixNano()
	e.firstAt.CompareAndSwap(0, now)
	e.lastAt.Store(now)
}

// chunk checks one chunk of e.cur.
func (e *Engine) chunk(data []byte) {
	c := e.cur
	e.chunks.Add(1)
	if e.cfg.NoCheck {
		e.messages.Add(1)
		return
	}
	if c.kind == kindSSE {
		e.sseChunk(c, data)
		return
	}
	if len(data) == 1 && data[0] == '\n' {
		return // the stream's heartbeat
	}
	if c.state == stWelcome {
		c.state = stBody
		t, err := e.cfg.Target(int(c.idx))
		if err != nil || !checkWelcome(data, t.ID) {
			e.curErrs.welcome++
		}
		return
	}
	e.messages.Add(1)
	e.lat.record(data, e.now)
	seq, order, lost, dup := checkMessage(data, uint64(c.next), uint64(c.lastSeq))
	c.next++
	c.lastSeq = uint32(seq)
	e.curErrs.order += order
	e.curErrs.lost += lost
	e.curErrs.dup += dup
}

// settle waits for the ramp to finish and returns freed memory to the
// operating system.
func (e *Engine) settle(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for e.connecting.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	debug.FreeOSMemory()
}
