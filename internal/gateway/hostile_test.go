package gateway_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/ws"
)

// masked returns a client frame (masked with a zero key: the payload
// as is).
func masked(b0 byte, payload []byte) []byte { return ws.AppendClientFrame(nil, b0, payload, [4]byte{}) }

// flood writes frame to c again and again, many to a write, until a
// write fails or stop closes; it reports how many it wrote.
func flood(c net.Conn, frame []byte, stop <-chan struct{}) (n int) {
	batch := make([]byte, 0, 16<<10)
	for len(batch)+len(frame) <= cap(batch) {
		batch = append(batch, frame...)
	}
	per := len(batch) / len(frame)
	for {
		select {
		case <-stop:
			return n
		default:
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(batch); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return n
		}
		n += per
	}
}

// pingRoundTrip times a {"op":"ping"} request's reply on r.
func pingRoundTrip(t *testing.T, r *rawWS, ref int) time.Duration {
	t.Helper()
	t0 := time.Now()
	r.frame(0x81, []byte(fmt.Sprintf(`{"op":"ping","ref":%d}`, ref)), true)
	want := fmt.Sprintf(`"ref":%d`, ref)
	for {
		r.wait = 30 * time.Second
		op, p, err := r.read()
		if err != nil {
			t.Fatalf("no reply to ping %d: %v", ref, err)
		}
		if op == ws.OpText && strings.Contains(string(p), want) {
			return time.Since(t0)
		}
	}
}

// One client streaming cheap frames (empty continuation frames inside an
// unfinished message, pings, unsolicited pongs) as fast as it can must
// not stall the gateway: it is closed 1008 past the control-frame rate,
// counted, and another client's ping round trip stays quick meanwhile.
// Before the fair loop, the epoll goroutine read the flooder until
// EAGAIN, which never came, and the other client waited for as long as
// the flood lasted (more than 10 s).
func TestHostileFrameFlooders(t *testing.T) {
	_, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	for _, tt := range []struct {
		name  string
		first []byte
		frame []byte
	}{
		{"empty continuations", masked(0x01, []byte("[")), masked(0x00, nil)},
		{"pings", nil, masked(0x89, nil)},
		{"pongs", nil, masked(0x8A, []byte("x"))},
		{"empty text messages", nil, masked(0x81, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.Hub().Stats().Closed["rate"]
			good := dialRaw(t, addr, "/ws/2")
			pingRoundTrip(t, good, 0)
			bad := dialRaw(t, addr, "/ws/1")
			if tt.first != nil {
				bad.c.Write(tt.first)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); flood(bad.c, tt.frame, stop) }()
			defer func() { close(stop); wg.Wait() }()
			var worst time.Duration
			for i := 1; i <= 20; i++ {
				worst = max(worst, pingRoundTrip(t, good, i))
				time.Sleep(10 * time.Millisecond)
			}
			// Generous: the loop answers in well under a millisecond;
			// the race detector and a loaded machine slow it, but a
			// stalled loop takes as long as the flood (seconds).
			if worst > 2*time.Second {
				t.Fatalf("a ping round trip took %s beside the flooder", worst)
			}
			waitFor(t, "the flooder closed for its rate", 10*time.Second, func() bool { return g.Hub().Stats().Closed["rate"] > before })
			t.Logf("slowest ping round trip beside the flooder: %s", worst)
		})
	}
}

// A client that sends requests as fast as it can and reads every reply
// is within its rights, and is not closed; the loop reads it one turn
// (hub.Config.ReadBudget) at a time between the other clients' events,
// so another client's round trip stays quick.
func TestBusyClientTakesTurns(t *testing.T) {
	_, g := startSystem(t, gateway.Config{WSRequestRate: 65535}) // the loop's fairness alone
	addr := g.Addr().String()
	good := dialRaw(t, addr, "/ws/2")
	pingRoundTrip(t, good, 0)
	busy := dialRaw(t, addr, "/ws/1")
	go func() { // reads (and drops) every reply
		buf := make([]byte, 64<<10)
		for {
			busy.c.SetReadDeadline(time.Now().Add(time.Minute))
			if _, err := busy.c.Read(buf); err != nil {
				return
			}
		}
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent int
	wg.Add(1)
	go func() { defer wg.Done(); sent = flood(busy.c, masked(0x81, []byte(`{"op":"ping","ref":1}`)), stop) }()
	var worst time.Duration
	for i := 1; i <= 20; i++ {
		worst = max(worst, pingRoundTrip(t, good, i))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if worst > 2*time.Second {
		t.Fatalf("a ping round trip took %s beside the busy client", worst)
	}
	if st := g.Hub().Stats(); st.Open != 2 {
		t.Fatalf("open sessions %d, want 2 (the busy client kept): closed %v", st.Open, st.Closed)
	}
	t.Logf("busy client sent %d requests; slowest ping round trip beside it: %s", sent, worst)
}

// A client that sends part of a message and then only keeps the
// connection alive is closed 1008 when the message has stayed incomplete
// for -ws-message-timeout (stalled), and its buffers go back.
func TestUnfinishedMessageStalls(t *testing.T) {
	_, g := startSystem(t, gateway.Config{Hub: hub.Config{InputTimeout: time.Second}})
	addr := g.Addr().String()
	for _, tt := range []struct {
		name string
		send []byte
	}{
		{"fragment", masked(0x01, make([]byte, 8<<10))},
		{"half a frame", masked(0x81, make([]byte, 8<<10))[:4<<10]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.Hub().Stats().Closed["stalled"]
			r := dialRaw(t, addr, "/ws/1")
			if _, err := r.c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "input held", 5*time.Second, func() bool { return g.Hub().Stats().InputHeld > 0 })
			t0 := time.Now()
			for i := 0; ; i++ { // a keep-alive that is no progress
				if i > 40 {
					t.Fatal("not closed within 4 s")
				}
				if tt.name == "fragment" {
					r.c.Write(masked(0x8A, nil))
				}
				if g.Hub().Stats().Closed["stalled"] > before {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code := r.closeCode(); code != ws.ClosePolicy {
				t.Fatalf("close code %d, want 1008", code)
			}
			if held := g.Hub().Stats().InputHeld; held != 0 {
				t.Fatalf("%d bytes still held after the close", held)
			}
			t.Logf("closed as stalled %s after its input began", time.Since(t0).Round(10*time.Millisecond))
		})
	}
}

// Clients that each hold a little input are within their own bounds,
// but together past the gateway's -input-budget: the largest are closed
// 1009 (input_budget) until the total is back under it, and the others
// stay.
func TestInputBudget(t *testing.T) {
	const budget = 64 << 10
	_, g := startSystem(t, gateway.Config{Hub: hub.Config{InputBudget: budget, InputTimeout: time.Minute}})
	addr := g.Addr().String()
	var small, large []*rawWS
	for i := range 8 {
		r := dialRaw(t, addr, fmt.Sprintf("/ws/%d", i))
		r.c.Write(masked(0x01, make([]byte, 2<<10)))
		small = append(small, r)
	}
	for i := range 10 {
		r := dialRaw(t, addr, fmt.Sprintf("/ws/%d", 100+i))
		r.c.Write(masked(0x01, make([]byte, 12<<10)))
		large = append(large, r)
	}
	waitFor(t, "largest holders closed", 5*time.Second, func() bool {
		st := g.Hub().Stats()
		return st.Closed["input_budget"] > 0 && st.InputHeld <= budget
	})
	closed := 0
	for _, r := range large {
		r.wait = 200 * time.Millisecond
		op, p, err := r.read()
		for err == nil && op != ws.OpClose {
			op, p, err = r.read()
		}
		if err == nil {
			if code := binary.BigEndian.Uint16(p); code != ws.CloseTooBig {
				t.Fatalf("close code %d, want 1009", code)
			}
			closed++
		}
	}
	st := g.Hub().Stats()
	if closed == 0 || uint64(closed) != st.Closed["input_budget"] {
		t.Fatalf("%d large holders saw a close frame, %d counted", closed, st.Closed["input_budget"])
	}
	if st.Open != 18-int64(closed) {
		t.Fatalf("open %d: the small holders must stay", st.Open)
	}
	t.Logf("%d of 10 large holders closed; %d bytes held, budget %d", closed, st.InputHeld, budget)
	_ = small
}

// A client past -ws-request-rate is not closed but slowed: the gateway
// reads it no more until the next second, so its requests are all
// answered, that many a second.
func TestRequestRateThrottles(t *testing.T) {
	const rate, n = 200, 600
	_, g := startSystem(t, gateway.Config{WSRequestRate: rate})
	r := dialRaw(t, g.Addr().String(), "/ws/1")
	var batch []byte
	for i := range n {
		batch = append(batch, masked(0x81, []byte(fmt.Sprintf(`{"op":"ping","ref":%d}`, i)))...)
	}
	t0 := time.Now()
	if _, err := r.c.Write(batch); err != nil {
		t.Fatal(err)
	}
	r.wait = 10 * time.Second
	var at []time.Duration // when each reply came
	for len(at) < n {
		op, p, err := r.read()
		if err != nil {
			t.Fatalf("after %d replies: %v", len(at), err)
		}
		if op == ws.OpText && strings.Contains(string(p), `"op":"ping"`) {
			at = append(at, time.Since(t0))
		}
	}
	// The first second's share at once, the rest a second or more later.
	if at[rate-1] > time.Second || at[n-1] < time.Second {
		t.Fatalf("reply %d after %s, reply %d after %s", rate, at[rate-1], n, at[n-1])
	}
	if st := g.Hub().Stats(); st.Throttled < 2 || st.Open != 1 {
		t.Fatalf("throttled %d times, open %d", st.Throttled, st.Open)
	}
	t.Logf("%d requests at once, %d a second allowed: the last answered after %s", n, rate, at[n-1].Round(time.Millisecond))
}

// A client that stops reading with less pending than the gateway's
// bounds (its window closed, the rest in the kernel's send buffer) would
// be probed for ever: TCP_USER_TIMEOUT makes the kernel give up on it,
// and the gateway counts it as a timeout.
func TestNeverReaderAborted(t *testing.T) {
	r, g := startSystem(t, gateway.Config{TCPUserTimeout: time.Second})
	c := dial(t, g.Addr(), func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	})
	fmt.Fprintf(c, "GET /test/9 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "login", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	big := strings.Repeat("x", 1000)
	for i := 0; i < 30; i++ { // 30 KB: past its window, within the gateway's buffers
		delivered(t, r, 9, big)
	}
	t0 := time.Now()
	waitFor(t, "the never-reader aborted as a timeout", 20*time.Second, func() bool { return g.Hub().Closes(hub.ReasonTimeout) == 1 })
	if st := g.Hub().Stats(); st.Closed["slow"] != 0 {
		t.Fatalf("closed as slow, not by the kernel: %v", st.Closed)
	}
	t.Logf("aborted %s after its last message", time.Since(t0).Round(100*time.Millisecond))
}
