package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/peerlimit"
)

// capListener is the gateway's listener. It never hands fasthttp an
// accept error it would treat as permanent (EMFILE would stop Serve), and
// it keeps the process within its open-files limit:
//
//   - When the process is full (full() reports true) or runs out of
//     descriptors, a SO_REUSEPORT listener closes its socket, which takes
//     it out of the port's group: the kernel sends new connections to the
//     other gateway processes. It listens again once below the low-water
//     mark (full(0.95) false).
//   - A lone listener (no SO_REUSEPORT) keeps listening and waits; the
//     kernel's backlog holds new connections meanwhile.
type capListener struct {
	addr      string
	reusePort bool
	full      func(frac float64) bool
	log       *zap.Logger

	mu     sync.Mutex
	inner  net.Listener
	closed bool
	done   chan struct{}
	bound  net.Addr

	keepAlive, userTimeout time.Duration
	// direct, if set, takes each accepted socket first (see direct.go);
	// it returns the connections fasthttp is to serve. Accept calls it
	// with buf, which only the Accept goroutine uses.
	direct func(fd int, peer peerlimit.Ref, buf []byte) net.Conn
	buf    []byte
	// peers, if set, admits each accepted connection by its address;
	// refused counts the ones it turns away.
	peers   *peerlimit.Table
	refused func(code string)

	pauses, acceptErrs atomic.Uint64
	lastLog            atomic.Int64
}

// listenTCP listens on addr. Accepted connections inherit the listening
// socket's options, so TCP keep-alive (probes after keepAlive of quiet,
// then every 30 s, 4 unanswered probes closing the connection; none if
// keepAlive <= 0) is set once here rather than with four setsockopt calls
// per connection, and Go's own default (probes after 15 s, which would
// cost a million idle streams 66,000 probes a second) is turned off.
// Keep-alive probes after the idle time: every keepAliveInterval,
// keepAliveCount unanswered ones closing the connection.
const (
	keepAliveInterval = 30 * time.Second
	keepAliveCount    = 4
)

func listenTCP(addr string, reusePort bool, keepAlive, userTimeout time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	lc.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			set := func(level, opt, v int) {
				if e := unix.SetsockoptInt(int(fd), level, opt, v); e != nil && serr == nil {
					serr = fmt.Errorf("setsockopt %d/%d: %w", level, opt, e)
				}
			}
			if reusePort {
				set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
			// Inherited by accepted sockets too: no Nagle delay on a
			// stream's small writes, and accept waits (up to a second)
			// for the request, so the direct path reads it at once.
			set(unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			set(unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
			if userTimeout > 0 {
				// A client that stops reading (its window stays
				// closed) or vanishes is aborted by the kernel after
				// this long, not probed for ever with the gateway's
				// send buffer (up to 4 MB of kernel memory) held.
				set(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout/time.Millisecond))
			}
			if keepAlive > 0 {
				set(unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
				set(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, max(int(keepAlive/time.Second), 1))
				set(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(keepAliveInterval/time.Second))
				set(unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

func newCapListener(addr string, reusePort bool, keepAlive, userTimeout time.Duration, full func(float64) bool, log *zap.Logger) (*capListener, error) {
	ln, err := listenTCP(addr, reusePort, keepAlive, userTimeout)
	if err != nil {
		return nil, err
	}
	return &capListener{addr: ln.Addr().String(), reusePort: reusePort, keepAlive: keepAlive, userTimeout: userTimeout, full: full, log: log,
		inner: ln, done: make(chan struct{}), bound: ln.Addr()}, nil
}

func isFDExhaustion(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// logOnce logs at most once a minute.
func (l *capListener) logOnce(msg string, fields ...zap.Field) {
	now := time.Now().Unix()
	if last := l.lastLog.Load(); now-last >= 60 && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn(msg, fields...)
	}
}

// pause takes the socket out of the group (SO_REUSEPORT only) and waits
// until the process has room again.
func (l *capListener) pause(why string) error {
	l.pauses.Add(1)
	if l.reusePort {
		l.mu.Lock()
		if l.inner != nil {
			l.inner.Close()
			l.inner = nil
		}
		l.mu.Unlock()
		l.logOnce("gateway full, not accepting; the other processes take new connections",
			zap.String("why", why), zap.Uint64("pauses", l.pauses.Load()))
	} else {
		l.logOnce("gateway full, new connections wait in the backlog", zap.String("why", why))
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return net.ErrClosed
		case <-t.C:
		}
		if l.full(0.95) {
			continue
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return net.ErrClosed
		}
		if l.inner == nil {
			ln, err := listenTCP(l.addr, true, l.keepAlive, l.userTimeout)
			if err != nil {
				l.logOnce("cannot listen again; retrying", zap.Error(err))
				return nil
			}
			l.inner = ln
		}
		return nil
	}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		if l.full(1) {
			if err := l.pause("stream limit"); err != nil {
				return nil, err
			}
			continue
		}
		l.mu.Lock()
		ln := l.inner
		l.mu.Unlock()
		if ln == nil {
			if err := l.pause("relisten"); err != nil {
				return nil, err
			}
			continue
		}
		c, err := l.accept(ln)
		if err == nil {
			return c, nil
		}
		if err == errRecheck {
			continue
		}
		select {
		case <-l.done:
			return nil, net.ErrClosed
		default:
		}
		if isFDExhaustion(err) {
			l.acceptErrs.Add(1)
			if err := l.pause("out of file descriptors"); err != nil {
				return nil, err
			}
			continue
		}
		l.mu.Lock()
		stale := l.inner != ln // closed by pause on another path
		l.mu.Unlock()
		if stale || errors.Is(err, net.ErrClosed) {
			continue
		}
		// Other accept errors (ECONNABORTED and the like) concern one
		// connection: count them and go on.
		l.acceptErrs.Add(1)
		l.logOnce("accept failed", zap.Error(err))
		time.Sleep(10 * time.Millisecond)
	}
}

// errRecheck: the accept loop stopped to let Accept check for room.
var errRecheck = errors.New("gateway: check capacity")

// accept returns the next connection for fasthttp. With a direct path,
// sockets are accepted here with accept4 (not through Go's poller, whose
// listener RawConn supports only Control) and offered to it first; it
// keeps the stream requests. Waiting is a poll(2) of the listening socket
// inside Control, which keeps the descriptor from being closed under it;
// its 100 ms timeout lets a Close from elsewhere be seen.
func (l *capListener) accept(ln net.Listener) (net.Conn, error) {
	tl, ok := ln.(*net.TCPListener)
	if l.direct == nil || !ok {
		c, err := ln.Accept()
		if err != nil || l.peers == nil {
			return c, err
		}
		peer, ok := l.admit(c.(syscall.Conn), peerlimit.AddrOf(c.RemoteAddr()))
		if !ok {
			c.Close()
			return nil, errRecheck
		}
		cc := &clientConn{Conn: c, peers: l.peers}
		cc.peer.Store(uint32(peer))
		return cc, nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, err
	}
	for {
		nfd, aerr := -1, error(nil)
		var sa unix.Sockaddr
		err := rc.Control(func(lfd uintptr) {
			nfd, sa, aerr = unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if aerr == unix.EAGAIN {
				unix.Poll([]unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}, 100)
			}
		})
		if err != nil {
			return nil, err // the listener was closed
		}
		select {
		case <-l.done:
			if nfd >= 0 {
				unix.Close(nfd)
			}
			return nil, net.ErrClosed
		default:
		}
		switch aerr {
		case nil:
			peer, ok := peerlimit.Ref(0), true
			if l.peers != nil {
				peer, ok = l.admit(fdConn(nfd), sockaddrIP(sa))
			}
			if !ok {
				unix.Close(nfd)
			} else if c := l.direct(nfd, peer, l.buf); c != nil {
				return c, nil
			}
		case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
		default:
			return nil, os.NewSyscallError("accept4", aerr)
		}
		if l.full(1) {
			return nil, errRecheck
		}
		l.mu.Lock()
		stale := l.inner != ln
		l.mu.Unlock()
		if stale {
			return nil, errRecheck
		}
	}
}

// admit counts a new connection from addr in the per-address limits, or
// answers it 429 with the reason (on its socket c) and returns false;
// the caller closes it.
func (l *capListener) admit(c syscall.Conn, addr netip.Addr) (peerlimit.Ref, bool) {
	peer, code := l.peers.Admit(addr)
	if code == "" {
		return peer, true
	}
	l.refused(code)
	why := "too many connections from your address"
	if code == peerlimit.CodeRate {
		why = "too many new connections from your address; wait a second"
	}
	answer := fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n", len(why)+1, why)
	// A fresh socket's buffer takes it at once. Read what the client
	// sent first: closing with it unread would reset the connection,
	// and the client might lose the answer.
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			var buf [4096]byte
			unix.Read(int(fd), buf[:])
			unix.Write(int(fd), answer)
			unix.Shutdown(int(fd), unix.SHUT_WR)
		})
	}
	return 0, false
}

// fdConn is a raw descriptor as a syscall.Conn.
type fdConn int

func (f fdConn) SyscallConn() (syscall.RawConn, error) { return f, nil }
func (f fdConn) Control(fn func(fd uintptr)) error     { fn(uintptr(f)); return nil }
func (f fdConn) Read(func(fd uintptr) bool) error      { return errors.ErrUnsupported }
func (f fdConn) Write(func(fd uintptr) bool) error     { return errors.ErrUnsupported }

// sockaddrIP is an accepted socket's peer address.
func sockaddrIP(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr)
	}
	return netip.Addr{}
}

func (l *capListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.inner != nil {
		err := l.inner.Close()
		l.inner = nil
		return err
	}
	return nil
}

func (l *capListener) Addr() net.Addr { return l.bound }
