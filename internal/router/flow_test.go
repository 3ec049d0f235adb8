package router

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/wire"
)

// startFlowRouter starts a router with a small window and short timeouts.
func startFlowRouter(t *testing.T, deliverTimeout time.Duration) *Router {
	t.Helper()
	cfg := testConfig(t)
	cfg.Window = 64 << 10
	cfg.DeliverTimeout = deliverTimeout
	cfg.OverloadWait = 200 * time.Millisecond
	cfg.GatewayTimeout = time.Second
	r, _ := runTestRouter(t, cfg)
	return r
}

func login(t *testing.T, r *Router, nc *nats.Conn, gw string, conn uint64, id int64) {
	t.Helper()
	nc.Publish(wire.SubjectUp, wire.AppendLogin(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, gw, 1), 0), conn, id))
	nc.Flush()
	waitFor(t, "login", func() bool { return r.Stats().Conns == 1 })
}

// heartbeats keeps a fake gateway with one login alive until the test ends.
func heartbeats(t *testing.T, nc *nats.Conn, gw string) {
	hb := time.NewTicker(200 * time.Millisecond)
	stop := make(chan struct{})
	t.Cleanup(func() { hb.Stop(); close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-hb.C:
				nc.Publish(wire.SubjectUp, wire.AppendHeartbeat(wire.AppendUpHeader(nil, wire.KindUp, gw, 1), 1))
			}
		}
	}()
}

func requestAck(t *testing.T, nc *nats.Conn, timeout time.Duration, sends ...string) wire.Record {
	t.Helper()
	f := wire.AppendHeader(nil, wire.KindSend)
	for _, s := range sends {
		f = wire.AppendSend(f, 5, []byte(s))
	}
	m, err := nc.Request(wire.SubjectSend, f, timeout)
	if err != nil {
		t.Fatal(err)
	}
	var d wire.Decoder
	var rec wire.Record
	if _, err := d.Reset(m.Data); err != nil || !d.Next(&rec) || rec.Op != wire.OpAck {
		t.Fatalf("ack %+v %v", rec, err)
	}
	return rec
}

// TestUnconfirmedCopiesCountedLost: a gateway that takes frames and never
// says what became of them (as if they were lost on the way) does not
// make the sender's ack a lie: after the deliver timeout the copies are
// counted lost with the gateway, in the ack and in the stats.
func TestUnconfirmedCopiesCountedLost(t *testing.T) {
	r := startFlowRouter(t, 300*time.Millisecond)
	nc, down := fakeGatewayDone(t, r, "mute", false)
	login(t, r, nc, "mute", 1, 5)
	heartbeats(t, nc, "mute") // alive: only its frames go unanswered
	ack := requestAck(t, nc, 5*time.Second, "a", "b", "c")
	if ack.Count != 3 || ack.Tally.Delivered != 0 || ack.Tally.Gateway != 3 {
		t.Fatalf("ack %+v", ack)
	}
	<-down
	if st := r.Stats(); st.Dropped.Gateway != 3 || st.Delivered != 0 || st.Routed != 3 || st.Gateways != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestForgottenGatewayResolvesFlights: frames in flight to a gateway that
// dies are counted lost when it is forgotten, not at the deliver timeout.
func TestForgottenGatewayResolvesFlights(t *testing.T) {
	r := startFlowRouter(t, time.Minute)
	nc, _ := fakeGatewayDone(t, r, "dies", false)
	login(t, r, nc, "dies", 1, 5)
	start := time.Now()
	ack := requestAck(t, nc, 30*time.Second, "x")
	if ack.Tally.Gateway != 1 || r.Stats().Gateways != 0 {
		t.Fatalf("ack %+v, stats %+v", ack, r.Stats())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("answered after %s", d)
	}
}

// TestFullWindowRefusesHTTPSend: while a gateway's window is full the HTTP
// send API refuses with 503 and Retry-After, and routes nothing; a NATS
// sender waits instead, and its frame goes out once the window has room.
func TestFullWindowRefusesHTTPSend(t *testing.T) {
	r := startFlowRouter(t, 2*time.Second)
	nc, down := fakeGatewayDone(t, r, "full", false)
	login(t, r, nc, "full", 1, 5)
	heartbeats(t, nc, "full")
	big := strings.Repeat("z", 70<<10) // one message fills the 64 KiB window
	sent := make(chan wire.Record, 2)
	go func() { sent <- requestAck(t, nc, 10*time.Second, big) }()
	<-down
	waitFor(t, "window full", func() bool { return r.Stats().GatewayList[0].InflightBytes > 64<<10 })

	resp, err := http.Post("http://"+r.AdminAddr()+"/send/5", "text/plain", strings.NewReader("refused"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "overloaded") {
		t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if st := r.Stats(); st.Refused != 1 || st.Sent != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A NATS sender's frame waits for the window (here: until the first
	// frame's deliver timeout), then goes out; nothing is refused.
	go func() { sent <- requestAck(t, nc, 10*time.Second, "waited") }()
	for i := 0; i < 2; i++ {
		select {
		case a := <-sent:
			if a.Count != 1 || a.Tally.Gateway != 1 {
				t.Fatalf("ack %+v", a)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no ack")
		}
	}
	// The first frame's deliver timeout also asks the gateway for its
	// sessions (a resync frame, which may come before the waiting one).
	for waited := false; !waited; {
		select {
		case m := <-down:
			var d wire.Decoder
			var rec wire.Record
			d.Reset(m.Data)
			if !d.Next(&rec) || rec.Op != wire.OpResync && string(rec.Msg) != "waited" {
				t.Fatalf("second frame %+v", rec)
			}
			waited = rec.Op != wire.OpResync
		case <-time.After(5 * time.Second):
			t.Fatal("the waiting frame never went out")
		}
	}
	if st := r.Stats(); st.WindowWaits == 0 || st.Dropped.Gateway != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A gateway that confirms nothing is slow as far as the router can
	// tell: its frames are counted unconfirmed, and it is not asked
	// for its sessions (only a later frame confirmed first says lost).
	if st := r.Stats(); st.Unconfirmed != 2 || st.Resyncs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// resyncAsked waits up to wait for a resync frame among down's frames.
func resyncAsked(down chan *nats.Msg, wait time.Duration) bool {
	timeout := time.After(wait)
	for {
		select {
		case m := <-down:
			var d wire.Decoder
			var rec wire.Record
			if _, err := d.Reset(m.Data); err == nil && d.Next(&rec) && rec.Op == wire.OpResync {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// TestLostFrameResyncs: a frame whose done record never comes while a
// later frame's does was lost on the way: the gateway is asked for its
// sessions (once), after the first frame's copies were counted lost.
func TestLostFrameResyncs(t *testing.T) {
	r := startFlowRouter(t, 300*time.Millisecond)
	nc, down := choosyGateway(t, r, "lossy", func(uint64) time.Duration { return 0 }, func(seq uint64) bool { return seq == 1 })
	login(t, r, nc, "lossy", 1, 5)
	heartbeats(t, nc, "lossy")
	if ack := requestAck(t, nc, 5*time.Second, "lost"); ack.Tally.Gateway != 1 {
		t.Fatalf("first ack %+v", ack)
	}
	if ack := requestAck(t, nc, 5*time.Second, "arrives"); ack.Tally.Delivered != 1 {
		t.Fatalf("second ack %+v", ack)
	}
	if !resyncAsked(down, 5*time.Second) {
		t.Fatalf("no resync asked: %+v", r.Stats())
	}
	if st := r.Stats(); st.Unconfirmed != 1 || st.Resyncs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSlowFrameNoResync: a frame confirmed after the deliver timeout,
// before any later one, was slow, not lost: its copies are counted lost
// (the ack errs on that side) and the gateway is not asked to resync.
func TestSlowFrameNoResync(t *testing.T) {
	r := startFlowRouter(t, 300*time.Millisecond)
	nc, down := choosyGateway(t, r, "slow", func(seq uint64) time.Duration {
		if seq == 1 {
			return 800 * time.Millisecond
		}
		return 0
	}, func(uint64) bool { return false })
	login(t, r, nc, "slow", 1, 5)
	heartbeats(t, nc, "slow")
	if ack := requestAck(t, nc, 5*time.Second, "slow"); ack.Tally.Gateway != 1 {
		t.Fatalf("first ack %+v", ack)
	}
	time.Sleep(time.Second) // its late done record has come
	if ack := requestAck(t, nc, 5*time.Second, "next"); ack.Tally.Delivered != 1 {
		t.Fatalf("second ack %+v", ack)
	}
	if resyncAsked(down, time.Second) { // a few sweeps
		t.Fatalf("a slow gateway was asked to resync: %+v", r.Stats())
	}
	if st := r.Stats(); st.Unconfirmed != 1 || st.Resyncs != 0 || st.UnknownDone != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUnheardFrameCounted: a down frame to a gateway whose connection
// has no subscription (gone, its heartbeats not yet missed) is answered
// by NATS's "no responders" on the done subject: counted unheard, not a
// malformed frame, and its copies still counted lost at the deliver
// timeout.
func TestUnheardFrameCounted(t *testing.T) {
	r := startFlowRouter(t, 300*time.Millisecond)
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	login(t, r, nc, "deaf", 1, 5)
	heartbeats(t, nc, "deaf")
	ack := requestAck(t, nc, 5*time.Second, "a", "b")
	if ack.Count != 2 || ack.Tally.Delivered != 0 || ack.Tally.Gateway != 2 {
		t.Fatalf("ack %+v", ack)
	}
	if st := r.Stats(); st.Unheard == 0 || st.BadFrames != 0 {
		t.Fatalf("stats: unheard %d, bad frames %d", st.Unheard, st.BadFrames)
	}
}
