//go:build linux

package hub_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/hub/hubtest"
	"github.com/cometgw/comet/internal/testclient"
)

// lines is a kind for testing the hub alone: it writes one line per event.
// Its resumable twin (resumable: true) logs in with a resume and keeps a
// cursor; with finishAfter > 0 it finishes after that many messages and
// hands its socket back.
type lines struct {
	resumable   bool
	keepsInput  bool
	finishAfter uint64
	heartbeat   time.Duration
	shutdowns   *atomic.Int64
}

func (k lines) Traits() hub.Traits {
	return hub.Traits{Name: fmt.Sprintf("lines-%t", k.resumable), Resumable: k.resumable, KeepsInput: k.keepsInput}
}

func (k lines) Open(s hub.Session, r *hub.Request) { s.Write(fmt.Appendf(nil, "open %d\n", r.ID)) }

func (k lines) Deliver(s hub.Session, m *hub.Message) bool {
	var n uint64
	if k.resumable {
		n = s.Cursor().Seq
	} else {
		n = s.Next()
	}
	ok := s.Write(fmt.Appendf(nil, "%d %s\n", n, m.Body))
	if ok && k.finishAfter > 0 && n >= k.finishAfter {
		s.Finish()
		if s.Idle() {
			k.Written(s)
		}
	}
	return ok
}

func (k lines) Resumed(s hub.Session) {
	s.Write(fmt.Appendf(nil, "resumed %s head %d missed %t\n", s.Cursor(), s.Head(), s.Missed()))
}

func (k lines) Tick(s hub.Session, now int64) { s.Heartbeat([]byte("hb\n"), k.heartbeat, now) }

func (k lines) Written(s hub.Session) {
	if s.Finished() {
		s.Handback(hub.ReasonAnswered)
	}
}

func (k lines) Shutdown(s hub.Session) {
	if k.shutdowns != nil {
		k.shutdowns.Add(1)
	}
	s.Write([]byte("bye\n"))
}

const wait = 5 * time.Second

func TestOrderAndLogins(t *testing.T) {
	h := hubtest.Start(t, hub.Config{Workers: 2}, lines{})
	var cs []*hubtest.Client
	for id := int64(1); id <= 3; id++ {
		c := h.Open(hub.Request{ID: id})
		c.Until(fmt.Sprintf("open %d\n", id), wait)
		if !h.L.Has(fmt.Sprintf("open %d %d", c.Key, id)) {
			t.Fatalf("no login for %d: %v", id, h.L.Events())
		}
		cs = append(cs, c)
	}
	keys := []uint64{cs[0].Key, cs[1].Key, cs[2].Key}
	for i := 1; i <= 1000; i++ {
		h.Hub.Deliver([]byte(fmt.Sprint("m", i)), keys[:1+i%3])
	}
	for n, c := range cs {
		k := 0
		for i := 1; i <= 1000; i++ {
			if 1+i%3 > n {
				k++
				c.Until(fmt.Sprintf("%d m%d\n", k, i), wait)
			}
		}
	}
	if st := h.Hub.Stats(); st.Messages != 2000 || st.Open != 3 || st.OpenKind["lines-false"] != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPeerCloseLogsOut(t *testing.T) {
	h := hubtest.Start(t, hub.Config{}, lines{})
	c := h.Open(hub.Request{ID: 7})
	c.Until("open 7\n", wait)
	c.Conn.Close()
	testclient.WaitFor(t, "logout", wait, func() bool { return h.L.Has(fmt.Sprintf("close %d", c.Key)) })
	if h.Hub.Closes(hub.ReasonPeer) != 1 || h.Hub.Len() != 0 {
		t.Fatalf("closes %v, open %d", h.Hub.Stats().Closed, h.Hub.Len())
	}
	h.Hub.Deliver([]byte("late"), []uint64{c.Key})
	testclient.WaitFor(t, "stale delivery counted", wait, func() bool { return h.Hub.Stats().Stale == 1 })
}

func TestSlowClientEvictedOthersServed(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxPending: 8 << 10, SendBuffer: 4096}, lines{})
	slow := h.Open(hub.Request{ID: 1})
	fast := h.Open(hub.Request{ID: 2})
	slow.Conn.SetReadBuffer(4096)
	fast.Until("open 2\n", wait)
	msg := []byte(strings.Repeat("x", 1000))
	for i := 0; i < 200; i++ {
		h.Hub.Deliver(msg, []uint64{slow.Key, fast.Key})
		fast.Until(fmt.Sprintf("%d %s\n", i+1, msg), wait)
	}
	testclient.WaitFor(t, "slow client evicted", wait, func() bool { return h.Hub.Closes(hub.ReasonSlow) == 1 })
	if !h.L.Has(fmt.Sprintf("close %d", slow.Key)) || h.Hub.Len() != 1 {
		t.Fatalf("events %v, open %d", h.L.Events(), h.Hub.Len())
	}
}

func TestStuckOutputTimesOut(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxPending: 1 << 20, SendBuffer: 4096, WriteTimeout: 100 * time.Millisecond}, lines{})
	c := h.Open(hub.Request{ID: 1})
	c.Conn.SetReadBuffer(4096)
	msg := []byte(strings.Repeat("y", 1000))
	for i := 0; i < 100; i++ {
		h.Hub.Deliver(msg, []uint64{c.Key})
	}
	start := time.Now()
	testclient.WaitFor(t, "write timeout", wait, func() bool { return h.Hub.Closes(hub.ReasonTimeout) == 1 })
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %s", d)
	}
}

func TestInputIsDroppedOrKept(t *testing.T) {
	h := hubtest.Start(t, hub.Config{}, lines{}, lines{keepsInput: true})
	talker := h.Open(hub.Request{ID: 1})
	keeper := h.Open(hub.Request{Kind: 1, ID: 2})
	keeper.Conn.Write([]byte("GET /next HTTP/1.1\r\n\r\n"))
	big := make([]byte, 100<<10)
	go talker.Conn.Write(big)
	testclient.WaitFor(t, "talker closed", wait, func() bool { return h.Hub.Closes(hub.ReasonProtocol) == 1 })
	if h.Hub.Len() != 1 {
		t.Fatalf("open %d", h.Hub.Len())
	}
}

func TestResumablePositions(t *testing.T) {
	h := hubtest.Start(t, hub.Config{}, lines{resumable: true})
	c := h.Open(hub.Request{ID: 5, Cursor: cursor.Cursor{Epoch: 9, Seq: 3}})
	c.Until("open 5\n", wait)
	if !h.L.Has(fmt.Sprintf("resume %d 5 9-3", c.Key)) {
		t.Fatalf("events %v", h.L.Events())
	}
	// A delivery before the router answered the resume (a router that
	// logged the session in without answering) is left to the answer:
	// the cursor stays the client's, for the resume asked again.
	h.Hub.DeliverAt(9, 7, []byte("early"), []uint64{c.Key})
	testclient.WaitFor(t, "the early delivery counted late", wait, func() bool { return h.Hub.Stats().Late == 1 })
	var before []string
	h.Hub.Snapshot(func(_ uint64, _ int64, _ bool, cur cursor.Cursor) { before = append(before, cur.String()) })
	if fmt.Sprint(before) != "[9-3]" {
		t.Fatalf("snapshot before the answer %v", before)
	}
	h.Hub.Resumed(c.Key, 9, 4, 5, false)
	c.Until("resumed 9-3 head 5 missed false\n", wait)
	for _, seq := range []uint64{4, 5, 5, 3, 6} {
		h.Hub.DeliverAt(9, seq, []byte(fmt.Sprint("s", seq)), []uint64{c.Key})
	}
	c.Until("4 s4\n5 s5\n6 s6\n", wait)
	if st := h.Hub.Stats(); st.Duplicates != 2 || st.Messages != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Another epoch: the router lost the history; the client is told
	// where it now stands.
	h.Hub.Resumed(c.Key, 11, 1, 0, true)
	c.Until("resumed b-0 head 0 missed true\n", wait)
	var got []string
	h.Hub.Snapshot(func(conn uint64, id int64, resumable bool, cur cursor.Cursor) {
		got = append(got, fmt.Sprint(conn == c.Key, id, resumable, cur))
	})
	if fmt.Sprint(got) != "[true 5 true b-0]" {
		t.Fatalf("snapshot %v", got)
	}
}

func TestFinishedSessionHandsBack(t *testing.T) {
	back := make(chan int, 1)
	h := hubtest.Start(t, hub.Config{Handback: func(fd int, _ uint32) { back <- fd }}, lines{resumable: true, finishAfter: 2})
	c := h.Open(hub.Request{ID: 1})
	h.Hub.Resumed(c.Key, 1, 1, 0, false)
	for seq := uint64(1); seq <= 3; seq++ {
		h.Hub.DeliverAt(1, seq, []byte("z"), []uint64{c.Key})
	}
	select {
	case fd := <-back:
		unix.Write(fd, []byte("after\n"))
		unix.Close(fd)
	case <-time.After(wait):
		t.Fatal("no handback")
	}
	c.Until("1 z\n2 z\nafter\n", wait)
	// The third delivery finds the session finished (late) or, if the
	// answer was out before it came, gone (stale).
	testclient.WaitFor(t, "delivery after the answer counted", wait, func() bool { st := h.Hub.Stats(); return st.Stale+st.Late == 1 })
	if h.Hub.Closes(hub.ReasonAnswered) != 1 || !h.L.Has(fmt.Sprintf("close %d", c.Key)) {
		t.Fatalf("closes %v, events %v", h.Hub.Stats().Closed, h.L.Events())
	}
}

func TestDeliveryToFinishedSessionIsLate(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxPending: 1 << 20, SendBuffer: 4096}, lines{resumable: true, finishAfter: 1})
	c := h.Open(hub.Request{ID: 1})
	c.Conn.SetReadBuffer(4096)
	h.Hub.Resumed(c.Key, 1, 1, 0, false)
	big := []byte(strings.Repeat("b", 200<<10))
	h.Hub.DeliverAt(1, 1, big, []uint64{c.Key})
	h.Hub.DeliverAt(1, 2, []byte("after the answer"), []uint64{c.Key})
	testclient.WaitFor(t, "late delivery counted", wait, func() bool { return h.Hub.Stats().Late == 1 })
	out := c.Until(string(big[:1000]), wait)
	if !strings.HasPrefix(out, "open 1\nresumed 1-0 head 0 missed false\n1 b") {
		t.Fatalf("got %.80q", out)
	}
}

func TestHeartbeatWhenQuiet(t *testing.T) {
	h := hubtest.Start(t, hub.Config{WriteTimeout: 200 * time.Millisecond}, lines{heartbeat: 100 * time.Millisecond})
	c := h.Open(hub.Request{ID: 1})
	c.Until("open 1\nhb\nhb\n", wait)
	if h.Hub.Stats().Heartbeats < 2 {
		t.Fatalf("stats %+v", h.Hub.Stats())
	}
}

func TestCloseWritesLastBytesAndLogsOut(t *testing.T) {
	var shutdowns atomic.Int64
	h := hubtest.Start(t, hub.Config{}, lines{shutdowns: &shutdowns})
	a, b := h.Open(hub.Request{ID: 1}), h.Open(hub.Request{ID: 2})
	h.Hub.Deliver([]byte("last"), []uint64{a.Key, b.Key})
	h.Hub.Close()
	for _, c := range []*hubtest.Client{a, b} {
		if out, eof := c.Rest(time.Second); !strings.HasSuffix(out, "1 last\nbye\n") || !eof {
			t.Fatalf("after Close: %q, eof %t", out, eof)
		}
	}
	if shutdowns.Load() != 2 || h.Hub.Closes(hub.ReasonShutdown) != 2 || len(h.L.Events()) != 4 {
		t.Fatalf("shutdowns %d, closes %v, events %v", shutdowns.Load(), h.Hub.Stats().Closed, h.L.Events())
	}
	fd, _ := hubtest.Socketpair(t)
	if err := h.Hub.OpenFD(fd, hub.Request{ID: 3}); err != hub.ErrClosed {
		t.Fatalf("open after Close: %v", err)
	}
}

func TestBeyondMaxSessionsIs503(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxSessions: 1}, lines{})
	fd, c := hubtest.Socketpair(t)
	if fd < 1 {
		t.Skip("descriptor 0 is free")
	}
	if err := h.Hub.OpenFD(fd, hub.Request{ID: 1}); err == nil {
		t.Fatal("opened beyond the limit")
	}
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(wait))
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 503 ") || h.Hub.Stats().Rejected != 1 {
		t.Fatalf("got %q, stats %+v", buf[:n], h.Hub.Stats())
	}
}

func TestBadKindRejected(t *testing.T) {
	h := hubtest.Start(t, hub.Config{}, lines{})
	fd, _ := hubtest.Socketpair(t)
	if err := h.Hub.OpenFD(fd, hub.Request{Kind: 3}); err == nil {
		t.Fatal("opened a session of a kind the hub does not have")
	}
}

// TestBatchTally: a batch's Done says what became of each copy, and a
// session closed with output pending counts the messages it lost.
func TestBatchTally(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxPending: 8 << 10, SendBuffer: 4096}, lines{}, lines{resumable: true, finishAfter: 1})
	ok := h.Open(hub.Request{ID: 1})
	slow := h.Open(hub.Request{ID: 2})
	slow.Conn.SetReadBuffer(4096)
	gone := h.Open(hub.Request{ID: 3})
	poll := h.Open(hub.Request{Kind: 1, ID: 4})
	gone.Conn.Close()
	testclient.WaitFor(t, "gone", wait, func() bool { return h.Hub.Len() == 3 })
	h.Hub.Resumed(poll.Key, 1, 1, 0, false)

	done := make(chan hub.Tally, 1)
	var b hub.Batch
	b.Done = func(b *hub.Batch) { done <- b.Tally }
	big := []byte(strings.Repeat("x", 1000))
	for i := 0; i < 50; i++ {
		b.Deliver([]byte("small"), cursor.Cursor{}, []uint64{ok.Key})
		b.Deliver(big, cursor.Cursor{}, []uint64{slow.Key, gone.Key})
	}
	b.Deliver([]byte("p"), cursor.Cursor{Epoch: 1, Seq: 1}, []uint64{poll.Key})
	b.Deliver([]byte("p again"), cursor.Cursor{Epoch: 1, Seq: 1}, []uint64{poll.Key})
	b.Deliver([]byte("after the answer"), cursor.Cursor{Epoch: 1, Seq: 2}, []uint64{poll.Key})
	h.Hub.Submit(&b)
	var got hub.Tally
	select {
	case got = <-done:
	case <-time.After(wait):
		t.Fatal("no Done")
	}
	// ok: 50 queued. gone: 50 gone. slow: queued until its output passed
	// 8 KiB, then one slow, then gone. poll: the first delivered, the
	// second a duplicate position or late, the third late.
	if got.Slow != 1 || got.Queued < 51 || got.Queued+got.Gone+got.Slow+got.Dup+got.Late != 153 || got.Gone < 50 {
		t.Fatalf("tally %+v", got)
	}
	ok.Until("50 small\n", wait)
	st := h.Hub.Stats()
	if st.Copies != got || st.LostPending["slow"] == 0 {
		t.Fatalf("stats %+v, batch %+v", st, got)
	}
}

// TestLightLoadIsWrittenAtOnce: with a write delay allowed, a gateway
// that keeps up writes each message at once.
func TestLightLoadIsWrittenAtOnce(t *testing.T) {
	h := hubtest.Start(t, hub.Config{WriteDelay: 2 * time.Second}, lines{})
	c := h.Open(hub.Request{ID: 1})
	c.Until("open 1\n", wait)
	for i := 1; i <= 5; i++ {
		h.Hub.Deliver([]byte(fmt.Sprint("m", i)), []uint64{c.Key})
		c.Until(fmt.Sprintf("%d m%d\n", i, i), 500*time.Millisecond)
	}
}

func TestExpiredSessionEnds(t *testing.T) {
	var shutdowns atomic.Int64
	h := hubtest.Start(t, hub.Config{WriteTimeout: 200 * time.Millisecond}, lines{shutdowns: &shutdowns})
	soon := h.Open(hub.Request{ID: 1, Expires: time.Now().Add(300 * time.Millisecond)})
	later := h.Open(hub.Request{ID: 2, Expires: time.Now().Add(time.Hour)})
	never := h.Open(hub.Request{ID: 3})
	if out, eof := soon.Rest(3 * time.Second); out != "open 1\nbye\n" || !eof {
		t.Fatalf("expiring session: %q, eof %t", out, eof)
	}
	// The socket closes just before the session's counters move.
	for deadline := time.Now().Add(wait); h.Hub.Closes(hub.ReasonExpired) != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if h.Hub.Closes(hub.ReasonExpired) != 1 || h.Hub.Len() != 2 || shutdowns.Load() != 1 {
		t.Fatalf("closes %v, open %d", h.Hub.Stats().Closed, h.Hub.Len())
	}
	h.Hub.Deliver([]byte("still"), []uint64{later.Key, never.Key})
	later.Until("open 2\n1 still\n", wait)
	never.Until("open 3\n1 still\n", wait)
}

// Every session's Request.Peer comes back exactly once: through Release
// when its socket closes (peer gone, shutdown), with the socket on a
// handback.
func TestPeersReleasedOnce(t *testing.T) {
	released := make(chan uint32, 8)
	back := make(chan uint32, 1)
	h := hubtest.Start(t, hub.Config{
		Release:  func(p uint32) { released <- p },
		Handback: func(fd int, p uint32) { unix.Close(fd); back <- p },
	}, lines{}, lines{resumable: true, finishAfter: 1})
	gone := h.Open(hub.Request{ID: 1, Peer: 7})
	answered := h.Open(hub.Request{Kind: 1, ID: 2, Peer: 8})
	h.Open(hub.Request{ID: 3, Peer: 9})
	h.Open(hub.Request{ID: 4}) // not counted: nothing to release

	gone.Conn.Close()
	if p := <-released; p != 7 {
		t.Fatalf("released %d, want 7", p)
	}
	h.Hub.Resumed(answered.Key, 2, 1, 0, false)
	h.Hub.DeliverAt(2, 1, []byte("x"), []uint64{answered.Key})
	select {
	case p := <-back:
		if p != 8 {
			t.Fatalf("handed back with peer %d, want 8", p)
		}
	case <-time.After(wait):
		t.Fatal("no handback")
	}
	h.Hub.Close()
	if p := <-released; p != 9 {
		t.Fatalf("released %d at shutdown, want 9", p)
	}
	select {
	case p := <-released:
		t.Fatalf("released %d more", p)
	default:
	}
	if err := h.Hub.OpenFD(-1, hub.Request{Peer: 10}); err == nil {
		t.Fatal("opened after close")
	}
	if p := <-released; p != 10 {
		t.Fatalf("a refused open released %d, want 10", p)
	}
}

// DeliverAll reaches every open session, of every kind, each once.
func TestDeliverAll(t *testing.T) {
	h := hubtest.Start(t, hub.Config{Workers: 3}, lines{}, lines{resumable: true})
	var cs []*hubtest.Client
	for id := int64(1); id <= 7; id++ {
		cs = append(cs, h.Open(hub.Request{Kind: int(id % 2), ID: id}))
	}
	cs[0].Conn.Close()
	testclient.WaitFor(t, "closed", wait, func() bool { return h.Hub.Len() == 6 })
	b := new(hub.Batch)
	done := make(chan hub.Tally, 1)
	b.Done = func(b *hub.Batch) { done <- b.Tally }
	b.DeliverAll([]byte("all"))
	h.Hub.Submit(b)
	if tally := <-done; tally.Queued != 6 {
		t.Fatalf("tally %+v, want 6 queued", tally)
	}
	for i, c := range cs[1:] {
		id := i + 2
		want := fmt.Sprintf("open %d\n1 all\n", id)
		if id%2 == 1 {
			want = fmt.Sprintf("open %d\n0 all\n", id) // resumable, no position: its cursor stays 0
		}
		c.Until(want, wait)
	}
}

// TestDrainSpreads: Drain ends every session as at shutdown (its kind's
// last bytes), counted drained, spread over the period: a third of the
// sessions are still open a third of the way in; a few sessions past the
// minimum rate end at once.
func TestDrainSpreads(t *testing.T) {
	h := hubtest.Start(t, hub.Config{}, lines{})
	const n = 60
	cs := make([]*hubtest.Client, n)
	for i := range cs {
		cs[i] = h.Open(hub.Request{ID: int64(i + 1)})
		cs[i].Until(fmt.Sprintf("open %d\n", i+1), wait)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { h.Hub.Drain(t.Context(), 900*time.Millisecond, 1); close(done) }()
	time.Sleep(300 * time.Millisecond)
	if open := h.Hub.Len(); open < n/3 || open > n-n/6 {
		t.Errorf("a third into the drain, %d of %d sessions open; want about two thirds", open, n)
	}
	<-done
	if took := time.Since(start); took < 800*time.Millisecond {
		t.Errorf("drained in %s; want the 900 ms period", took)
	}
	for _, c := range cs {
		if out, eof := c.Rest(time.Second); !eof || out != "bye\n" {
			t.Fatalf("a drained session got %q, closed %v", out, eof)
		}
	}
	if got := h.Hub.Closes(hub.ReasonDrained); got != n || h.Hub.Len() != 0 {
		t.Fatalf("drained %d, open %d", got, h.Hub.Len())
	}

	// Few sessions and a high minimum rate: all at once.
	for i := range 5 {
		h.Open(hub.Request{ID: int64(100 + i)}).Until("open", wait)
	}
	start = time.Now()
	h.Hub.Drain(t.Context(), time.Minute, 1000)
	if took := time.Since(start); took > time.Second || h.Hub.Len() != 0 {
		t.Fatalf("5 sessions at 1000/s at least took %s (open %d)", took, h.Hub.Len())
	}
}

// TestOutputWaitCountsABacklog: output a client leaves in the gateway
// (it does not read) is counted in the output-wait stage for as long as
// it waited, from its oldest byte to its last byte written.
func TestOutputWaitCountsABacklog(t *testing.T) {
	h := hubtest.Start(t, hub.Config{MaxPending: 1 << 20, SendBuffer: 4096}, lines{})
	c := h.Open(hub.Request{ID: 1})
	c.Conn.SetReadBuffer(4096)
	c.Until("open 1\n", wait)
	_, _, outputWait := h.Hub.Latencies()
	msg := []byte(strings.Repeat("z", 1000))
	for i := 0; i < 100; i++ {
		h.Hub.Deliver(msg, []uint64{c.Key})
	}
	time.Sleep(400 * time.Millisecond) // the client reads nothing meanwhile
	c.Until(fmt.Sprintf("100 %s\n", msg), wait)
	testclient.WaitFor(t, "the backlog's wait counted", wait, func() bool {
		return outputWait.Snapshot().Quantile(1) >= 250*time.Millisecond
	})
	if s := outputWait.Snapshot(); s.Count() == 0 || s.Quantile(0) > 100*time.Millisecond {
		t.Errorf("output waits: %d counted, the least %s: want the writes before the backlog near 0", s.Count(), s.Quantile(0))
	}
}
