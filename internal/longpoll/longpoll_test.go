package longpoll

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want Cursor
		err  error
	}{
		{"", Cursor{}, nil},
		{"1-0", Cursor{1, 0}, nil},
		{"abcdef0123456789-18446744073709551615", Cursor{0xabcdef0123456789, 18446744073709551615}, nil},
		{"ABC-7", Cursor{0xabc, 7}, nil},
		{"0-5", Cursor{}, ErrCursorEpoch},
		{"-5", Cursor{}, ErrCursorForm},
		{"5-", Cursor{}, ErrCursorForm},
		{"5", Cursor{}, ErrCursorForm},
		{"g-1", Cursor{}, ErrCursorEpoch},
		{"+1-1", Cursor{}, ErrCursorEpoch},
		{"1abcdef01234567890-1", Cursor{}, ErrCursorEpoch},
		{"1-18446744073709551616", Cursor{}, ErrCursorSeq},
		{"1--1", Cursor{}, ErrCursorSeq},
		{"1-1-1", Cursor{}, ErrCursorSeq},
		{"1-+1", Cursor{}, ErrCursorSeq},
		{"1- 1", Cursor{}, ErrCursorSeq},
	}
	for _, tt := range tests {
		got, err := ParseCursor(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != strings.ToLower(tt.in) {
			t.Errorf("%q formats back as %q", tt.in, got.String())
		}
	}
}

// FuzzCursor: no input crashes the parser; what parses formats back into
// something that parses to the same cursor.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"", "1-0", "ff-9", "0-0", "1-", "x", "1-99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		back, err := ParseCursor(c.String())
		if err != nil || back != c {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, c, c.String(), back, err)
		}
	})
}

// FuzzJSONString: AppendJSONString is valid JSON that decodes to what
// encoding/json makes of the same bytes.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "hi", "\"\\\n\r\t\x00\x1f", "<a&b>", "é\xff\xfe", "\u2028\u2029", "\xed\xa0\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		var got, want string
		if err := json.Unmarshal(AppendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: not JSON: %v (%s)", s, err, AppendJSONString(nil, s))
		}
		ref, _ := json.Marshal(string(s))
		json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q decodes to %q, encoding/json's to %q", s, got, want)
		}
	})
}

func TestAnswer(t *testing.T) {
	msgs := AppendMessage(nil, 3, AppendJSONString(nil, []byte("a")))
	msgs = append(msgs, ',')
	msgs = AppendMessage(msgs, 4, AppendJSONString(nil, []byte("b\n")))
	var got Answer
	b := AppendAnswer(nil, -9, Cursor{0x1f, 4}, msgs, true)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.ID != -9 || got.Cursor != "1f-4" || !got.Missed || len(got.Messages) != 2 ||
		got.Messages[0].Seq != 3 || got.Messages[1].Data != "b\n" {
		t.Fatalf("answer %s decodes to %+v", b, got)
	}
}

type resumeResult struct {
	res  Resumed
	seqs []uint64
	msgs []string
}

func resume(s *Store, id int64, cur Cursor) resumeResult {
	var out resumeResult
	s.Resume(id, cur, func(r Resumed, kept []Entry) {
		out.res = r
		for _, e := range kept {
			out.seqs = append(out.seqs, e.Seq)
			out.msgs = append(out.msgs, string(e.Msg))
		}
	})
	return out
}

func send(s *Store, id int64, msg string, now int64) (epoch, seq uint64) {
	s.Append(id, []byte(msg), now, func(e, q uint64) { epoch, seq = e, q })
	return
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
	first := resume(s, 1, Cursor{})
	ep := first.res.Epoch
	if first.res != (Resumed{Epoch: ep, From: 1, Head: 0}) || ep == 0 {
		t.Fatalf("fresh resume %+v", first.res)
	}
	for i := 1; i <= 6; i++ {
		if e, q := send(s, 1, fmt.Sprint("m", i), now); e != ep || q != uint64(i) {
			t.Fatalf("send %d got position %x-%d", i, e, q)
		}
	}
	tests := []struct {
		name string
		cur  Cursor
		want Resumed
		seqs []uint64
	}{
		{"no cursor: from now", Cursor{}, Resumed{ep, 7, 6, false}, nil},
		{"in window", Cursor{ep, 3}, Resumed{ep, 4, 6, false}, []uint64{4, 5, 6}},
		{"just in window", Cursor{ep, 2}, Resumed{ep, 3, 6, false}, []uint64{3, 4, 5, 6}},
		{"up to date", Cursor{ep, 6}, Resumed{ep, 7, 6, false}, nil},
		{"past the window", Cursor{ep, 1}, Resumed{ep, 3, 6, true}, []uint64{3, 4, 5, 6}},
		{"from the start", Cursor{ep, 0}, Resumed{ep, 3, 6, true}, []uint64{3, 4, 5, 6}},
		{"other epoch", Cursor{ep + 1, 5}, Resumed{ep, 3, 6, true}, []uint64{3, 4, 5, 6}},
		{"ahead of the sequence", Cursor{ep, 9}, Resumed{ep, 3, 6, true}, []uint64{3, 4, 5, 6}},
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
	got := resume(s, 1, Cursor{ep, 6})
	if got.res != (Resumed{ep, 7, 6, false}) || got.seqs != nil {
		t.Fatalf("after expiry, an up-to-date cursor: %+v", got)
	}
	if got := resume(s, 1, Cursor{ep, 5}); got.res != (Resumed{ep, 7, 6, true}) || got.seqs != nil {
		t.Fatalf("after expiry, a stale cursor: %+v", got)
	}
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
}

func TestStoreGrace(t *testing.T) {
	s, _ := NewStore(Config{Grace: time.Second})
	now := time.Now().UnixNano()
	ep := resume(s, 5, Cursor{}).res.Epoch
	send(s, 5, "kept", now)
	held := true
	s.Idle(5, now)
	s.Sweep(now+int64(2*time.Second), func(int64) bool { return held })
	if got := resume(s, 5, Cursor{ep, 0}); got.res.Epoch != ep || len(got.seqs) != 1 {
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
	got := resume(s, 5, Cursor{ep, 1})
	if got.res.Epoch == ep || !got.res.Missed {
		t.Fatalf("a cursor of the dropped history: %+v", got.res)
	}
}

func TestStoreByteCap(t *testing.T) {
	s, _ := NewStore(Config{MaxBytes: 10 * (100 + entryCost)})
	now := time.Now().UnixNano()
	a := resume(s, 1, Cursor{}).res.Epoch
	resume(s, 2, Cursor{})
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
	if got := resume(s, 2, Cursor{}); got.res.Head != 8 {
		t.Fatalf("id 2 %+v", got.res)
	}
	if got := resume(s, 1, Cursor{a, 0}); !got.res.Missed || len(got.seqs) >= 8 {
		t.Fatalf("id 1 should have lost its oldest: %+v %v", got.res, got.seqs)
	}
	if s2 := resume(s, 2, Cursor{resume(s, 2, Cursor{}).res.Epoch, 0}); s2.res.Missed || len(s2.seqs) != 8 {
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
