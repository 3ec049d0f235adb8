package router

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/wire"
)

// TestPartitionedRouters: two routers, one per partition of the ids, on
// one NATS. Each holds only its partition's logins (the gateway sends
// them to its subject). A frame taken by either router is routed
// whole: the other partition's sends are handed on, a publish reaches
// the members of both, and the ack counts each message once (a publish
// is void only if no partition had a member). A record of another
// partition on the route subject is neither routed nor acked, a resync
// asks for one partition's logins, and a gateway without -partitions is
// noticed.
func TestPartitionedRouters(t *testing.T) {
	ns := startTestNATS(t)
	start := func(k int) *Router {
		cfg := testConfig(t)
		cfg.NATSURL, cfg.AdminAddr, cfg.Partitions, cfg.Partition = ns.ClientURL(), "off", 2, k
		r, _ := runTestRouter(t, cfg)
		return r
	}
	a, b := start(0), start(1)

	nc, down := fakeGateway(t, a, "gw")
	up := func(k int, f []byte) {
		t.Helper()
		if err := nc.Publish(wire.PartSubject(wire.SubjectUp, 2, k), f); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	hdr := func() []byte { return wire.AppendUpHeader(nil, wire.KindUp, "gw", 1) }
	// id 2 is in partition 0, id 3 in partition 1; both conns in "room".
	up(0, wire.AppendLoginTopics(wire.AppendHello(hdr(), 0), 1, 2, []string{"room"}, false))
	up(1, wire.AppendLoginTopics(wire.AppendHello(hdr(), 0), 2, 3, []string{"room"}, false))
	waitFor(t, "each router holds its login", func() bool { return a.Stats().Conns == 1 && b.Stats().Conns == 1 })

	frame := wire.AppendHeader(nil, wire.KindSend)
	frame = wire.AppendSend(frame, 2, []byte("to 2"))
	frame = wire.AppendSend(frame, 3, []byte("to 3"))
	frame = wire.AppendSend(frame, 5, []byte("to nobody")) // partition 1
	frame = wire.AppendPublish(frame, "room", []byte("to the room"))
	frame = wire.AppendPublish(frame, "empty", []byte("to no room"))
	for _, subject := range []string{wire.SubjectSend, wire.PartSubject(wire.SubjectSend, 2, 0), wire.PartSubject(wire.SubjectSend, 2, 1)} {
		m, err := nc.Request(subject, frame, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		ack, err := wire.ParseAck(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Count != 5 || ack.Void != 2 || ack.Kept != 0 || ack.Tally != (wire.Tally{Delivered: 4}) {
			t.Fatalf("ack of the frame sent on %s: %+v", subject, ack)
		}
	}

	// An HTTP send to the other partition's router goes through.
	if res, err := b.Send(2, []byte("http")); err != nil || res.Tally.Delivered != 1 {
		t.Fatalf("send to id 2 through partition 1's router: %+v %v", res, err)
	}
	if a.part.forwarded.Load() == 0 || b.part.forwarded.Load() == 0 {
		t.Errorf("forwarded: a %d, b %d", a.part.forwarded.Load(), b.part.forwarded.Load())
	}

	// A frame with a frame-id on the shared subject goes whole to its
	// sender's partition (sender 11: partition 1), whichever router
	// took it, so a copy meets the router that remembers the first.
	fid := wire.AppendSend(wire.AppendSend(wire.AppendFrameID(wire.AppendHeader(nil, wire.KindSend), 11, 1), 2, []byte("f2")), 3, []byte("f3"))
	sentB := b.Stats().Sent
	var answers [][]byte
	for _, r := range []*Router{a, b} {
		in, sub := inbox(t, nc)
		r.handleSend(&nats.Msg{Subject: wire.SubjectSend, Reply: in, Data: fid})
		ack, raw := nextAck(t, sub)
		if ack.Count != 2 || ack.Tally.Delivered != 2 {
			t.Fatalf("ack of the framed frame taken by partition %d: %+v", r.part.k, ack)
		}
		answers = append(answers, raw)
	}
	if a.part.handedOver.Load() != 1 || b.part.handedOver.Load() != 0 || b.Stats().Frames.Answered != 1 || !slices.Equal(answers[0], answers[1]) {
		t.Errorf("handed over: a %d, b %d; b answered %d copies; acks % x and % x",
			a.part.handedOver.Load(), b.part.handedOver.Load(), b.Stats().Frames.Answered, answers[0], answers[1])
	}
	if got := b.Stats().Sent - sentB; got != 1 {
		t.Errorf("partition 1 routed %d sends of the framed frame, want 1 (its own, once)", got)
	}

	// The route subject is for a partition's own ids only.
	m, err := nc.Request(wire.PartSubject(wire.SubjectRoute, 2, 0), wire.AppendSend(wire.AppendHeader(nil, wire.KindSend), 3, []byte("x")), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack, outs, err := wire.ParseRouteAck(m.Data); err != nil || ack.Count != 0 || len(outs) != 0 || a.part.foreign.Load() != 1 {
		t.Fatalf("foreign record: %+v %v %v, foreign %d", ack, outs, err, a.part.foreign.Load())
	}

	// A heartbeat that disagrees asks for partition 1's logins only.
	drain(down)
	up(1, wire.AppendHeartbeat(hdr(), 7))
	for deadline := time.After(5 * time.Second); ; {
		select {
		case m := <-down:
			var d wire.Decoder
			var rec wire.Record
			if _, err := d.Reset(m.Data); err == nil && d.Next(&rec) && rec.Op == wire.OpResyncPart {
				if rec.Count != 1 {
					t.Fatalf("resync of partition %d", rec.Count)
				}
				goto resynced
			}
		case <-deadline:
			t.Fatal("no resync-part")
		}
	}
resynced:
	// Per-id admin answers come from the id's partition; the others say
	// where to ask. Presence says whose share it is.
	for _, tc := range []struct {
		method, path string
		code         int
	}{{"GET", "/ids/2", 200}, {"GET", "/ids/3", 421}, {"POST", "/kick/5", 421}, {"GET", "/subscriptions/3", 421}, {"PUT", "/subscriptions/3/room", 421}} {
		w := httptest.NewRecorder()
		a.adminMux().ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code || tc.code == 421 && !strings.Contains(w.Body.String(), "partition 1 of 2") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
	if p := b.Presence("room"); p.Conns != 2 || p.IDs[2] != 1 || p.IDs[3] != 1 || p.Partitions != 2 || len(p.Unanswered) != 0 {
		t.Errorf("presence merged by partition 1's router: %+v", p)
	}

	// A watcher in partition 0 hears of a join in partition 1, whose
	// router has no watcher of its own: partition 0's watch list tells it.
	drain(down)
	up(0, wire.AppendLoginTopics(hdr(), 3, 4, []string{"room"}, true))
	waitFor(t, "the watcher logged in", func() bool { return a.Stats().Conns == 2 })
	time.Sleep(2*PresenceEvery + 100*time.Millisecond) // the watch list went out; the watcher's own join's event too
	drain(down)
	up(1, wire.AppendLoginTopics(hdr(), 4, 5, []string{"room"}, false))
	for deadline := time.After(5 * time.Second); ; {
		var ev []byte
		select {
		case m := <-down:
			var d wire.Decoder
			var rec wire.Record
			d.Reset(m.Data)
			for d.Next(&rec) {
				if rec.Op == wire.OpFanoutPresence {
					ev = rec.Msg
				} else if rec.Op == wire.OpFanoutTo && ev != nil && (len(rec.Conns) != 1 || rec.Conns[0] != 3) {
					t.Fatalf("presence event to conns %v", rec.Conns)
				}
			}
		case <-deadline:
			t.Fatal("no presence event of partition 1 for the watcher in partition 0")
		}
		if strings.Contains(string(ev), `"joined":[5]`) {
			if !strings.Contains(string(ev), `"partition":1,"partitions":2`) {
				t.Fatalf("event %s", ev)
			}
			break
		}
	}
	if err := nc.Publish(wire.SubjectUp, hdr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stray up frames counted", func() bool { return a.c.strayUp.Load() > 0 && b.c.strayUp.Load() > 0 })
}

func drain(ch chan *nats.Msg) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestRouterCompactsSubscriptions: a router that holds every id's
// subscriptions rewrites their stream once it is 4 times what it nets
// to, keeping every subscription.
func TestRouterCompactsSubscriptions(t *testing.T) {
	r := startTestRouter(t)
	for i := range 50 {
		for _, op := range []byte{subs.OpSubscribe, subs.OpUnsubscribe, subs.OpSubscribe, subs.OpUnsubscribe} {
			if err := r.Subscription(t.Context(), op, int64(i), "room"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.Subscription(t.Context(), subs.OpSubscribe, 7, "kept"); err != nil {
		t.Fatal(err)
	}
	before, err := r.stored.st.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func(v uint64) { compactStreamOver = v }(compactStreamOver)
	compactStreamOver = 1
	r.stored.compactStream()
	after, err := r.stored.st.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.SubscriptionsCompacted != 1 || after >= before || st.Subscriptions.Subscriptions != 1 || !slices.Equal(r.SubscriptionsOf(7), []string{"kept"}) {
		t.Fatalf("compacted %d, stream %d -> %d bytes, %+v", st.SubscriptionsCompacted, before, after, st.Subscriptions)
	}
	compactStreamOver = 64 << 20
	r.stored.compactStream() // below the least size: nothing to do
	if st := r.Stats(); st.SubscriptionsCompacted != 1 {
		t.Fatalf("compacted again: %d", st.SubscriptionsCompacted)
	}
}

// TestStrayUpFrames: an unpartitioned router names a gateway that sends
// its logins to a partition's subject (started with -partitions).
func TestStrayUpFrames(t *testing.T) {
	r := startTestRouter(t)
	nc, _ := fakeGateway(t, r, "parted")
	if err := nc.Publish(wire.PartSubject(wire.SubjectUp, 2, 1), wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "parted", 1), 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stray frame counted", func() bool { return r.Stats().StrayUp == 1 })
	if st := r.Stats(); st.Gateways != 0 {
		t.Fatalf("a stray gateway was taken: %+v", st.GatewayList)
	}
}
