package testclient

import (
	"bufio"
	"fmt"
	"html"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/chunkparse"
)

// Dial connects to addr (closed when the test ends); control, if set, runs
// on the socket before connecting.
func Dial(t testing.TB, addr string, control func(network, address string, c syscall.RawConn) error) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: control}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Stream is one open stream.
type Stream struct {
	t      testing.TB
	Conn   net.Conn
	br     *bufio.Reader
	p      chunkparse.Parser
	chunks []string
}

// Welcome is the first chunk of a stream for id.
func Welcome(id int64) string {
	return fmt.Sprintf("Comet gateway welcomes you! Your Id: %d<br/>\n", id)
}

// Msg is the chunk of message number n holding msg.
func Msg(n int, msg string) string {
	return fmt.Sprintf("Recvd msg #%d: '%s'<br/>\n", n, html.EscapeString(msg))
}

// Open opens a stream for id on the gateway at addr and checks its head and
// welcome chunk.
func Open(t testing.TB, addr string, id int64) *Stream {
	t.Helper()
	return OpenPath(t, addr, fmt.Sprintf("/test/%d", id), id)
}

// OpenPath is Open for a path of the stream of id with a query
// (/test/5?topics=lobby).
func OpenPath(t testing.TB, addr, path string, id int64) *Stream {
	t.Helper()
	s := &Stream{t: t, Conn: Dial(t, addr, nil)}
	fmt.Fprintf(s.Conn, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path)
	s.br = bufio.NewReader(s.Conn)
	s.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		t.Fatalf("stream %d: %v", id, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream %d: status %d, headers %v, TE %v", id, resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	// resp.Body would undo the chunking; read the raw bytes instead.
	if got := s.Next(5 * time.Second); got != Welcome(id) {
		t.Fatalf("welcome chunk = %q", got)
	}
	return s
}

// Done reports whether the stream ended with the terminating chunk.
func (s *Stream) Done() bool { return s.p.Done() }

// read returns the next chunk; "" and false on a timeout; "" and true at
// the end of the body. Framing errors and other read errors fail the test.
func (s *Stream) read(timeout time.Duration) (string, bool) {
	s.t.Helper()
	s.Conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	for len(s.chunks) == 0 {
		if s.p.Done() {
			return "", true
		}
		n, err := s.br.Read(buf)
		if ferr := s.p.Feed(buf[:n], func(d []byte) { s.chunks = append(s.chunks, string(d)) }); ferr != nil {
			s.t.Fatalf("framing: %v", ferr)
		}
		if err != nil && len(s.chunks) == 0 {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return "", false
			}
			if s.p.Done() {
				return "", true
			}
			s.t.Fatalf("read: %v (body not terminated)", err)
		}
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return c, false
}

// Next returns the next chunk, or "" at the end of the body; a timeout
// fails the test.
func (s *Stream) Next(timeout time.Duration) string {
	s.t.Helper()
	c, end := s.read(timeout)
	if c == "" && !end {
		s.t.Fatalf("no chunk within %s", timeout)
	}
	return c
}

// TryNext returns the next chunk, or "" if none comes within timeout or the
// body ended.
func (s *Stream) TryNext(timeout time.Duration) string {
	s.t.Helper()
	c, _ := s.read(timeout)
	return c
}

// WaitFor polls cond every 5ms until it holds, failing the test after
// timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
