package router

import (
	"testing"
	"time"

	"github.com/cometgw/comet/internal/wire"
)

// TestRedundantHandover: two -redundant routers on one NATS server with
// JetStream. One leads; a resume is answered by the leader alone; an
// HTTP-style send made to the standby goes through the leader and comes
// back with the gateway's tally. When the leader stops (giving up its
// lease) the standby leads with the same epoch for the id and gives the
// next message a position past the jump.
func TestRedundantHandover(t *testing.T) {
	a, stopA, b := startRedundantPair(t)

	nc, down := fakeGateway(t, a, "gw")
	up := func(f []byte) {
		if err := nc.Publish(wire.SubjectUp, f); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	up(wire.AppendResume(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "gw", 1), 0), 1, 7, 0, 0))
	next := func(what string) (ops []wire.Record) {
		t.Helper()
		select {
		case m := <-down:
			var d wire.Decoder
			if _, err := d.Reset(m.Data); err != nil {
				t.Fatal(err)
			}
			var rec wire.Record
			for d.Next(&rec) {
				ops = append(ops, rec)
			}
			return ops
		case <-time.After(5 * time.Second):
			t.Fatalf("no down frame: %s", what)
			return nil
		}
	}
	res := next("the resume's answer")
	if len(res) != 1 || res[0].Op != wire.OpResumed {
		t.Fatalf("answer to the resume: %+v", res)
	}
	epoch := res[0].Epoch
	select {
	case m := <-down:
		t.Fatalf("a second answer (the standby answered too?): %x", m.Data)
	case <-time.After(300 * time.Millisecond):
	}
	waitFor(t, "b holds the login", func() bool { return b.reg.Stats().Conns == 1 })

	got, err := b.Send(7, []byte("one"))
	if err != nil || got.Tally.Delivered != 1 {
		t.Fatalf("send through the standby: %+v %v", got, err)
	}
	if d := next("one"); len(d) != 1 || d[0].Op != wire.OpDeliverAt || d[0].Epoch != epoch || d[0].Seq != 1 {
		t.Fatalf("delivery of one: %+v", d)
	}

	stopA()
	waitFor(t, "b leads", func() bool { return leads(b) })
	for {
		// The takeover asks the gateway for its sessions (a resync).
		if d := next("resync"); len(d) == 1 && d[0].Op == wire.OpResync {
			break
		}
	}
	got, err = b.Send(7, []byte("two"))
	if err != nil || got.Tally.Delivered != 1 {
		t.Fatalf("send after the handover: %+v %v", got, err)
	}
	if d := next("two"); len(d) != 1 || d[0].Epoch != epoch || d[0].Seq != 2+wire.TakeoverJump {
		t.Fatalf("delivery of two: %+v, want position %x-%d", d, epoch, 2+wire.TakeoverJump)
	}
	if st := b.lead.stats(); st.Role != "leader" || st.Takeovers != 1 || st.LogBatches == 0 {
		t.Errorf("b's lead stats: %+v", st)
	}
}

// startRedundantPair starts two -redundant routers (a short lease) on one
// NATS server with JetStream: a, which leads, and b, a standby.
func startRedundantPair(t *testing.T) (a *Router, stopA func(), b *Router) {
	ns := startTestNATS(t)
	start := func(name string) (*Router, func()) {
		cfg := testConfig(t)
		cfg.NATSURL, cfg.AdminAddr, cfg.Redundant, cfg.Lease = ns.ClientURL(), "off", true, 400*time.Millisecond
		cfg.Logger = cfg.Logger.Named(name)
		return runTestRouter(t, cfg)
	}
	a, stopA = start("a")
	waitFor(t, "a leads", func() bool { return leads(a) })
	b, _ = start("b")
	return a, stopA, b
}

// leads reports whether r leads and its subscriptions to the senders'
// frames are known to its NATS server (takeOver marks it leading just
// before it subscribes: a frame sent in between is answered "no
// responders").
func leads(r *Router) bool {
	r.senders.mu.Lock()
	taking := len(r.senders.subs) > 0
	r.senders.mu.Unlock()
	return r.lead.leading.Load() && taking
}
