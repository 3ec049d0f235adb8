package router

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/wire"
)

// framed is a send frame with a frame-id: frame n of sender 42, sends
// to id.
func framed(n uint64, id int64, msgs ...string) []byte {
	f := wire.AppendFrameID(wire.AppendHeader(nil, wire.KindSend), 42, n)
	for _, m := range msgs {
		f = wire.AppendSend(f, id, []byte(m))
	}
	return f
}

// inbox subscribes to a fresh inbox on nc.
func inbox(t *testing.T, nc *nats.Conn) (string, *nats.Subscription) {
	t.Helper()
	in := nats.NewInbox()
	sub, err := nc.SubscribeSync(in)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return in, sub
}

func nextAck(t *testing.T, sub *nats.Subscription) (wire.Record, []byte) {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no answer on %s: %v", sub.Subject, err)
	}
	a, err := wire.ParseAck(m.Data)
	if err != nil {
		t.Fatalf("answer on %s: %v (% x, header %v)", sub.Subject, err, m.Data, m.Header)
	}
	return a, m.Data
}

// TestFrameSentAgain: a copy of a frame with a frame-id is never routed
// twice: sent after the first's ack it gets the same ack at once; sent
// while the first is still routing (its gateway has not said what
// became of its copies) it gets the same ack when the first does.
func TestFrameSentAgain(t *testing.T) {
	r := startFlowRouter(t, 500*time.Millisecond)
	nc, down := fakeGatewayDone(t, r, "gw", true)
	login(t, r, nc, "gw", 1, 5)
	heartbeats(t, nc, "gw")

	in1, sub1 := inbox(t, nc)
	nc.PublishRequest(wire.SubjectSend, in1, framed(1, 5, "a", "b"))
	first, raw := nextAck(t, sub1)
	if first.Count != 2 || first.Tally.Delivered != 2 {
		t.Fatalf("first ack %+v", first)
	}
	<-down
	in2, sub2 := inbox(t, nc)
	nc.PublishRequest(wire.SubjectSend, in2, framed(1, 5, "a", "b"))
	if _, again := nextAck(t, sub2); !bytes.Equal(again, raw) {
		t.Errorf("the copy's ack % x, the first's % x", again, raw)
	}
	select {
	case m := <-down:
		t.Fatalf("the copy was routed again: % x", m.Data)
	case <-time.After(200 * time.Millisecond):
	}

	// A gateway that confirms nothing: the first waits for the deliver
	// timeout, and the copy with it.
	mute, _ := fakeGatewayDone(t, r, "mute", false)
	login2 := wire.AppendLogin(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "mute", 1), 0), 1, 6)
	mute.Publish(wire.SubjectUp, login2)
	mute.Flush()
	waitFor(t, "mute's login", func() bool { return r.Stats().Conns == 2 })
	heartbeats(t, mute, "mute")
	in3, sub3 := inbox(t, nc)
	in4, sub4 := inbox(t, nc)
	nc.PublishRequest(wire.SubjectSend, in3, framed(2, 6, "c"))
	nc.Flush()
	nc.PublishRequest(wire.SubjectSend, in4, framed(2, 6, "c"))
	a3, raw3 := nextAck(t, sub3)
	_, raw4 := nextAck(t, sub4)
	if a3.Count != 1 || a3.Tally.Gateway != 1 || !bytes.Equal(raw3, raw4) {
		t.Errorf("first %+v (% x), copy % x", a3, raw3, raw4)
	}
	st := r.Stats().Frames
	if st.Remembered != 2 || st.Answered != 1 || st.Waited != 1 {
		t.Errorf("frame stats %+v: want 2 remembered, 1 copy answered at once, 1 that waited", st)
	}
	if got := r.Stats().Sent; got != 3 {
		t.Errorf("sent %d, want 3 (each frame routed once)", got)
	}
}

// TestFrameSentAgainAfterTakeover: the leader logs each frame's id with
// its positions; the standby that takes over answers a copy of a frame
// the old leader routed with a retaken ack, and routes nothing; a
// standby answers a frame it is handed as "no responders", so the sender
// sends it again at once.
func TestFrameSentAgainAfterTakeover(t *testing.T) {
	a, stopA, b := startRedundantPair(t)
	nc, down := fakeGatewayDone(t, a, "gw", true)
	nc.Publish(wire.SubjectUp, wire.AppendResume(wire.AppendHello(wire.AppendUpHeader(nil, wire.KindUp, "gw", 1), 0), 1, 7, 0, 0))
	nc.Flush()
	<-down // resumed
	waitFor(t, "b holds the login", func() bool { return b.reg.Stats().Conns == 1 })

	in1, sub1 := inbox(t, nc)
	nc.PublishRequest(wire.SubjectSend, in1, framed(1, 7, "one", "two"))
	if a1, _ := nextAck(t, sub1); a1.Count != 2 || a1.Tally.Delivered != 2 || a1.Retaken {
		t.Fatalf("first ack %+v", a1)
	}
	<-down
	waitFor(t, "b remembers the frame from the log", func() bool { return b.frames.len() == 1 })

	// b does not lead: a frame it is handed is answered "no responders".
	inS, subS := inbox(t, nc)
	b.handleSend(&nats.Msg{Subject: wire.SubjectSend, Reply: inS, Data: framed(9, 7, "x")})
	// (nats.go reads an empty message with Status 503 as "no responders")
	if m, err := subS.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("the standby's answer: %+v %v", m, err)
	}

	stopA()
	waitFor(t, "b leads", func() bool { return leads(b) })
	in2, sub2 := inbox(t, nc)
	nc.PublishRequest(wire.SubjectSend, in2, framed(1, 7, "one", "two"))
	if a2, _ := nextAck(t, sub2); a2.Count != 2 || !a2.Retaken || a2.Tally != (wire.Tally{}) {
		t.Errorf("the copy's ack after the takeover: %+v, want 2 sends retaken", a2)
	}
	if st := b.Stats(); st.Sent != 0 || st.Frames.Answered != 1 {
		t.Errorf("b routed %d sends and answered %d copies; want 0 and 1", st.Sent, st.Frames.Answered)
	}
}

// TestFrameTableBound: the table holds at most maxFrames (the oldest
// forgotten early, counted), and reports the heap one remembered frame
// costs (docs/PROTOCOL.md, "Sending a frame again": go test
// ./internal/router -run TestFrameTableBound -v).
func TestFrameTableBound(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ft := newFrameTable()
	// A frame still routing, with a copy waiting for its answer.
	slow := &pendingAck{}
	ft.take(nil, frameKey{9, 0}, slow, "first")
	ft.take(nil, frameKey{9, 0}, &pendingAck{}, "copy")
	answer := wire.AppendAck(wire.AppendHeader(nil, wire.KindAck), 256, 0, 0, wire.Tally{Delivered: 256})
	for n := range uint64(maxFrames) {
		ack := &pendingAck{}
		if !ft.take(nil, frameKey{7, n}, ack, "") {
			t.Fatalf("frame %d taken twice", n)
		}
		ft.done(ack, slices.Clone(answer)) // each ack its own bytes, as complete makes them
	}
	// The slow frame was forgotten to make room: its copy is answered.
	if copies := ft.done(slow, answer); len(copies) != 1 || copies[0] != "copy" {
		t.Errorf("the forgotten frame's waiting copies: %v", copies)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d frames remembered: %.0f bytes each (heap)", ft.len(), float64(after.HeapAlloc-before.HeapAlloc)/float64(ft.len()))
	ft.take(nil, frameKey{7, maxFrames}, &pendingAck{}, "")
	if ft.len() != maxFrames || ft.forgotten.Load() != 2 {
		t.Errorf("after one more: %d remembered, %d forgotten; want %d and 2 (the slow frame, then the oldest)", ft.len(), ft.forgotten.Load(), maxFrames)
	}
	if ft.take(nil, frameKey{7, 0}, &pendingAck{}, "") != true {
		t.Error("the oldest frame was not forgotten")
	}
	runtime.KeepAlive(ft)
}

// TestFrameRecordsPastTheWindow: a router replaying the history log from
// its start remembers only the frames logged within the window.
func TestFrameRecordsPastTheWindow(t *testing.T) {
	r := &Router{frames: newFrameTable()}
	r.frames.retakenAt(time.Now().Add(-wire.FrameWindow-time.Second))(1, 1, 5)
	r.frames.retakenAt(time.Now().Add(-time.Second))(1, 2, 5)
	if n := r.frames.len(); n != 1 || r.frames.m[frameKey{1, 2}] == nil {
		t.Errorf("remembered %d frames: %v; want only the recent one", n, r.frames.m)
	}
}
