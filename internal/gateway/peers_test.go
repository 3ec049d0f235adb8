package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/peerlimit"
)

// request sends one raw request from source (an IP on loopback) and
// returns the connection and the response head.
func request(t *testing.T, g *gateway.Gateway, source, req string) (net.Conn, *http.Response) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	c, err := d.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, req)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q from %s: %v", req, source, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, resp
}

func wantRefused(t *testing.T, resp *http.Response, why string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), why) {
		t.Fatalf("got %s %v %q; want 429 saying %q", resp.Status, resp.Header, body, why)
	}
}

// Every kind of connection counts against its address, from accept to
// its last close, whoever holds it (the direct path, fasthttp, the hub,
// fasthttp again after a long-poll's answer); past the limit a new one
// is answered 429 and counted; other addresses are not affected.
func TestPerAddressConnectionLimit(t *testing.T) {
	for _, noDirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-direct=%t", noDirect), func(t *testing.T) { testPerAddressLimit(t, noDirect) })
	}
}

func testPerAddressLimit(t *testing.T, noDirect bool) {
	_, g := startSystem(t, gateway.Config{PerAddr: peerlimit.Limits{Conns: 3}, NoDirect: noDirect})
	const a, b = "127.0.0.1", "127.0.0.2"
	direct, resp := request(t, g, a, "GET /test/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("direct stream: %s", resp.Status)
	}
	if _, resp = request(t, g, a, "GET /sse/2 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("SSE: %s", resp.Status)
	}
	// A long-poll answered, its connection kept for the next request.
	poll, resp := request(t, g, a, "GET /poll/3?timeout=10ms HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("poll: %s", resp.Status)
	}
	io.ReadAll(io.LimitReader(resp.Body, 1<<20))

	_, resp = request(t, g, a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	wantRefused(t, resp, "too many connections from your address")
	if _, resp = request(t, g, b, "GET /test/4 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("another address: %s", resp.Status)
	}

	// The kept-alive long-poll connection polls again: still one.
	fmt.Fprintf(poll, "GET /poll/3?timeout=10ms HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(poll), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("second poll: %v %v", resp, err)
	}
	_, resp = request(t, g, a, "GET /test/5 HTTP/1.1\r\nHost: x\r\n\r\n")
	wantRefused(t, resp, "too many connections")

	direct.Close()
	poll.Close()
	waitFor(t, "closed connections given back", 5*time.Second, func() bool { return g.Hub().Len() == 2 })
	time.Sleep(100 * time.Millisecond) // the poll's connection, back with fasthttp, closes too
	for _, req := range []string{"GET /test/6?via=fasthttp HTTP/1.1\r\nHost: x\r\n\r\n", "GET /test/7 HTTP/1.1\r\nHost: x\r\n\r\n"} {
		if _, resp = request(t, g, a, req); resp.StatusCode != 200 {
			t.Fatalf("%q after two closed: %s", req, resp.Status)
		}
	}
	if n := g.Stats().Refused[peerlimit.CodeConns]; n != 2 {
		t.Fatalf("refused %v, want 2 %s", g.Stats().Refused, peerlimit.CodeConns)
	}
	if n := g.Stats().PeerAddrs; n != 2 {
		t.Fatalf("%d addresses counted, want 2", n)
	}
}

// New connections per second per address: past the rate, 429 until the
// next second.
func TestPerAddressConnectionRate(t *testing.T) {
	_, g := startSystem(t, gateway.Config{PerAddr: peerlimit.Limits{Rate: 5}})
	refused := 0
	for range 12 {
		c, resp := request(t, g, "127.0.0.3", "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode == http.StatusTooManyRequests {
			wantRefused(t, resp, "too many new connections from your address")
			refused++
		}
		c.Close()
	}
	// 12 connections span at most two one-second windows (they take
	// milliseconds): at most 10 pass.
	if refused < 2 || g.Stats().Refused[peerlimit.CodeRate] != uint64(refused) {
		t.Fatalf("%d refused, stats %v", refused, g.Stats().Refused)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, resp := request(t, g, "127.0.0.3", "GET /test/1 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("a second later: %s", resp.Status)
	}
}
