package flood_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	"github.com/cometgw/comet/internal/flood"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/msggen"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/router/routertest"
)

var waitFor = testclient.WaitFor

// runEngine runs an engine over plan's clients with cfg (Target and
// Count come from the plan); stop ends it and returns what Run returned
// (the test's end stops it too).
func runEngine(t *testing.T, plan flood.Plan, cfg flood.Config) (e *flood.Engine, stop func() error) {
	t.Helper()
	cfg.Target, cfg.Count = plan.Share(0, 1)
	e, err := flood.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-ran })
		return runErr
	}
	t.Cleanup(func() { stop() })
	return e, stop
}

// runKinds runs an engine of perKind clients of each kind (a path
// prefix) against the gateway at addr, ids counting on from 1 across
// the kinds, and waits until every client streams.
func runKinds(t *testing.T, addr string, kinds []string, perKind int64, cfg flood.Config) (engines []*flood.Engine, stops []func() error) {
	t.Helper()
	for i, kind := range kinds {
		e, stop := runEngine(t, flood.Plan{Prefix: "http://" + addr + kind, First: 1 + int64(i)*perKind, N: int(perKind)}, cfg)
		engines, stops = append(engines, e), append(stops, stop)
	}
	for _, e := range engines {
		waitFor(t, "all clients active", 30*time.Second, func() bool { return e.Stats().Active == perKind })
	}
	return engines, stops
}

// startGateway starts a gateway named name on addr against router r's
// NATS; the test's end closes it.
func startGateway(t *testing.T, r *router.Router, addr, name string) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(gateway.Config{Addr: addr, AdminAddr: "off", NATSURL: r.NATSURL(), Name: name, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestFloodAgainstRealGateway: 2,000 clients against a real gateway and
// router, msggen sends numbered messages, every one arrives exactly once
// and in order; stopping the gateway is seen as 2,000 closed streams.
func TestFloodAgainstRealGateway(t *testing.T) {
	const clients = 2000
	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	g := startGateway(t, r, "127.0.0.1:0", "flood-gw")

	e, stop := runEngine(t, flood.Plan{Prefix: "http://" + g.Addr().String() + "/test/", First: 1, N: clients}, flood.Config{Rate: 20000})
	waitFor(t, "all clients streaming", 30*time.Second, func() bool { return e.Stats().Active == clients })
	waitFor(t, "all logged in", 10*time.Second, func() bool { return r.Stats().Conns == clients })

	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := msggen.Run(t.Context(), nc, msggen.Config{Num: 5000, Max: clients, Procs: 4, Batch: 200, AckTimeout: 10 * time.Second, Numbered: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 20000 || res.Delivered != 20000 || res.Void != 0 {
		t.Fatalf("msggen %+v", res)
	}
	waitFor(t, "every message received", 30*time.Second, func() bool { return e.Stats().Messages == res.Delivered })
	st := e.Stats()
	if st.Chunks != clients+res.Delivered || st.Closed != 0 || len(nonzero(st.Errors)) != 0 {
		t.Fatalf("stats %+v", st)
	}

	g.Close()
	waitFor(t, "streams seen closed", 10*time.Second, func() bool { return e.Stats().Closed == clients })
	st = e.Stats()
	if st.Active != 0 || st.Errors[flood.ErrEnded] != clients {
		t.Fatalf("after gateway stop: %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func nonzero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestFloodCountsRefused: clients that cannot connect are counted, not
// hidden.
func TestFloodCountsRefused(t *testing.T) {
	e, stop := runEngine(t, flood.Plan{Prefix: "http://127.0.0.1:1/test/", First: 1, N: 20}, flood.Config{})
	waitFor(t, "refusals counted", 10*time.Second, func() bool { return e.Stats().Errors[flood.ErrConnect] == 20 })
	stop()
	if st := e.Stats(); st.Active != 0 || st.Closed != 20 {
		t.Fatalf("%+v", st)
	}
}

// TestFloodRetries: with Retry, clients refused because the gateway is
// not up yet dial again and stream once it is; the refusals stay
// counted.
func TestFloodRetries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const clients = 50
	e, stop := runEngine(t, flood.Plan{Prefix: "http://" + addr + "/ws/", First: 1, N: clients}, flood.Config{Retry: 200 * time.Millisecond})
	waitFor(t, "refusals counted", 10*time.Second, func() bool { return e.Stats().Errors[flood.ErrConnect] >= clients })

	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	startGateway(t, r, addr, "retry-gw")
	waitFor(t, "every client streaming", 15*time.Second, func() bool { return e.Stats().Active == clients })
	if st := e.Stats(); st.Retried < clients || st.Errors[flood.ErrConnect] < clients {
		t.Fatalf("%+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestFloodResumableClients: floodtest's SSE and long-poll clients against
// a real gateway (SSE, long-poll and WebSocket) get every numbered message exactly once (positions
// contiguous, msggen's seqs in order) while msggen sends flat out.
func TestFloodResumableClients(t *testing.T) {
	const perKind = 300
	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	g := startGateway(t, r, "127.0.0.1:0", "flood-resume")
	kinds := []string{"/sse/", "/poll/", "/ws/"}
	engines, stops := runKinds(t, g.Addr().String(), kinds, perKind, flood.Config{PollTimeout: 2 * time.Second})
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := msggen.Run(t.Context(), nc, msggen.Config{Num: 3000, Max: int64(len(kinds)) * perKind, Procs: 4, Batch: 200, AckTimeout: 10 * time.Second, Numbered: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 12000 || res.Void != 0 {
		t.Fatalf("msggen %+v", res)
	}
	received := func() uint64 {
		var n uint64
		for _, e := range engines {
			n += e.Stats().Messages
		}
		return n
	}
	waitFor(t, "every message received", 30*time.Second, func() bool { return received() == res.Sent })
	time.Sleep(200 * time.Millisecond) // a duplicate would show now
	for i, e := range engines {
		st := e.Stats()
		if st.Closed != 0 || len(nonzero(st.Errors)) != 0 {
			t.Fatalf("engine %d: %+v", i, st)
		}
	}
	if engines[2].Stats().Messages == 0 {
		t.Fatal("the WebSocket clients got nothing")
	}
	if got := received(); got != res.Sent {
		t.Fatalf("received %d, sent %d", got, res.Sent)
	}
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFloodResumesAcrossGatewayRestart: SSE and long-poll clients with
// Resume ride a gateway restarted on its address under msggen: each
// dials again with its cursor and gets what was sent meanwhile from the
// router's history; every numbered message is received once, none lost,
// none repeated, none missed.
func TestFloodResumesAcrossGatewayRestart(t *testing.T) {
	const perKind = 200
	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	g := startGateway(t, r, "127.0.0.1:0", "flood-restart")
	addr := g.Addr().String()
	engines, _ := runKinds(t, addr, []string{"/sse/", "/poll/"}, perKind, flood.Config{PollTimeout: 2 * time.Second, Resume: true, Retry: 100 * time.Millisecond})
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	type result struct {
		res msggen.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := msggen.Run(t.Context(), nc, msggen.Config{Num: 1000, Max: 2 * perKind, Procs: 2, Rate: 1000, Batch: 50, AckTimeout: 10 * time.Second, Numbered: true})
		done <- result{res, err}
	}()
	time.Sleep(500 * time.Millisecond)
	g.Close()
	time.Sleep(200 * time.Millisecond)
	startGateway(t, r, addr, "flood-restart")
	out := <-done
	if out.err != nil || out.res.Sent != 2000 {
		t.Fatalf("msggen %+v %v", out.res, out.err)
	}
	received := func() (n uint64) {
		for _, e := range engines {
			n += e.Stats().Messages
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for received() < out.res.Sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would show now
	for i, e := range engines {
		for end := time.Now().Add(10 * time.Second); e.Stats().Active != perKind && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		st := e.Stats()
		if st.Active != perKind {
			t.Fatalf("engine %d: %d of %d clients streaming again: %+v", i, st.Active, perKind, st)
		}
		for _, bad := range []string{flood.ErrLost, flood.ErrDup, flood.ErrMissed, flood.ErrOrder, flood.ErrFraming, flood.ErrAnswer} {
			if st.Errors[bad] != 0 {
				t.Errorf("engine %d: %s %d: %+v", i, bad, st.Errors[bad], st)
			}
		}
		if st.Resumed < perKind {
			t.Errorf("engine %d: %d resumed: %+v", i, st.Resumed, st)
		}
	}
	if got := received(); got != out.res.Sent {
		t.Fatalf("received %d, sent %d (msggen %+v)", got, out.res.Sent, out.res)
	}
}

// TestFloodWebSocketChat: /ws/ clients in one topic publish into it
// (WSPublish): every client receives every client's message, stamped,
// and the gateway acks each publish.
func TestFloodWebSocketChat(t *testing.T) {
	const n = 40
	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	g := startGateway(t, r, "127.0.0.1:0", "flood-chat")
	e, stop := runEngine(t, flood.Plan{Prefix: "http://" + g.Addr().String() + "/ws/", First: 1, N: n, Topics: 1}, flood.Config{WSPublish: 2 * time.Second})
	waitFor(t, "all clients active", 30*time.Second, func() bool { return e.Stats().Active == n })
	waitFor(t, "two rounds of the chat", 30*time.Second, func() bool { return e.Stats().Published >= 2*n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	// Each publish reaches all n members; the last ones may be on the way.
	if st.Messages < (st.Published-n)*n || len(nonzero(st.Errors)) != 0 {
		t.Fatalf("published %d, received %d (want about %d each), errors %v", st.Published, st.Messages, n, st.Errors)
	}
	var stamped uint64
	for _, b := range st.LatencyBuckets {
		stamped += b
	}
	if stamped != st.Messages {
		t.Fatalf("%d stamped of %d", stamped, st.Messages)
	}
	if cs := g.Stats().ClientRequests; cs.Sent < st.Published-n || cs.Refused != 0 || cs.Failed != 0 {
		t.Fatalf("gateway client requests %+v", cs)
	}
}
