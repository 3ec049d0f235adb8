package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sse "github.com/tmaxmax/go-sse"
	"go.uber.org/zap/zaptest"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/msggen"
	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/router"
)

func startNamedGateway(t *testing.T, natsURL, name string, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg.Addr, cfg.AdminAddr, cfg.NATSURL, cfg.Name = "127.0.0.1:0", "off", natsURL, name
	cfg.Logger = zaptest.NewLogger(t).Named(name)
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			g.Close()
		}
	})
	return g
}

type pollAnswer = longpoll.Answer

// poll makes one long-poll and returns the status, the decoded answer (for
// 200) and the raw body.
func poll(c *http.Client, addr string, id int64, query string) (int, pollAnswer, string, error) {
	var a pollAnswer
	resp, err := c.Get(fmt.Sprintf("http://%s/poll/%d?%s", addr, id, query))
	if err != nil {
		return 0, a, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, a, "", err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			return resp.StatusCode, a, string(body), fmt.Errorf("answer %q: %w", body, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			return resp.StatusCode, a, string(body), fmt.Errorf("content type %q", ct)
		}
	}
	return resp.StatusCode, a, string(body), nil
}

func mustPoll(t *testing.T, c *http.Client, addr string, id int64, query string) pollAnswer {
	t.Helper()
	code, a, body, err := poll(c, addr, id, query)
	if err != nil || code != http.StatusOK {
		t.Fatalf("poll %d?%s: %d %q %v", id, query, code, body, err)
	}
	return a
}

// TestPollExactlyOnceAcrossGatewaysWhileMsggenFlatOut: long-poll clients
// that alternate between two gateway processes on every poll get every
// message of their id exactly once, in order, while msggen sends flat out.
func TestPollExactlyOnceAcrossGatewaysWhileMsggenFlatOut(t *testing.T) {
	r, stopRouter := startRouter(t, router.Config{
		GatewayTimeout: 3 * time.Second,
		Retention:      retention.Config{MaxMessages: 100_000, MaxAge: time.Minute, MaxBytes: 256 << 20},
	})
	defer stopRouter()
	gws := []*gateway.Gateway{
		startNamedGateway(t, r.NATSURL(), "gw-a", gateway.Config{}),
		startNamedGateway(t, r.NATSURL(), "gw-b", gateway.Config{}),
	}
	waitFor(t, "2 gateways", 5*time.Second, func() bool { return r.Stats().Gateways == 2 })

	const ids = 20
	type result struct {
		seqs  []uint64
		polls int
		err   error
	}
	results := make([]result, ids)
	var started sync.WaitGroup
	started.Add(ids)
	var sendDone atomic.Bool
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			id := int64(i + 1)
			clients := []*http.Client{{Timeout: 10 * time.Second}, {Timeout: 10 * time.Second}}
			cursor := ""
			empty := 0
			for n := 0; ; n++ {
				q := "timeout=300ms"
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				code, a, body, err := poll(clients[n%2], gws[n%2].Addr().String(), id, q)
				if err != nil || code != http.StatusOK {
					res.err = fmt.Errorf("poll %d: %d %q %v", n, code, body, err)
					if n == 0 {
						started.Done()
					}
					return
				}
				res.polls++
				if n == 0 {
					started.Done()
				}
				if a.Missed {
					res.err = fmt.Errorf("poll %d: missed (cursor %s)", n, cursor)
					return
				}
				for _, m := range a.Messages {
					res.seqs = append(res.seqs, m.Seq)
					if want := fmt.Sprintf(" seq=%d", m.Seq); !strings.HasSuffix(m.Data, want) {
						res.err = fmt.Errorf("message %d is %q, want suffix %q", m.Seq, m.Data, want)
						return
					}
				}
				cursor = a.Cursor
				if len(a.Messages) == 0 && sendDone.Load() {
					if empty++; empty == 2 {
						return
					}
				}
			}
		}()
	}
	started.Wait()
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	gen, err := msggen.Run(context.Background(), nc, msggen.Config{
		Num: 3000, Max: ids, Procs: 4, Batch: 64, AckTimeout: 5 * time.Second, Numbered: true,
	})
	sendDone.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	total, polls := 0, 0
	for i, res := range results {
		if res.err != nil {
			t.Fatalf("id %d: %v", i+1, res.err)
		}
		for j, s := range res.seqs {
			if s != uint64(j+1) {
				t.Fatalf("id %d: message %d has position %d (lost or duplicated)", i+1, j+1, s)
			}
		}
		total += len(res.seqs)
		polls += res.polls
	}
	if uint64(total) != gen.Sent {
		t.Fatalf("received %d messages, msggen sent %d", total, gen.Sent)
	}
	t.Logf("%d messages in %d polls over 2 gateways; router %+v", total, polls, r.Stats().Retention)
	if st := r.Stats(); st.Missed != 0 {
		t.Fatalf("router counted %d missed resumes", st.Missed)
	}
}

func TestPollSemantics(t *testing.T) {
	r, stopRouter := startRouter(t, router.Config{
		GatewayTimeout: 3 * time.Second,
		Retention:      retention.Config{MaxMessages: 4},
	})
	defer stopRouter()
	g := startNamedGateway(t, r.NATSURL(), "gw-sem", gateway.Config{PollTimeout: 200 * time.Millisecond, MaxPollTimeout: 500 * time.Millisecond})
	waitFor(t, "gateway known", 5*time.Second, func() bool { return r.Stats().Gateways == 1 })
	addr := g.Addr().String()
	c := &http.Client{Timeout: 5 * time.Second}

	t.Run("no cursor times out empty with the current cursor", func(t *testing.T) {
		start := time.Now()
		a := mustPoll(t, c, addr, 1, "")
		if len(a.Messages) != 0 || a.Missed || a.ID != 1 || !strings.HasSuffix(a.Cursor, "-0") {
			t.Fatalf("answer %+v", a)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answered after %s, before its 200ms timeout", d)
		}
	})
	t.Run("a waiting poll is answered by the next message", func(t *testing.T) {
		cur := mustPoll(t, c, addr, 2, "timeout=1ms").Cursor
		waitFor(t, "first poll done", 5*time.Second, func() bool { return g.Stats().Streams.OpenPoll == 0 })
		done := make(chan pollAnswer, 1)
		go func() { _, a, _, _ := poll(c, addr, 2, "timeout=5s&cursor="+cur); done <- a }()
		waitFor(t, "poll waiting", 5*time.Second, func() bool { return g.Stats().Streams.OpenPoll == 1 })
		start := time.Now()
		r.Send(2, []byte("line1\nline2 \"quoted\" <b>"))
		a := <-done
		if len(a.Messages) != 1 || a.Messages[0].Data != "line1\nline2 \"quoted\" <b>" || a.Messages[0].Seq != 1 {
			t.Fatalf("answer %+v", a)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("answered %s after the send", d)
		}
	})
	t.Run("messages between polls are kept; past the window is missed", func(t *testing.T) {
		cur := mustPoll(t, c, addr, 3, "timeout=1ms").Cursor
		waitFor(t, "poll logged out", 5*time.Second, func() bool { return r.Stats().Conns == 0 })
		for i := 1; i <= 3; i++ {
			// Nobody holds id 3 between polls, but its history keeps them.
			if res, err := r.Send(3, []byte(fmt.Sprint("m", i))); err != nil || res.Tally.Delivered != 0 || !res.Kept {
				t.Fatalf("send %d between polls: %+v, %v", i, res, err)
			}
		}
		a := mustPoll(t, c, addr, 3, "cursor="+cur)
		if len(a.Messages) != 3 || a.Missed || a.Messages[2].Data != "m3" {
			t.Fatalf("answer %+v", a)
		}
		for i := 4; i <= 10; i++ {
			r.Send(3, []byte(fmt.Sprint("m", i)))
		}
		b := mustPoll(t, c, addr, 3, "cursor="+a.Cursor)
		if !b.Missed || len(b.Messages) != 4 || b.Messages[0].Data != "m7" || b.Messages[3].Seq != 10 {
			t.Fatalf("past the window: %+v", b)
		}
		cur3, err := cursor.Parse(b.Cursor)
		if err != nil {
			t.Fatal(err)
		}
		cur3.Epoch++
		other := mustPoll(t, c, addr, 3, "cursor="+cur3.String())
		if !other.Missed || len(other.Messages) != 4 {
			t.Fatalf("cursor of another epoch: %+v", other)
		}
	})
	t.Run("bad cursors and timeouts are 400 with a reason", func(t *testing.T) {
		for q, reason := range map[string]string{
			"cursor=abc":              "bad cursor",
			"cursor=0-1":              "bad cursor",
			"cursor=1-x":              "bad cursor",
			"timeout=soon":            "bad timeout",
			"timeout=-1s":             "bad timeout",
			"timeout=0":               "bad timeout",
			"cursor=1-1&timeout=1h2x": "bad timeout",
			"cursor=" + strings.Repeat("f", 17) + "-1": "bad cursor",
		} {
			code, _, body, err := poll(c, addr, 4, q)
			if err != nil || code != http.StatusBadRequest || !strings.HasPrefix(body, reason) {
				t.Errorf("%s: %d %q %v; want 400 %q", q, code, body, err, reason)
			}
		}
		code, _, body, _ := poll(c, "127.0.0.1:"+strings.Split(addr, ":")[1], 0, "")
		if code != http.StatusOK {
			t.Errorf("id 0: %d %q", code, body)
		}
		resp, err := c.Get("http://" + addr + "/poll/x1")
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bad id: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("timeouts above the maximum are cut to it", func(t *testing.T) {
		start := time.Now()
		mustPoll(t, c, addr, 5, "timeout=1h")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("timeout=1h waited %s; the maximum is 500ms", d)
		}
	})
	t.Run("keep-alive connections are reused across polls", func(t *testing.T) {
		reused := 0
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused++
			}
		}}
		kc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
		for i := 0; i < 5; i++ {
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET",
				fmt.Sprintf("http://%s/poll/6?timeout=1ms", addr), nil)
			resp, err := kc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if reused != 4 {
			t.Fatalf("%d of 4 later polls reused the connection", reused)
		}
	})
	t.Run("the router holds a long-poll between polls for the grace period", func(t *testing.T) {
		waitFor(t, "polls logged out", 5*time.Second, func() bool { return r.Stats().Conns == 0 })
		if st := r.Stats().Retention; st.IDs < 6 {
			t.Fatalf("histories dropped before the grace period: %+v", st)
		}
	})
}

// TestPollAnsweredOnShutdown: a poll waiting on a kept-alive connection
// is answered when the gateway stops, with or without a drain, and does
// not hold the stop for its timeout (fasthttp's Shutdown waits for the
// connections it serves to be idle; the hub's answer makes it so).
func TestPollAnsweredOnShutdown(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(fmt.Sprint("drain=", drain), func(t *testing.T) {
			r, stopRouter := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second})
			defer stopRouter()
			g, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", AdminAddr: "off", NATSURL: r.NATSURL(), Name: "gw-down",
				DrainPeriod: time.Second, Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Timeout: 40 * time.Second}
			cur := mustPoll(t, c, g.Addr().String(), 9, "timeout=1ms").Cursor
			waitFor(t, "first poll done", 5*time.Second, func() bool { return g.Stats().Streams.OpenPoll == 0 })
			done := make(chan error, 1)
			go func() {
				// On the connection the first poll kept alive.
				resp, err := c.Get(fmt.Sprintf("http://%s/poll/9?timeout=30s&cursor=%s", g.Addr(), cur))
				if err == nil {
					var a pollAnswer
					err = json.NewDecoder(resp.Body).Decode(&a)
					resp.Body.Close()
					if err == nil && (a.Cursor != cur || !resp.Close) {
						err = fmt.Errorf("answer %+v close=%v", a, resp.Close)
					}
				}
				done <- err
			}()
			waitFor(t, "poll waiting", 5*time.Second, func() bool { return g.Stats().Streams.OpenPoll == 1 })
			start := time.Now()
			stopped := make(chan struct{})
			go func() {
				if drain {
					g.Drain()
				}
				g.Close()
				close(stopped)
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("waiting poll not answered on shutdown")
			}
			select {
			case <-stopped:
				t.Logf("stopped in %v", time.Since(start))
			case <-time.After(10 * time.Second):
				t.Fatal("the gateway did not stop within 10 s of a 30 s poll's answer")
			}
		})
	}
}

// TestPollDuringDrain: a poll that comes on a kept-alive connection while
// the gateway drains is answered 503 with Retry-After, and the
// connection closed.
func TestPollDuringDrain(t *testing.T) {
	r, stopRouter := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second})
	defer stopRouter()
	g, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", AdminAddr: "off", NATSURL: r.NATSURL(), Name: "gw-drain",
		DrainPeriod: 3 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// A session for the drain to spread over, so it lasts.
	sse, err := http.Get(fmt.Sprintf("http://%s/sse/1", g.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	mustPoll(t, c, g.Addr().String(), 9, "timeout=1ms")
	go g.Drain()
	waitFor(t, "draining", 5*time.Second, func() bool { return g.Ready() != nil })
	resp, err := c.Get(fmt.Sprintf("http://%s/poll/9?timeout=30s", g.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !resp.Close || !strings.Contains(string(body), "shutting down") {
		t.Fatalf("a poll during the drain: %s %v %q", resp.Status, resp.Header, body)
	}
}

// cutProxy forwards loopback TCP connections to a target that can change,
// and cuts every open connection on demand.
type cutProxy struct {
	ln     net.Listener
	target atomic.Value
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.target.Store(target)
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target.Load().(string))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestSSEResumesWithLastEventIDThroughAnotherGateway: a real EventSource
// client (tmaxmax/go-sse) is cut off, reconnects with Last-Event-ID
// through another gateway process, and gets every message exactly once,
// multi-line ones intact, including those sent while it was away.
func TestSSEResumesWithLastEventIDThroughAnotherGateway(t *testing.T) {
	r, stopRouter := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second})
	defer stopRouter()
	a := startNamedGateway(t, r.NATSURL(), "gw-sse-a", gateway.Config{})
	b := startNamedGateway(t, r.NATSURL(), "gw-sse-b", gateway.Config{})
	waitFor(t, "2 gateways", 5*time.Second, func() bool { return r.Stats().Gateways == 2 })
	proxy := newCutProxy(t, a.Addr().String())

	var mu sync.Mutex
	var got, ids []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+proxy.ln.Addr().String()+"/sse/42", nil)
	client := &sse.Client{OnRetry: func(err error, d time.Duration) { t.Logf("sse client retries in %s: %v", d, err) }, HTTPClient: &http.Client{}, Backoff: sse.Backoff{InitialInterval: 50 * time.Millisecond, Multiplier: 1, Jitter: -1}}
	conn := client.NewConnection(req)
	conn.SubscribeMessages(func(e sse.Event) {
		if e.Data == "" {
			return // the retry field, or an id that only moves the cursor
		}
		mu.Lock()
		got = append(got, e.Data)
		ids = append(ids, e.LastEventID)
		mu.Unlock()
	})
	var missed atomic.Int32
	conn.SubscribeEvent("missed", func(sse.Event) { missed.Add(1) })
	go func() { t.Log("sse connect:", conn.Connect()) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	waitFor(t, "stream logged in", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	var want []string
	send := func(i int) {
		m := fmt.Sprintf("message %d\nsecond line\r\nthird", i)
		if i%3 == 0 {
			m = fmt.Sprintf("message %d", i)
		}
		want = append(want, m)
		r.Send(42, []byte(m))
	}
	for i := 1; i <= 10; i++ {
		send(i)
	}
	waitFor(t, "10 events", 5*time.Second, func() bool { return count() == 10 })

	// Cut; the next connection goes to gateway b. Messages sent while the
	// client is away are kept and caught up.
	proxy.target.Store(b.Addr().String())
	proxy.cut()
	waitFor(t, "logged out", 5*time.Second, func() bool { return r.Stats().Conns == 0 })
	for i := 11; i <= 20; i++ {
		send(i)
	}
	waitFor(t, "resumed on gateway b", 5*time.Second, func() bool { return b.Stats().Streams.OpenSSE == 1 })
	for i := 21; i <= 30; i++ {
		send(i)
	}
	waitFor(t, "30 events", 5*time.Second, func() bool { return count() == 30 })
	time.Sleep(100 * time.Millisecond) // any duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if i >= len(got) || got[i] != strings.ReplaceAll(want[i], "\r\n", "\n") {
			t.Fatalf("event %d = %q, want %q (all: %q)", i+1, got[min(i, len(got)-1)], want[i], got)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	if !strings.HasSuffix(ids[29], "-30") {
		t.Fatalf("last event id %q", ids[29])
	}
	if missed.Load() != 0 || r.Stats().Missed != 0 || r.Stats().Resumes != 2 {
		t.Fatalf("missed %d, router %+v", missed.Load(), r.Stats())
	}
}

// readSSE opens /sse/id with extra request headers and returns a reader of
// the raw event stream (the chunked framing undone).
func readSSE(t *testing.T, addr string, path string, header string) *bufio.Reader {
	t.Helper()
	_, br := openSSE(t, addr, path, header)
	return br
}

// openSSE is readSSE that also returns the connection, to close it.
func openSSE(t *testing.T, addr, path, header string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, header)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("%s: %s %v", path, resp.Status, resp.Header)
	}
	return conn, bufio.NewReader(resp.Body)
}

// nextEvent reads one event's lines (up to the blank line).
func nextEvent(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", lines, err)
		}
		l = strings.TrimSuffix(l, "\n")
		if l == "" {
			return lines
		}
		lines = append(lines, l)
	}
}

func TestSSEMissedAndHeartbeats(t *testing.T) {
	r, g := startSystem(t, gateway.Config{SSEHeartbeat: 100 * time.Millisecond, StreamHeartbeat: 100 * time.Millisecond})
	addr := g.Addr().String()

	br := readSSE(t, addr, "/sse/7", "")
	if ev := nextEvent(t, br); len(ev) != 1 || ev[0] != "retry: 2000" {
		t.Fatalf("first event %q", ev)
	}
	ev := nextEvent(t, br)
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "id: ") || !strings.HasSuffix(ev[0], "-0") {
		t.Fatalf("no-cursor resume should set the id: %q", ev)
	}
	epoch := strings.TrimSuffix(strings.TrimPrefix(ev[0], "id: "), "-0")
	if ev := nextEvent(t, br); len(ev) != 1 || ev[0] != ": " {
		t.Fatalf("heartbeat %q", ev)
	}
	r.Send(7, []byte("x"))
	for {
		ev := nextEvent(t, br)
		if len(ev) == 1 && ev[0] == ": " {
			continue
		}
		if len(ev) != 2 || ev[0] != "id: "+epoch+"-1" || ev[1] != "data: x" {
			t.Fatalf("event %q", ev)
		}
		break
	}

	// A Last-Event-ID of another epoch: told it missed messages, and
	// given the kept ones.
	other, err := cursor.Parse(epoch + "-5")
	if err != nil {
		t.Fatal(err)
	}
	other.Epoch++
	br2 := readSSE(t, addr, "/sse/7?cursor="+epoch+"-0", "Last-Event-ID: "+other.String()+"\r\n")
	nextEvent(t, br2)
	ev = nextEvent(t, br2)
	if len(ev) != 3 || ev[0] != "event: missed" || ev[1] != "id: "+epoch+"-0" || ev[2] != `data: {"missed":true,"cursor":"`+epoch+`-0"}` {
		t.Fatalf("missed event %q", ev)
	}
	if ev := nextEvent(t, br2); len(ev) != 2 || ev[1] != "data: x" {
		t.Fatalf("kept message after missed: %q", ev)
	}

	// Bad Last-Event-ID is a 400 naming the header.
	resp, err := http.DefaultClient.Do(func() *http.Request {
		req, _ := http.NewRequest("GET", "http://"+addr+"/sse/7", nil)
		req.Header.Set("Last-Event-ID", "nope")
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.HasPrefix(string(body), "bad Last-Event-ID") {
		t.Fatalf("bad Last-Event-ID: %d %q", resp.StatusCode, body)
	}

	// The chunked stream's heartbeat is a chunk holding one newline.
	s := openStream(t, g, 8)
	if got := s.Next(5 * time.Second); got != "\n" {
		t.Fatalf("stream heartbeat %q", got)
	}
	if st := g.Stats().Streams; st.Heartbeats < 3 {
		t.Fatalf("heartbeats %d", st.Heartbeats)
	}
}

// TestSSEAcrossRouterRestart: a router that restarts has lost every
// history; the gateway's resync resumes each SSE stream with its cursor,
// the new router says messages may have been missed (a new epoch), and
// the stream goes on with the new router's messages.
func TestSSEAcrossRouterRestart(t *testing.T) {
	ns, r1, stop1, g := startOnOwnNATS(t)
	br := readSSE(t, g.Addr().String(), "/sse/5", "")
	nextEvent(t, br) // retry
	nextEvent(t, br) // starting id
	waitFor(t, "login", 5*time.Second, func() bool { return r1.Stats().Conns == 1 })
	r1.Send(5, []byte("before"))
	if ev := nextEvent(t, br); len(ev) != 2 || ev[1] != "data: before" {
		t.Fatalf("event %q", ev)
	}
	stop1()

	r2, stop2 := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	defer stop2()
	ev := nextEvent(t, br)
	if len(ev) != 3 || ev[0] != "event: missed" {
		t.Fatalf("after the router restart: %q", ev)
	}
	waitFor(t, "login resynced", 5*time.Second, func() bool { return r2.Stats().Conns == 1 && r2.Stats().Resumes == 1 })
	r2.Send(5, []byte("after"))
	ev = nextEvent(t, br)
	if len(ev) != 2 || ev[1] != "data: after" || !strings.HasSuffix(ev[0], "-1") {
		t.Fatalf("event %q", ev)
	}
}

// TestPollWithoutRouter: a long-poll whose resume the router never
// answers waits ResumeWait past its timeout, then gets a 503 saying so.
func TestPollWithoutRouter(t *testing.T) {
	ns := natstest.Start(t, false)
	g := startGateway(t, ns.ClientURL(), gateway.Config{PollResumeWait: 300 * time.Millisecond})
	defer g.Close()
	start := time.Now()
	resp, err := http.Get("http://" + g.Addr().String() + "/poll/1?timeout=100ms")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "router did not answer") {
		t.Fatalf("%d %v %q", resp.StatusCode, resp.Header, body)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("answered after %s, before timeout + resume wait", d)
	}
}

// TestStreamRequestInPieces: a stream request that arrives in parts (the
// direct path reads only the first) is finished by fasthttp, which gets
// the part already read; the stream works as any other.
func TestStreamRequestInPieces(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	c := dial(t, g.Addr(), nil)
	io.WriteString(c, "GET /test/31 HTTP/1.1\r\n")
	time.Sleep(1200 * time.Millisecond) // past the listener's deferred accept
	io.WriteString(c, "Host: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	waitFor(t, "login", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	r.Send(31, []byte("pieces"))
	got, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len(want(1, "pieces"))+len("Comet gateway welcomes you! Your Id: 31<br/>\n"))))
	if !strings.HasSuffix(string(got), want(1, "pieces")) {
		t.Fatalf("got %q", got)
	}
}
