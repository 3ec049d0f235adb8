package topichist

import (
	"fmt"
	"testing"
	"time"
)

func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func TestOffIsNil(t *testing.T) {
	s, err := New(Config{})
	if err != nil || s != nil {
		t.Fatalf("New(off) = %v, %v", s, err)
	}
	if e, q := s.Append([]byte("a"), []byte("x"), 1); e != 0 || q != 0 {
		t.Fatal("a nil store kept a message")
	}
	if got, _ := s.Read([]byte("a"), 0, 0, 10, 1, nil); len(got) != 0 || s.Stats() != nil || s.Keeps() {
		t.Fatal("a nil store gave something")
	}
	for _, c := range []Config{{MaxMessages: -1}, {MaxMessages: 5, MaxAge: time.Millisecond}, {MaxMessages: 5, MaxBytes: 1000}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestKeepsTheLastN(t *testing.T) {
	s, _ := New(Config{MaxMessages: 3})
	now := time.Now().UnixNano()
	for i := range 5 {
		if _, seq := s.Append([]byte("room"), fmt.Appendf(nil, "m%d", i+1), now); seq != uint64(i+1) {
			t.Fatalf("message %d at %d", i+1, seq)
		}
	}
	s.Append([]byte("other"), []byte("o1"), now)
	got, epoch := s.Read([]byte("room"), 0, 0, 10, now, nil)
	if fmt.Sprint(seqs(got)) != "[3 4 5]" || string(got[0].Msg) != "m3" || epoch == 0 {
		t.Fatalf("read %v (epoch %d)", seqs(got), epoch)
	}
	for _, c := range []struct {
		after, upto uint64
		max         int
		want        string
	}{
		{0, 4, 10, "[3 4]"}, // up to the seam
		{0, 5, 1, "[5]"},    // the last one
		{3, 0, 10, "[4 5]"}, // after a position
		{5, 0, 10, "[]"},    // nothing new
		{0, 2, 10, "[]"},    // before what is kept
		{0, 99, 2, "[4 5]"}, // upto past the head
		{4, 4, 10, "[]"},    // empty range
		{0, 0, 0, "[]"},     // max 0
		{1, 5, 1000, "[3 4 5]"},
	} {
		got, _ := s.Read([]byte("room"), c.after, c.upto, c.max, now, nil)
		if fmt.Sprint(seqs(got)) != c.want {
			t.Errorf("Read(after %d, upto %d, max %d) = %v, want %s", c.after, c.upto, c.max, seqs(got), c.want)
		}
	}
	if _, head := s.Head([]byte("room")); head != 5 {
		t.Fatalf("head %d", head)
	}
	if st := s.Stats(); st.Topics != 2 || st.Messages != 4 || st.Bytes != 4*(2+EntryOverhead) {
		t.Fatalf("stats %+v", st)
	}
}

// TestBytesBound: past MaxBytes the oldest go first, whatever their
// topic, and the count stays exact through the compactions.
func TestBytesBound(t *testing.T) {
	s, _ := New(Config{MaxMessages: 1000, MaxBytes: 1 << 20})
	now := time.Now().UnixNano()
	msg := make([]byte, 1000)
	for i := range 5000 {
		s.Append(fmt.Appendf(nil, "t%d", i%7), msg, now)
	}
	st := s.Stats()
	per := int64(len(msg) + EntryOverhead)
	if st.Bytes > 1<<20 || st.Bytes < 1<<20-per || st.Bytes != int64(st.Messages)*per {
		t.Fatalf("stats %+v", st)
	}
	// The oldest went: what is left is the last st.Messages appended.
	got, _ := s.Read([]byte("t0"), 0, 0, 1000, now, nil)
	if n := len(got); n < st.Messages/7-1 || got[n-1].Seq != 715 {
		t.Fatalf("t0 keeps %d, last %d", n, got[n-1].Seq)
	}
}

func TestExpire(t *testing.T) {
	s, _ := New(Config{MaxMessages: 10, MaxAge: time.Second})
	t0 := time.Now().UnixNano()
	s.Append([]byte("a"), []byte("old"), t0)
	s.Append([]byte("b"), []byte("old"), t0)
	s.Append([]byte("a"), []byte("new"), t0+int64(2*time.Second))
	if got, _ := s.Read([]byte("a"), 0, 0, 10, t0+int64(2*time.Second), nil); fmt.Sprint(seqs(got)) != "[2]" {
		t.Fatalf("read past the age: %v", seqs(got))
	}
	s.Expire(t0 + int64(2*time.Second))
	if st := s.Stats(); st.Messages != 1 || st.Topics != 1 {
		t.Fatalf("after expiry %+v", st) // b forgotten, a keeps "new"
	}
	// a's positions go on.
	if _, seq := s.Append([]byte("a"), []byte("x"), t0+int64(3*time.Second)); seq != 3 {
		t.Fatalf("next position %d", seq)
	}
}

// TestApply: a standby's store takes the leader's positions, starts a
// topic of another epoch again, and goes on from them when it leads.
func TestApply(t *testing.T) {
	leader, _ := New(Config{MaxMessages: 5})
	standby, _ := New(Config{MaxMessages: 5})
	now := time.Now().UnixNano()
	standby.Append([]byte("room"), []byte("own"), now) // its own epoch, replaced
	for i := range 3 {
		msg := fmt.Appendf(nil, "m%d", i)
		epoch, seq := leader.Append([]byte("room"), msg, now)
		standby.Apply("room", epoch, seq, now, msg)
		standby.Apply("room", epoch, seq, now, msg) // again: left alone
	}
	got, epoch := standby.Read([]byte("room"), 0, 0, 10, now, nil)
	le, _ := leader.Head([]byte("room"))
	if fmt.Sprint(seqs(got)) != "[1 2 3]" || epoch != le || string(got[0].Msg) != "m0" {
		t.Fatalf("standby has %v epoch %d (leader's %d)", seqs(got), epoch, le)
	}
	if e, seq := standby.Append([]byte("room"), []byte("next"), now); e != le || seq != 4 {
		t.Fatalf("after takeover: %d/%d", e, seq)
	}
	if st := standby.Stats(); st.Messages != 4 {
		t.Fatalf("stats %+v", st)
	}
}
