package router

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/wire"
)

// The router's jobs tested alone, without NATS.

// TestGatewayTable: every gateway instance gets an index never given
// before; removing an old instance keeps the newer one of the same name.
func TestGatewayTable(t *testing.T) {
	g := newGateways()
	a := g.add("gw1", 1)
	b := g.add("gw2", 1)
	if a.idx == b.idx || g.at(a.idx) != a || g.named("gw2") != b || g.len() != 2 {
		t.Fatalf("table after two adds: a=%d b=%d len=%d", a.idx, b.idx, g.len())
	}
	a2 := g.add("gw1", 2) // gw1 restarted
	if a2.idx == a.idx || g.named("gw1") != a2 {
		t.Fatalf("restarted gateway: idx %d (old %d), named %p", a2.idx, a.idx, g.named("gw1"))
	}
	g.remove(a) // the old instance, forgotten late
	if g.named("gw1") != a2 || g.at(a.idx) != nil || g.at(a2.idx) != a2 {
		t.Fatal("removing the old instance dropped the new one")
	}
	if got := len(g.all()); got != 2 || g.len() != 2 {
		t.Fatalf("all: %d gateways", got)
	}
	if !bytes.Equal(wire.AppendResync(nil), (*partition)(nil).appendResync(nil)) {
		t.Fatal("unpartitioned resync")
	}
}

// TestFeaturesOff: a router without partitions, redundancy or stored
// subscriptions has nil parts whose methods give the "off" answer.
func TestFeaturesOff(t *testing.T) {
	var p *partition
	if !p.owns(42) || p.stats() != nil {
		t.Error("nil partition: owns every id, no stats")
	}
	if _, other := p.other(42); other {
		t.Error("nil partition: no other partition")
	}
	if msg, other := p.misdirected(42); other || msg != "" {
		t.Error("nil partition: nothing misdirected")
	}
	if up, stray := p.upSubjects(); up != wire.SubjectUp || stray != wire.SubjectUp+".>" {
		t.Errorf("nil partition subjects %q %q", up, stray)
	}
	p.close()

	var l *lead
	if l.standby() || !l.takes() || !l.answers() || l.stats() != nil || l.fatalErr() != nil || l.histLog() != nil {
		t.Error("nil lead: routes, answers resumes, no stats")
	}
	l.start(nil)
	l.release()

	var h *histLog
	if h.logs() {
		t.Error("nil history log logs")
	}
	h.lock()
	h.enqueue([]byte("x"), nil)
	h.queueUnlock([]byte("x"), nil)
	h.lock()
	h.unlock()

	var s *storedSubs
	if got := s.topicsOf(1, []string{"a"}); !slices.Equal(got, []string{"a"}) || s.stats() != nil {
		t.Errorf("nil stored subscriptions: topics %v", got)
	}
	s.subscribers([]byte("room"), func(string, []int64) { t.Error("nil stored subscriptions have subscribers") })
	if err := s.store(context.Background(), 1, 1, "room"); !errors.Is(err, ErrNoStore) {
		t.Errorf("store: %v", err)
	}
	s.changed(1)
	s.sync()
	s.close()

	p2 := newPartition(4, 1)
	if newPartition(1, 0) != nil || p2.owns(2) || !p2.owns(1) {
		t.Errorf("partition 1 of 4: owns 1 %v, owns 2 %v", p2.owns(1), p2.owns(2))
	}
	if k, other := p2.other(2); !other || k != 2 {
		t.Errorf("id 2: partition %d other %v", k, other)
	}
}

// TestFanOut: one batch routes a send to an id with a history at its
// position, one to an id without at none, one to nobody as void, and,
// partitioned, gathers another partition's records for it.
func TestFanOut(t *testing.T) {
	r, b := benchRouter(t, 4, 2) // ids 1-4 on gateways 1,2,1,2
	h := r.store.Lock(3)
	h.Resume(cursor.Cursor{}) // id 3 has a resumable client: a history
	h.Unlock()
	ack := &pendingAck{waiting: 1}
	b.begin(ack)
	b.send(1, []byte("to 1"))
	b.send(3, []byte("to 3"))
	b.send(9, []byte("to nobody"))
	if ack.accepted != 3 || ack.void != 1 || b.positioned != 1 {
		t.Fatalf("accepted %d void %d positioned %d", ack.accepted, ack.void, b.positioned)
	}
	f := b.frames[1] // gateway 1 holds ids 1 and 3
	if f == nil || f.copies != 2 {
		t.Fatalf("gateway 1's frame: %+v", f)
	}
	var d wire.Decoder
	if _, err := d.Reset(f.b); err != nil {
		t.Fatal(err)
	}
	var got []string
	var rec wire.Record
	for d.Next(&rec) {
		got = append(got, string(rec.Msg)+"@"+string(rune('0'+rec.Seq)))
	}
	if err := d.Err(); err != nil || !slices.Equal(got, []string{"to 1@0", "to 3@1"}) {
		t.Fatalf("gateway 1's records %v (%v): want to 1 without a position, to 3 at 1", got, err)
	}

	r.part = newPartition(2, 0)
	b2 := newSendBatch(r)
	ack2 := &pendingAck{waiting: 1}
	b2.begin(ack2)
	frame := wire.AppendSend(wire.AppendSend(wire.AppendHeader(nil, wire.KindSend), 2, []byte("mine")), 1, []byte("partition 1's"))
	if err := b2.records(frame); err != nil {
		t.Fatal(err)
	}
	if ack2.accepted != 1 || len(b2.fwd) != 2 || len(b2.fwd[1]) == 0 || len(b2.fwd[0]) != 0 {
		t.Fatalf("partition 0 of 2: accepted %d, handed on %d frames", ack2.accepted, len(b2.fwd))
	}
}
