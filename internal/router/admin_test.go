package router

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/wire"
)

func startTestRouter(t *testing.T) *Router {
	t.Helper()
	r, _ := runTestRouter(t, testConfig(t))
	return r
}

// testConfig is the default configuration on free loopback ports.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Embedded.Addr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.Logger = zaptest.NewLogger(t)
	return cfg
}

// startTestNATS starts a NATS server with JetStream for routers that
// join it by URL.
func startTestNATS(t *testing.T) *embeddednats.Server {
	t.Helper()
	return natstest.Start(t, true)
}

// runTestRouter starts a router with cfg and runs it until stop (or the
// test's end), checking that Run returned no error.
func runTestRouter(t *testing.T, cfg Config) (r *Router, stop func()) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// fakeGateway logs conns in over NATS (instance 1) and collects what the
// router delivers to it; it answers every down frame with a done record
// saying each copy was delivered, as a gateway does once it wrote them.
func fakeGateway(t *testing.T, r *Router, name string) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	return fakeGatewayDone(t, r, name, true)
}

// fakeGatewayDone is fakeGateway that answers no done record unless done.
func fakeGatewayDone(t *testing.T, r *Router, name string, done bool) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	return choosyGateway(t, r, name, func(uint64) time.Duration { return 0 }, func(uint64) bool { return !done })
}

// choosyGateway is a fake gateway that hands every down frame to the
// channel and answers each (but a resync) with its done record after
// delay(seq), or never if drop(seq).
func choosyGateway(t *testing.T, r *Router, name string, delay func(seq uint64) time.Duration, drop func(seq uint64) bool) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 100)
	if _, err := nc.Subscribe(wire.DownSubject(name), func(m *nats.Msg) {
		var d wire.Decoder
		var rec wire.Record
		h, err := d.Reset(m.Data)
		if err != nil {
			t.Errorf("bad down frame: %v", err)
			return
		}
		copies := uint64(0)
		for d.Next(&rec) {
			if rec.Op == wire.OpDeliver || rec.Op == wire.OpDeliverAt || rec.Op == wire.OpFanoutTo {
				copies += uint64(len(rec.Conns))
			}
		}
		if h.Seq != 0 && !drop(h.Seq) {
			done := wire.AppendDone(wire.AppendUpHeader(nil, wire.KindDone, name, 1), h.Seq, wire.Tally{Delivered: copies})
			if wait := delay(h.Seq); wait > 0 {
				time.AfterFunc(wait, func() { nc.Publish(m.Reply, done) })
			} else {
				nc.Publish(m.Reply, done)
			}
		}
		ch <- m
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return nc, ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testclient.WaitFor(t, what, 5*time.Second, cond)
}

func TestAdminAPI(t *testing.T) {
	r := startTestRouter(t)
	nc, down := fakeGateway(t, r, "gw1")
	f := wire.AppendUpHeader(nil, wire.KindUp, "gw1", 1)
	f = wire.AppendHello(f, 0)
	f = wire.AppendLogin(f, 10, 123)
	f = wire.AppendLogin(f, 10, 124)
	nc.Publish(wire.SubjectUp, f)
	nc.Flush()
	waitFor(t, "login", func() bool { return r.Stats().Conns == 1 })

	base := "http://" + r.AdminAddr()
	tests := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/stats", "", 200, `"ids": 2`},
		{"GET", "/ids/123", "", 200, `"gateway": "gw1"`},
		{"GET", "/ids/5", "", 200, `"conns": []`},
		{"GET", "/ids/x", "", 400, "bad id"},
		{"POST", "/send/123", "Hello World", 200, `"delivered": 1`},
		{"POST", "/send/999", "void", 200, `"delivered": 0`},
		{"POST", "/send/abc", "x", 400, "bad id"},
		{"POST", "/send/1", strings.Repeat("x", wire.MaxMessage+1), 413, "larger than"},
		{"GET", "/send/1", "", 405, ""},
		{"GET", "/nope", "", 404, ""},
		{"GET", "/metrics", "", 200, "comet_router_sent_total 2"},
		{"GET", "/debug/pprof/", "", 200, "goroutine"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("status %d, body %.300s", resp.StatusCode, body)
			}
		})
	}
	// The send reached the gateway as one deliver record.
	select {
	case m := <-down:
		var d wire.Decoder
		var rec wire.Record
		if h, err := d.Reset(m.Data); err != nil || h.Kind != wire.KindDown || !d.Next(&rec) ||
			rec.Op != wire.OpDeliver || string(rec.Msg) != "Hello World" || len(rec.Conns) != 1 || rec.Conns[0] != 10 {
			t.Fatalf("delivery %+v %v", rec, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	var st Stats
	resp, _ := http.Get(base + "/stats")
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Sent != 2 || st.Delivered != 1 || st.Void != 1 || st.Gateways != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSendBatchFanOut: one send frame for ids held on two gateways reaches
// each gateway as one frame, and the ack counts every copy.
func TestSendBatchFanOut(t *testing.T) {
	r := startTestRouter(t)
	nc1, down1 := fakeGateway(t, r, "a")
	nc2, down2 := fakeGateway(t, r, "b")
	nc1.Publish(wire.SubjectUp, wire.AppendLogin(wire.AppendLogin(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "a", 1), 0), 1, 5), 2, 5))
	nc2.Publish(wire.SubjectUp, wire.AppendLogin(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "b", 1), 0), 1, 5))
	nc1.Flush()
	nc2.Flush()
	waitFor(t, "logins", func() bool { return r.Stats().Conns == 3 })

	f := wire.AppendHeader(nil, wire.KindSend)
	f = wire.AppendSend(f, 5, []byte("one"))
	f = wire.AppendSend(f, 6, []byte("void"))
	f = wire.AppendSend(f, 5, []byte("two"))
	m, err := nc1.Request(wire.SubjectSend, f, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var d wire.Decoder
	var rec wire.Record
	if _, err := d.Reset(m.Data); err != nil || !d.Next(&rec) || rec.Count != 3 || rec.Tally.Delivered != 6 || rec.Void != 1 {
		t.Fatalf("ack %+v %v", rec, err)
	}
	for name, ch := range map[string]chan *nats.Msg{"a": down1, "b": down2} {
		select {
		case m := <-ch:
			d.Reset(m.Data)
			var got []string
			for d.Next(&rec) {
				got = append(got, string(rec.Msg))
			}
			if strings.Join(got, ",") != "one,two" {
				t.Fatalf("gateway %s got %v in one frame", name, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("gateway %s got nothing", name)
		}
	}
}

// TestHeartbeatMismatchAsksResync: a gateway whose heartbeat count differs
// from the router's (a frame was lost) is asked to resync.
func TestHeartbeatMismatchAsksResync(t *testing.T) {
	r := startTestRouter(t)
	nc, down := fakeGateway(t, r, "g")
	nc.Publish(wire.SubjectUp, wire.AppendHeartbeat(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "g", 1), 0), 3))
	nc.Flush()
	select {
	case m := <-down:
		var d wire.Decoder
		var rec wire.Record
		if _, err := d.Reset(m.Data); err != nil || !d.Next(&rec) || rec.Op != wire.OpResync {
			t.Fatalf("got %+v %v", rec, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resync asked")
	}
	if r.Stats().Resyncs != 1 {
		t.Fatalf("resyncs %d", r.Stats().Resyncs)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GatewayTimeout = time.Millisecond
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "gateway timeout") {
		t.Fatalf("err = %v", err)
	}
}

// A router whose admin address is taken fails at New, and leaves nothing
// running or on disk: no temporary store, no goroutine (the compactor
// and NATS's own stop with it).
func TestNewFailsCleanly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := runtime.NumGoroutine()
	cfg := testConfig(t)
	cfg.AdminAddr = ln.Addr().String()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New with its admin address taken: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left behind in TMPDIR: %v", left)
	}
	waitFor(t, "the router's goroutines gone", func() bool { return runtime.NumGoroutine() <= before+2 })
}
