package retention

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/cursor"
)

type resumeResult struct {
	res  Resumed
	seqs []uint64
	msgs []string
}

func resume(s *Store, id int64, cur cursor.Cursor) resumeResult {
	var out resumeResult
	h := s.Lock(id)
	defer h.Unlock()
	r, kept := h.Resume(cur)
	out.res = r
	for _, e := range kept {
		out.seqs = append(out.seqs, e.Seq)
		out.msgs = append(out.msgs, string(e.Msg))
	}
	return out
}

func send(s *Store, id int64, msg string, now int64) (epoch, seq uint64) {
	h := s.Lock(id)
	defer h.Unlock()
	m := Share([]byte(msg))
	return h.Append("", &m, now)
}

func TestStoreResume(t *testing.T) {
	s, err := NewStore(Config{MaxMessages: 4, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	if e, _ := send(s, 1, "before any client", now); e != 0 {
		t.Fatal("an id with no resumable client got a position")
	}
	first := resume(s, 1, cursor.Cursor{})
	ep := first.res.Epoch
	if first.res != (Resumed{Epoch: ep, From: 1, Head: 0, Opened: true}) || ep == 0 {
		t.Fatalf("fresh resume %+v", first.res)
	}
	for i := 1; i <= 6; i++ {
		if e, q := send(s, 1, fmt.Sprint("m", i), now); e != ep || q != uint64(i) {
			t.Fatalf("send %d got position %x-%d", i, e, q)
		}
	}
	tests := []struct {
		name string
		cur  cursor.Cursor
		want Resumed
		seqs []uint64
	}{
		{"no cursor: from now", cursor.Cursor{}, Resumed{ep, 7, 6, false, false}, nil},
		{"in window", cursor.Cursor{Epoch: ep, Seq: 3}, Resumed{ep, 4, 6, false, false}, []uint64{4, 5, 6}},
		{"just in window", cursor.Cursor{Epoch: ep, Seq: 2}, Resumed{ep, 3, 6, false, false}, []uint64{3, 4, 5, 6}},
		{"up to date", cursor.Cursor{Epoch: ep, Seq: 6}, Resumed{ep, 7, 6, false, false}, nil},
		{"past the window", cursor.Cursor{Epoch: ep, Seq: 1}, Resumed{ep, 3, 6, true, false}, []uint64{3, 4, 5, 6}},
		{"from the start", cursor.Cursor{Epoch: ep, Seq: 0}, Resumed{ep, 3, 6, true, false}, []uint64{3, 4, 5, 6}},
		{"other epoch", cursor.Cursor{Epoch: ep + 1, Seq: 5}, Resumed{ep, 3, 6, true, false}, []uint64{3, 4, 5, 6}},
		{"ahead of the sequence", cursor.Cursor{Epoch: ep, Seq: 9}, Resumed{ep, 3, 6, true, false}, []uint64{3, 4, 5, 6}},
	}
	for _, tt := range tests {
		got := resume(s, 1, tt.cur)
		if got.res != tt.want || fmt.Sprint(got.seqs) != fmt.Sprint(tt.seqs) {
			t.Errorf("%s: %+v %v; want %+v %v", tt.name, got.res, got.seqs, tt.want, tt.seqs)
		}
	}
	if st := s.Stats(); st.IDs != 1 || st.Messages != 4 || st.Expired != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Age: everything expires; a cursor before is told it missed them.
	s.Sweep(now+int64(2*time.Minute), func(int64) bool { return true })
	got := resume(s, 1, cursor.Cursor{Epoch: ep, Seq: 6})
	if got.res != (Resumed{ep, 7, 6, false, false}) || got.seqs != nil {
		t.Fatalf("after expiry, an up-to-date cursor: %+v", got)
	}
	if got := resume(s, 1, cursor.Cursor{Epoch: ep, Seq: 5}); got.res != (Resumed{ep, 7, 6, true, false}) || got.seqs != nil {
		t.Fatalf("after expiry, a stale cursor: %+v", got)
	}
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
}

func TestStoreGrace(t *testing.T) {
	s, _ := NewStore(Config{Grace: time.Second})
	now := time.Now().UnixNano()
	ep := resume(s, 5, cursor.Cursor{}).res.Epoch
	send(s, 5, "kept", now)
	held := true
	s.Idle(5, now)
	s.Sweep(now+int64(2*time.Second), func(int64) bool { return held })
	if got := resume(s, 5, cursor.Cursor{Epoch: ep, Seq: 0}); got.res.Epoch != ep || len(got.seqs) != 1 {
		t.Fatalf("an id held again lost its history: %+v", got)
	}
	held = false
	s.Idle(5, now)
	s.Sweep(now+int64(500*time.Millisecond), func(int64) bool { return held })
	if s.Stats().IDs != 1 {
		t.Fatal("history dropped within the grace period")
	}
	s.Sweep(now+int64(2*time.Second), func(int64) bool { return held })
	if st := s.Stats(); st.IDs != 0 || st.Dropped != 1 || st.Messages != 0 {
		t.Fatalf("history not dropped after the grace period: %+v", st)
	}
	if e, _ := send(s, 5, "void", now); e != 0 {
		t.Fatal("a dropped id still gets positions")
	}
	got := resume(s, 5, cursor.Cursor{Epoch: ep, Seq: 1})
	if got.res.Epoch == ep || !got.res.Missed {
		t.Fatalf("a cursor of the dropped history: %+v", got.res)
	}
}

// A queued position its history no longer keeps (trimmed by count, as
// most are under steady traffic) is popped without its history's lock:
// the byte cap's evictions do not wait for, or work for, messages
// already gone.
func TestStoreEvictSkipsTrimmed(t *testing.T) {
	const msg = "0123456789"
	live := int64(len(msg) + entryCost)
	s, _ := NewStore(Config{MaxMessages: 2, MaxBytes: 4*live + 60*queuedSize})
	if s.shard(1) == s.shard(2) {
		t.Fatal("ids 1 and 2 share a shard")
	}
	now := time.Now().UnixNano()
	resume(s, 1, cursor.Cursor{})
	resume(s, 2, cursor.Cursor{})
	for range 100 {
		send(s, 1, msg, now)
	}
	held := s.Lock(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			send(s, 2, msg, now)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		held.Unlock()
		t.Fatal("evicting id 1's trimmed positions waited for id 1's lock")
	}
	held.Unlock()
	st := s.Stats()
	if st.Messages != 4 || st.Evicted != 0 || st.Bytes > s.cfg.MaxBytes {
		t.Fatalf("stats %+v", st)
	}
	if got := resume(s, 1, cursor.Cursor{}); got.res.Head != 100 {
		t.Fatalf("id 1 %+v", got.res)
	}
}

func TestStoreByteCap(t *testing.T) {
	s, _ := NewStore(Config{MaxBytes: 10 * (100 + entryCost)})
	now := time.Now().UnixNano()
	a := resume(s, 1, cursor.Cursor{}).res.Epoch
	resume(s, 2, cursor.Cursor{})
	msg := strings.Repeat("x", 100)
	for i := 0; i < 8; i++ {
		send(s, 1, msg, now)
	}
	for i := 0; i < 8; i++ {
		send(s, 2, msg, now)
	}
	st := s.Stats()
	if st.Bytes > 10*(100+entryCost) || st.Evicted == 0 || st.Messages+int64(st.Evicted) != 16 {
		t.Fatalf("byte cap not kept: %+v", st)
	}
	// The oldest went first: id 1 lost messages, id 2 kept all.
	if got := resume(s, 2, cursor.Cursor{}); got.res.Head != 8 {
		t.Fatalf("id 2 %+v", got.res)
	}
	if got := resume(s, 1, cursor.Cursor{Epoch: a, Seq: 0}); !got.res.Missed || len(got.seqs) >= 8 {
		t.Fatalf("id 1 should have lost its oldest: %+v %v", got.res, got.seqs)
	}
	if s2 := resume(s, 2, cursor.Cursor{Epoch: resume(s, 2, cursor.Cursor{}).res.Epoch}); s2.res.Missed || len(s2.seqs) != 8 {
		t.Fatalf("id 2 lost messages: %+v", s2)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := NewStore(Config{MaxMessages: -1}); err == nil {
		t.Fatal("negative bound accepted")
	}
	s, err := NewStore(Config{})
	if err != nil || s.Config() != DefaultConfig() {
		t.Fatalf("zero config: %+v, %v", s.Config(), err)
	}
}

// A message kept by many histories is copied once, from the source as it
// was: the caller's buffer may change after.
func TestStoreSharedCopy(t *testing.T) {
	s, _ := NewStore(Config{})
	for id := int64(1); id <= 3; id++ {
		resume(s, id, cursor.Cursor{})
	}
	src := []byte("hello")
	m := Share(src)
	now := time.Now().UnixNano()
	for id := int64(1); id <= 4; id++ { // 4 has no history: nothing kept
		h := s.Lock(id)
		h.Append("room", &m, now)
		h.Unlock()
	}
	copy(src, "XXXXX")
	var first *byte
	for id := int64(1); id <= 3; id++ {
		h := s.Lock(id)
		_, kept := h.Resume(cursor.Cursor{Epoch: epochOf(s, id), Seq: 0})
		if len(kept) != 1 || string(kept[0].Msg) != "hello" || kept[0].Topic != "room" {
			h.Unlock()
			t.Fatalf("id %d kept %+v", id, kept)
		}
		if first == nil {
			first = &kept[0].Msg[0]
		} else if first != &kept[0].Msg[0] {
			h.Unlock()
			t.Fatalf("id %d has its own copy", id)
		}
		h.Unlock()
	}
	if st := s.Stats(); st.Messages != 3 || st.Bytes != 3*(5+entryCost) {
		t.Fatalf("stats %+v", st)
	}
}

// epochOf is id's history's epoch (id's lock held, or no other user).
func epochOf(s *Store, id int64) uint64 {
	sh := s.shard(id)
	return sh.m[id].epoch
}

// A history at its count bound keeps the newest in order and reuses its
// array instead of growing it.
func TestStoreBoundReusesArray(t *testing.T) {
	s, _ := NewStore(Config{MaxMessages: 4})
	ep := resume(s, 1, cursor.Cursor{}).res.Epoch
	now := time.Now().UnixNano()
	for i := 1; i <= 1000; i++ {
		send(s, 1, fmt.Sprint(i), now)
		if h := s.shard(1).m[1]; cap(h.kept) > 4*4+8 {
			t.Fatalf("after %d: cap %d", i, cap(h.kept))
		}
	}
	got := resume(s, 1, cursor.Cursor{Epoch: ep, Seq: 996})
	if got.res.Missed || fmt.Sprint(got.seqs) != "[997 998 999 1000]" || fmt.Sprint(got.msgs) != "[997 998 999 1000]" {
		t.Fatalf("%+v", got)
	}
	if st := s.Stats(); st.Messages != 4 || st.Expired != 996 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkPublishToRoom keeps one publish in each of a 2,000-member
// room's histories per op, at their count bound and past the byte cap
// (the eviction queue popped on every append), as a chat room's router
// does.
func BenchmarkPublishToRoom(b *testing.B) {
	const members = 2000
	s, _ := NewStore(Config{})
	for id := int64(1); id <= members; id++ {
		resume(s, id, cursor.Cursor{})
	}
	msg := []byte(strings.Repeat("m", 40))
	publish := func(now int64) {
		m := Share(msg)
		for id := int64(1); id <= members; id++ {
			h := s.Lock(id)
			h.Append("room", &m, now)
			h.Unlock()
		}
	}
	now := time.Now().UnixNano()
	for s.Stats().Bytes < s.cfg.MaxBytes-1<<20 {
		publish(now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		publish(now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/append")
}
