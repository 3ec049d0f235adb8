//go:build linux

package hubtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
)

// Listener records the hub's calls, one line each: "open CONN ID",
// "resume CONN ID CURSOR", "close CONN".
type Listener struct {
	mu     sync.Mutex
	events []string
	last   uint64
}

func (l *Listener) add(conn uint64, format string, args ...any) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
	l.last = conn
	l.mu.Unlock()
}

// Opened implements hub.Listener.
func (l *Listener) Opened(conn uint64, id int64, _ hub.Joins) { l.add(conn, "open %d %d", conn, id) }

// Resume implements hub.Listener.
func (l *Listener) Resume(conn uint64, id int64, cur cursor.Cursor, _ hub.Joins) {
	l.add(conn, "resume %d %d %s", conn, id, cur)
}

// Closed implements hub.Listener.
func (l *Listener) Closed(conn uint64, _ int64) { l.add(conn, "close %d", conn) }

// Events returns the calls so far.
func (l *Listener) Events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// Has reports whether event was recorded.
func (l *Listener) Has(event string) bool {
	for _, e := range l.Events() {
		if e == event {
			return true
		}
	}
	return false
}

// Harness is a running hub and its listener.
type Harness struct {
	T   testing.TB
	Hub *hub.Hub
	L   *Listener
}

// Start starts a hub with cfg serving kinds; the test's cleanup closes it.
func Start(t testing.TB, cfg hub.Config, kinds ...hub.Kind) *Harness {
	t.Helper()
	l := &Listener{}
	h, err := hub.New(cfg, kinds, l, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &Harness{T: t, Hub: h, L: l}
}

// Client is the test's end of one session.
type Client struct {
	t    testing.TB
	Conn *net.UnixConn
	// Key is the session's conn number, to deliver to.
	Key uint64
	buf bytes.Buffer
}

// Socketpair returns a connected pair: the hub's end, as a raw
// non-blocking descriptor, and the client's end.
func Socketpair(t testing.TB) (int, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return fds[0], c.(*net.UnixConn)
}

// Open opens a session for r on a socketpair and returns the client end.
func (h *Harness) Open(r hub.Request) *Client {
	h.T.Helper()
	fd, c := Socketpair(h.T)
	if err := h.Hub.OpenFD(fd, r); err != nil {
		h.T.Fatalf("OpenFD: %v", err)
	}
	h.L.mu.Lock()
	key := h.L.last
	h.L.mu.Unlock()
	return &Client{t: h.T, Conn: c, Key: key}
}

// fill reads what arrives within d into the client's buffer; it reports
// whether the hub's end is closed.
func (c *Client) fill(d time.Duration) (eof bool) {
	var b [64 << 10]byte
	c.Conn.SetReadDeadline(time.Now().Add(d))
	n, err := c.Conn.Read(b[:])
	c.buf.Write(b[:n])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// Until reads until what the session wrote contains want, and returns
// (and consumes) everything up to the end of it. It fails the test after
// timeout.
func (c *Client) Until(want string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := strings.Index(c.buf.String(), want); i >= 0 {
			out := string(c.buf.Next(i + len(want)))
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q within %s; got %q", want, timeout, c.buf.String())
		}
		if c.fill(10 * time.Millisecond) {
			if strings.Contains(c.buf.String(), want) {
				continue
			}
			c.t.Fatalf("closed before %q; got %q", want, c.buf.String())
		}
	}
}

// Rest returns what arrives within d, and whether the hub closed its end.
func (c *Client) Rest(d time.Duration) (string, bool) {
	deadline := time.Now().Add(d)
	eof := false
	for !eof && time.Now().Before(deadline) {
		eof = c.fill(time.Until(deadline))
	}
	out := c.buf.String()
	c.buf.Reset()
	return out, eof
}
