package gateway

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// TestCapListenerLeavesGroupWhenFull: two SO_REUSEPORT listeners on one
// port; when the first is full it closes its socket and every new
// connection goes to the second; when it has room again it takes its share
// again.
func TestCapListenerLeavesGroupWhenFull(t *testing.T) {
	var fullA atomic.Bool
	a, err := newCapListener("127.0.0.1:0", true, time.Minute, 30*time.Second, func(float64) bool { return fullA.Load() }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := newCapListener(a.Addr().String(), true, time.Minute, 30*time.Second, func(float64) bool { return false }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var gotA, gotB atomic.Int64
	serve := func(l net.Listener, n *atomic.Int64) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}
	go serve(a, &gotA)
	go serve(b, &gotB)
	// Connections queued on a listener when it closes are reset (unless
	// net.ipv4.tcp_migrate_req=1), so dials may fail around a pause:
	// count what each side accepts, not what the client saw.
	dialN := func(n int) {
		for i := 0; i < n; i++ {
			if c, err := net.Dial("tcp", a.Addr().String()); err == nil {
				c.Close()
			}
		}
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: accepted %d / %d", what, gotA.Load(), gotB.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	dialN(200)
	waitUntil("both listeners accept", func() bool { return gotA.Load() > 0 && gotB.Load() > 0 })

	// A is full: once its blocked Accept returns, its socket leaves the
	// group and B takes every new connection.
	fullA.Store(true)
	dialN(20)
	time.Sleep(200 * time.Millisecond)
	beforeA, beforeB := gotA.Load(), gotB.Load()
	dialN(200)
	waitUntil("B takes the load", func() bool { return gotB.Load() >= beforeB+190 })
	if gotA.Load() != beforeA {
		t.Fatalf("full listener accepted %d more", gotA.Load()-beforeA)
	}
	if a.pauses.Load() == 0 {
		t.Fatal("no pause counted")
	}

	// Room again: A rejoins the group.
	fullA.Store(false)
	time.Sleep(200 * time.Millisecond)
	dialN(200)
	waitUntil("A rejoins", func() bool { return gotA.Load() > beforeA })
}

// TestCapListenerLoneWaits: without SO_REUSEPORT a full listener keeps its
// socket (connections wait in the backlog) and accepts once there is room.
func TestCapListenerLoneWaits(t *testing.T) {
	var full atomic.Bool
	full.Store(true)
	l, err := newCapListener("127.0.0.1:0", false, 0, 0, func(float64) bool { return full.Load() }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
		t.Fatal("accepted while full")
	case <-time.After(200 * time.Millisecond):
	}
	full.Store(false)
	select {
	case s := <-accepted:
		s.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("not accepted after room came back")
	}
	l.Close()
}

// TestKeepAlive: accepted connections probe after the configured idle
// time (not Go's 15 s), or not at all.
func TestKeepAlive(t *testing.T) {
	for _, tt := range []struct {
		idle      time.Duration
		on        int
		wantIdleS int
	}{{2 * time.Minute, 1, 120}, {-1, 0, 0}} {
		l, err := newCapListener("127.0.0.1:0", false, tt.idle, 30*time.Second, func(float64) bool { return false }, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := s.(syscall.Conn).SyscallConn()
		var on, idle, user int
		rc.Control(func(fd uintptr) {
			on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			user, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		})
		if user != 30000 {
			t.Errorf("TCP_USER_TIMEOUT %d ms on an accepted socket, want the listener's 30000", user)
		}
		if on != tt.on || (tt.on == 1 && idle != tt.wantIdleS) {
			t.Errorf("idle %s: SO_KEEPALIVE %d, TCP_KEEPIDLE %d s; want %d, %d", tt.idle, on, idle, tt.on, tt.wantIdleS)
		}
		s.Close()
		c.Close()
		l.Close()
	}
}

// TestKeepAliveAfterFileConn: a socket the gateway makes a net.Conn again
// with net.FileConn (the direct path's fallback, a long-poll handed back)
// gets the gateway's keep-alive back instead of Go's 15 s.
func TestKeepAliveAfterFileConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.(*net.TCPConn).SyscallConn()
	fd := -1
	rc.Control(func(f uintptr) { fd, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: Config{TCPKeepAlive: 2 * time.Minute}, log: zaptest.NewLogger(t)}
	fc := g.fdConn(fd)
	if fc == nil {
		t.Fatal("no conn")
	}
	defer fc.Close()
	frc, _ := fc.(syscall.Conn).SyscallConn()
	var on, idle int
	frc.Control(func(fd uintptr) {
		on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	})
	if on != 1 || idle != 120 {
		t.Fatalf("SO_KEEPALIVE %d, keep-alive idle %d s after fdConn; want 1, 120", on, idle)
	}
}
