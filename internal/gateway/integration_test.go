package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/msggen"
	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/router/routertest"
	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/wire"
)

func startRouter(t *testing.T, cfg router.Config) (*router.Router, func()) {
	t.Helper()
	return routertest.Start(t, cfg)
}

// startGateway starts a gateway on natsURL, with cfg's settings over the
// test defaults (a free port, no admin address).
func startGateway(t *testing.T, natsURL string, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg.Addr, cfg.AdminAddr, cfg.NATSURL, cfg.Name = "127.0.0.1:0", "off", natsURL, "test-gw"
	cfg.Logger = zaptest.NewLogger(t).Named("gateway")
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func startSystem(t *testing.T, cfg gateway.Config) (*router.Router, *gateway.Gateway) {
	t.Helper()
	r, stopRouter := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second})
	g := startGateway(t, r.NATSURL(), cfg)
	closed := false
	t.Cleanup(func() {
		if !closed {
			g.Close()
		}
		stopRouter()
	})
	waitFor(t, "gateway known to the router", 5*time.Second, func() bool { return r.Stats().Gateways == 1 })
	return r, g
}

var waitFor = testclient.WaitFor

// delivered sends msg to id through r and returns the copies the gateways
// confirmed queued to live connections.
func delivered(t *testing.T, r *router.Router, id int64, msg string) uint64 {
	t.Helper()
	res, err := r.Send(id, []byte(msg))
	if err != nil {
		t.Fatalf("send to %d: %v", id, err)
	}
	return res.Tally.Delivered
}

func openStream(t *testing.T, g *gateway.Gateway, id int64) *testclient.Stream {
	t.Helper()
	return testclient.Open(t, g.Addr().String(), id)
}

func dial(t *testing.T, addr net.Addr, control func(network, address string, c syscall.RawConn) error) net.Conn {
	t.Helper()
	return testclient.Dial(t, addr.String(), control)
}

var want = testclient.Msg

func TestStreamsInOrderExactlyOnceEscaped(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	a1, a2 := openStream(t, g, 7), openStream(t, g, 7)
	b := openStream(t, g, 8)
	waitFor(t, "3 logins", 5*time.Second, func() bool { return r.Stats().Conns == 3 })

	const n = 500
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("m%d <b>&'\"", i)
		if got := delivered(t, r, 7, msgs[i]); got != 2 {
			t.Fatalf("send %d delivered to %d conns, want 2", i, got)
		}
	}
	for _, s := range []*testclient.Stream{a1, a2} {
		for i, m := range msgs {
			if got := s.Next(5 * time.Second); got != want(i+1, m) {
				t.Fatalf("message %d = %q, want %q", i+1, got, want(i+1, m))
			}
		}
	}
	// Nothing leaked to id 8: its first message is #1.
	r.Send(8, []byte("only"))
	if got := b.Next(5 * time.Second); got != want(1, "only") {
		t.Fatalf("id 8 got %q", got)
	}
	if st := r.Stats(); st.Void != 0 || st.Sent != n+1 || st.Delivered != 2*n+1 {
		t.Fatalf("router stats %+v", st)
	}
}

func TestMsggenReachesStreams(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	streams := make([]*testclient.Stream, 5)
	for i := range streams {
		streams[i] = openStream(t, g, int64(i+1))
	}
	waitFor(t, "5 logins", 5*time.Second, func() bool { return r.Stats().Conns == 5 })
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := msggen.Run(context.Background(), nc, msggen.Config{Num: 400, Interval: 0, Max: 5, Procs: 4, Batch: 64, AckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1600 || res.Delivered != 1600 || res.Errors != 0 {
		t.Fatalf("msggen result %+v", res)
	}
	waitFor(t, "gateway wrote 1600 messages", 5*time.Second, func() bool { return g.Stats().Streams.Messages == 1600 })
	total := 0
	for _, s := range streams {
		for n := 1; ; n++ {
			got := s.TryNext(200 * time.Millisecond)
			if got == "" {
				break
			}
			if !strings.HasPrefix(got, fmt.Sprintf("Recvd msg #%d: 'Fake message Num = ", n)) {
				t.Fatalf("chunk %q is not message #%d", got, n)
			}
			total++
		}
	}
	if total != 1600 {
		t.Fatalf("streams got %d messages, want 1600", total)
	}
}

func TestDisconnectLogsOutWithinASecond(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	s := openStream(t, g, 42)
	keep := openStream(t, g, 43)
	waitFor(t, "2 logins", 5*time.Second, func() bool { return r.Stats().Conns == 2 })
	start := time.Now()
	s.Conn.Close()
	waitFor(t, "logout", time.Second, func() bool { return r.Stats().Conns == 1 })
	t.Logf("logged out %s after the client closed", time.Since(start))
	if holders := r.Whois(42); len(holders) != 0 {
		t.Fatalf("id 42 still held by %v", holders)
	}
	if g.Hub().Closes(hub.ReasonPeer) != 1 {
		t.Fatalf("closes: %+v", g.Stats().Streams.Closed)
	}
	r.Send(43, []byte("still here"))
	if got := keep.Next(5 * time.Second); got != want(1, "still here") {
		t.Fatalf("got %q", got)
	}
}

func TestSlowClientEvictedOthersReceive(t *testing.T) {
	r, g := startSystem(t, gateway.Config{Hub: hub.Config{MaxPending: 16 << 10, SendBuffer: 4096}})
	fast := openStream(t, g, 5)
	// The slow client shrinks its receive window and never reads.
	slow := dial(t, g.Addr(), func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	})
	fmt.Fprintf(slow, "GET /test/5 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "2 logins", 5*time.Second, func() bool { return r.Stats().Conns == 2 })

	big := strings.Repeat("x", 1000)
	const n = 400
	// Lockstep: the fast client reads each message before the next is
	// sent, so only the slow one's output piles up.
	var sum wire.Tally
	for i := 0; i < n; i++ {
		res, err := r.Send(5, []byte(fmt.Sprint(i, big)))
		if err != nil {
			t.Fatal(err)
		}
		sum.Add(res.Tally)
		if got := fast.Next(10 * time.Second); got != want(i+1, fmt.Sprint(i, big)) {
			t.Fatalf("fast client message %d wrong: %.40q", i+1, got)
		}
	}
	waitFor(t, "slow client evicted", 5*time.Second, func() bool { return g.Hub().Closes(hub.ReasonSlow) == 1 })
	waitFor(t, "slow client logged out", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	// The sender was told: one copy closed the slow client (any routed
	// before its logout reached the router found it gone), and the fast
	// client's were all delivered.
	if sum.Slow != 1 || sum.Delivered < n || sum.Gateway != 0 {
		t.Fatalf("what the sends were told: %+v", sum)
	}
	if st := r.Stats(); st.Dropped.Slow != 1 || st.Dropped.Gone != sum.Gone || st.Delivered != sum.Delivered ||
		st.Routed != sum.Delivered+sum.Slow+sum.Gone {
		t.Fatalf("router stats %+v, the sends were told %+v", st, sum)
	}
	// What the slow client had pending when it was closed is counted too.
	if lost := g.Stats().Streams.LostPending["slow"]; lost == 0 || lost >= sum.Delivered-n+1 {
		t.Fatalf("lost pending %d of the %d copies queued to the slow client", lost, sum.Delivered-n)
	}
}

func TestBadInput(t *testing.T) {
	_, g := startSystem(t, gateway.Config{})
	base := "http://" + g.Addr().String()
	tests := []struct {
		method, path string
		status       int
		body         string
		allow        string
	}{
		{"GET", "/test/abc", 400, "bad id: ids: not a decimal integer: \"abc\"\n", ""},
		{"GET", "/test/", 400, "bad id: ids: empty id\n", ""},
		{"GET", "/test", 400, "bad id: ids: empty id\n", ""},
		{"GET", "/test/99999999999999999999", 400, "bad id: ids: out of the int64 range: \"99999999999999999999\"\n", ""},
		{"GET", "/test/1.5", 400, "bad id: ids: not a decimal integer: \"1.5\"\n", ""},
		{"GET", "/test/1/2", 400, "bad id: ids: not a decimal integer: \"1/2\"\n", ""},
		{"GET", "/test/+1", 400, "bad id: ids: not a decimal integer: \"+1\"\n", ""},
		{"GET", "/test/%00", 400, "bad id: ids: not a decimal integer: \"\\x00\"\n", ""},
		{"GET", "/nope", 404, "not found\n", ""},
		{"GET", "/test2/1", 404, "not found\n", ""},
		{"POST", "/test/1", 405, "method not allowed\n", "GET, HEAD"},
		{"DELETE", "/test/abc", 405, "method not allowed\n", "GET, HEAD"},
		{"PUT", "/", 405, "method not allowed\n", "GET, HEAD"},
		{"GET", "/", 200, "", ""},
		{"HEAD", "/test/1", 200, "", ""},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
			if tt.method == "HEAD" && (len(body) != 0 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8") {
				t.Fatalf("HEAD: body %q, headers %v", body, resp.Header)
			}
		})
	}
	if g.Stats().Streams.Opened != 0 {
		t.Fatal("a bad request opened a stream")
	}
}

func TestShutdownEndsStreamsAndLogsOut(t *testing.T) {
	r, stopRouter := startRouter(t, router.Config{})
	defer stopRouter()
	g := startGateway(t, r.NATSURL(), gateway.Config{})
	s := openStream(t, g, 9)
	old := dial(t, g.Addr(), nil)
	fmt.Fprintf(old, "GET /test/9 HTTP/1.0\r\n\r\n")
	waitFor(t, "2 logins", 5*time.Second, func() bool { return r.Stats().Conns == 2 })
	r.Send(9, []byte("last words"))
	if got := s.Next(5 * time.Second); got != want(1, "last words") {
		t.Fatalf("got %q", got)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := s.Next(5 * time.Second); got != "" || !s.Done() {
		t.Fatalf("after shutdown got %q, done=%v", got, s.Done())
	}
	// The HTTP/1.0 client gets a close-delimited body.
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(old)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(all), "HTTP/1.0 200 OK\r\n") || strings.Contains(string(all), "chunked") ||
		!strings.HasSuffix(string(all), "\r\n\r\nComet gateway welcomes you! Your Id: 9<br/>\n"+want(1, "last words")) {
		t.Fatalf("HTTP/1.0 stream: %q", all)
	}
	waitFor(t, "logins removed", 5*time.Second, func() bool { st := r.Stats(); return st.Conns == 0 && st.Gateways == 0 })
}

// TestSilentGatewayForgotten: a gateway that stops sending heartbeats (as
// a killed process does) has its logins purged.
func TestSilentGatewayForgotten(t *testing.T) {
	r, stop := startRouter(t, router.Config{GatewayTimeout: 300 * time.Millisecond})
	defer stop()
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f := wire.AppendUpHeader(nil, wire.KindUp, "ghost", 1)
	f = wire.AppendHello(f, 0)
	f = wire.AppendLogin(f, 1, 100)
	f = wire.AppendLogin(f, 1, 101)
	f = wire.AppendLogin(f, 2, 100)
	nc.Publish(wire.SubjectUp, f)
	nc.Flush()
	waitFor(t, "logins", 5*time.Second, func() bool { return r.Stats().Conns == 2 })
	if st := r.Stats(); st.IDs != 2 || st.Logins != 3 {
		t.Fatalf("stats %+v", st)
	}
	start := time.Now()
	waitFor(t, "gateway forgotten", 5*time.Second, func() bool { st := r.Stats(); return st.Conns == 0 && st.Gateways == 0 })
	t.Logf("forgotten after %s", time.Since(start))
}

// TestRouterRestartResyncs: a router that restarts gets every login back
// from the gateway, without the client reconnecting.
// startOnOwnNATS starts a NATS server, a router on it and a gateway, so
// that the router can be stopped and another started on the same NATS.
func startOnOwnNATS(t *testing.T) (*embeddednats.Server, *router.Router, func(), *gateway.Gateway) {
	t.Helper()
	ns := natstest.Start(t, false)
	r, stop := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	g := startGateway(t, ns.ClientURL(), gateway.Config{})
	t.Cleanup(func() { g.Close() })
	return ns, r, stop, g
}

func TestRouterRestartResyncs(t *testing.T) {
	ns, r1, stop1, g := startOnOwnNATS(t)
	s := openStream(t, g, 77)
	waitFor(t, "login", 5*time.Second, func() bool { return r1.Stats().Conns == 1 })
	stop1()

	r2, stop2 := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	defer stop2()
	waitFor(t, "login resynced", 5*time.Second, func() bool { return r2.Stats().Conns == 1 })
	if n := delivered(t, r2, 77, "after restart"); n != 1 {
		t.Fatalf("delivered to %d", n)
	}
	if got := s.Next(5 * time.Second); got != want(1, "after restart") {
		t.Fatalf("got %q", got)
	}
}

// TestMalformedFramesCounted: garbage on the router's subjects is counted
// and changes nothing.
func TestMalformedFramesCounted(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	s := openStream(t, g, 1)
	waitFor(t, "login", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, junk := range [][]byte{nil, []byte("hello"), {wire.Version, byte(wire.KindUp), 200}, {9, 9, 9}} {
		nc.Publish(wire.SubjectUp, junk)
		nc.Publish(wire.SubjectSend, junk)
		nc.Publish(wire.DownSubject("test-gw"), junk)
	}
	nc.Flush()
	waitFor(t, "bad frames counted", 5*time.Second, func() bool {
		return r.Stats().BadFrames >= 8 && g.Stats().Bad >= 4
	})
	r.Send(1, []byte("fine"))
	if got := s.Next(5 * time.Second); got != want(1, "fine") {
		t.Fatalf("got %q", got)
	}
}

// TestPartitionedRouterRestart: a gateway with -partitions 2 sends each
// id's login to its partition's router; when one partition's router
// restarts, it asks for its own partition's logins only (the other
// router is not disturbed), and sends through either router reach both
// partitions' clients.
func TestPartitionedRouterRestart(t *testing.T) {
	ns := natstest.Start(t, false)
	part := func(k int) (*router.Router, func()) {
		return startRouter(t, router.Config{NATSURL: ns.ClientURL(), Partitions: 2, Partition: k})
	}
	a, _ := part(0)
	b, stopB := part(1)
	g := startGateway(t, ns.ClientURL(), gateway.Config{Partitions: 2})
	t.Cleanup(func() { g.Close() })
	s10, s11 := openStream(t, g, 10), openStream(t, g, 11)
	waitFor(t, "one login at each router", 5*time.Second, func() bool { return a.Stats().Conns == 1 && b.Stats().Conns == 1 })
	if n := delivered(t, a, 11, "via a"); n != 1 {
		t.Fatalf("send to 11 through partition 0's router: delivered %d", n)
	}
	if got := s11.Next(5 * time.Second); got != want(1, "via a") {
		t.Fatalf("11 got %q", got)
	}

	stopB()
	logins := a.Stats().LoginsTotal
	b2, _ := part(1)
	waitFor(t, "partition 1's login back", 5*time.Second, func() bool { return b2.Stats().Conns == 1 })
	for _, send := range []struct {
		r  *router.Router
		id int64
		s  *testclient.Stream
		n  int
	}{{b2, 10, s10, 1}, {a, 11, s11, 2}, {b2, 11, s11, 3}} {
		if n := delivered(t, send.r, send.id, "after"); n != 1 {
			t.Fatalf("send to %d: delivered %d", send.id, n)
		}
		if got := send.s.Next(5 * time.Second); got != want(send.n, "after") {
			t.Fatalf("%d got %q", send.id, got)
		}
	}
	if st := a.Stats(); st.LoginsTotal != logins || st.Conns != 1 {
		t.Fatalf("partition 0's router was asked to log in again: %d logins (had %d), %d conns", st.LoginsTotal, logins, st.Conns)
	}
}
