package retention

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/cursor"
)

// leaderLog runs a leader's store as the router does: every history it
// opens and every position it gives goes into the log.
type leaderLog struct {
	s   *Store
	log []byte
}

func (l *leaderLog) resume(id int64, cur cursor.Cursor) resumeResult {
	out := resume(l.s, id, cur)
	if out.res.Opened {
		l.log = AppendOpen(l.log, id, out.res.Epoch)
	}
	return out
}

func (l *leaderLog) send(id int64, msg string, now int64) (epoch, seq uint64) {
	epoch, seq = send(l.s, id, msg, now)
	if epoch != 0 {
		l.log = AppendEntry(l.log, id, epoch, seq, now, "", []byte(msg))
	}
	return
}

// TestFollowerTakesOver: a follower applying the leader's log has every
// position the log holds; when it leads (Jump) it goes on past any
// position the old leader may have given without logging it, and a
// client holding such a position, or the last logged one, has missed
// nothing.
func TestFollowerTakesOver(t *testing.T) {
	now := time.Now().UnixNano()
	newStore := func() *Store {
		s, err := NewStore(Config{MaxMessages: 100, MaxAge: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	l := &leaderLog{s: newStore()}
	ep := l.resume(1, cursor.Cursor{}).res.Epoch
	ep2 := l.resume(2, cursor.Cursor{}).res.Epoch // opened, nothing sent
	for i := 1; i <= 5; i++ {
		l.send(1, fmt.Sprint("m", i), now)
	}
	l.send(3, "no history", now)
	logged := slices.Clone(l.log)
	f := newStore()
	if err := f.ApplyLog(l.log, now, nil); err != nil {
		t.Fatal(err)
	}
	// Applied twice (a follower that starts over): the same.
	if err := f.ApplyLog(l.log, now, nil); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.IDs != 2 || st.Messages != 5 {
		t.Fatalf("follower has %+v", st)
	}
	// The old leader gave 6 and 7 and died before logging them.
	l.send(1, "m6 (not logged)", now)
	l.send(1, "m7 (not logged)", now)

	f.Jump(1 << 32)
	e, s8 := send(f, 1, "m8", now)
	if e != ep || s8 != 6+1<<32 {
		t.Fatalf("after the jump: position %x-%d", e, s8)
	}
	tests := []struct {
		name string
		cur  cursor.Cursor
		want Resumed
		seqs []uint64
	}{
		{"had what was logged", cursor.Cursor{Epoch: ep, Seq: 5}, Resumed{ep, 6, s8, false, false}, []uint64{s8}},
		{"had what was not logged", cursor.Cursor{Epoch: ep, Seq: 7}, Resumed{ep, 8, s8, false, false}, []uint64{s8}},
		{"behind", cursor.Cursor{Epoch: ep, Seq: 3}, Resumed{ep, 4, s8, false, false}, []uint64{4, 5, s8}},
		{"ahead of everything", cursor.Cursor{Epoch: ep, Seq: s8 + 1}, Resumed{ep, 1, s8, true, false}, []uint64{1, 2, 3, 4, 5, s8}},
	}
	for _, tc := range tests {
		got := resume(f, 1, tc.cur)
		if got.res != tc.want || !slices.Equal(got.seqs, tc.seqs) {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got.res, got.seqs, tc.want, tc.seqs)
		}
	}
	// An opened history with nothing sent: the new leader knows its
	// epoch, and a client there has missed nothing.
	if got := resume(f, 2, cursor.Cursor{Epoch: ep2}); got.res.Missed || got.res.Epoch != ep2 {
		t.Errorf("id 2 after the takeover: %+v", got.res)
	}

	// A third router following the new leader's log sees its jump as a
	// gap, as the new leader does.
	f2 := newStore()
	log := AppendEntry(nil, 1, ep, s8, now, "", []byte("m8"))
	if err := f2.ApplyLog(slices.Concat(logged, log), now, nil); err != nil {
		t.Fatal(err)
	}
	if got := resume(f2, 1, cursor.Cursor{Epoch: ep, Seq: 7}); got.res.Missed || !slices.Equal(got.seqs, []uint64{s8}) {
		t.Errorf("third router, cursor in the gap: %+v %v", got.res, got.seqs)
	}
	// One that knows nothing before a message cannot say a client missed
	// nothing before it.
	f3 := newStore()
	f3.ApplyLog(log, now, nil)
	if got := resume(f3, 1, cursor.Cursor{Epoch: ep, Seq: 5}); !got.res.Missed {
		t.Errorf("a history known from one message: %+v", got.res)
	}
}

func newStoreMust(t *testing.T) *Store {
	s, err := NewStore(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyLogMalformed(t *testing.T) {
	s := newStoreMust(t)
	good := AppendEntry(AppendOpen(nil, 1, 7), 1, 7, 1, 1, "room", []byte("hi"))
	for i := range len(good) {
		if err := s.ApplyLog(good[:i], 1, nil); err != nil && !errors.Is(err, ErrBadLog) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
	for _, bad := range [][]byte{{9}, {logOpen, 2, 0}, {logEntry, 2, 1, 0}, {logFrame, 1, 2}, {logFrame, 0x80}} {
		if err := s.ApplyLog(bad, 1, nil); !errors.Is(err, ErrBadLog) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func FuzzApplyLog(f *testing.F) {
	f.Add(AppendEntry(AppendOpen(nil, 1, 7), 1, 7, 1, 1, "room", []byte("hi")))
	f.Add(AppendEntry(nil, -5, 1, 1<<40, -1, "", nil))
	f.Add(AppendFrame(AppendOpen(nil, 1, 7), 1<<63, 9, 3))
	f.Add(AppendTopicEntry(nil, "room", 5, 1, 2, []byte("hi")))
	f.Fuzz(func(t *testing.T, log []byte) {
		s := newStoreMust(t)
		if err := s.ApplyLogTo(log, 1, nil, func(TopicEntry) {}); err != nil && !errors.Is(err, ErrBadLog) {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Messages < 0 || st.Bytes < 0 || st.IDs < 0 {
			t.Fatalf("stats %+v", st)
		}
		s.Sweep(2, func(int64) bool { return false })
	})
}

// TestApplyLogFrames: frame records go to the caller, in order with the
// histories' records, and change no history.
func TestApplyLogFrames(t *testing.T) {
	s := newStoreMust(t)
	log := AppendFrame(AppendEntry(AppendOpen(nil, 1, 7), 1, 7, 1, 1, "", []byte("hi")), 1<<63, 9, 3)
	log = AppendFrame(log, 2, 10, 0)
	var got [][3]uint64
	if err := s.ApplyLog(log, 1, func(sender, n, sends uint64) { got = append(got, [3]uint64{sender, n, sends}) }); err != nil {
		t.Fatal(err)
	}
	if want := [][3]uint64{{1 << 63, 9, 3}, {2, 10, 0}}; !slices.Equal(got, want) {
		t.Errorf("frames %v, want %v", got, want)
	}
	if st := s.Stats(); st.Messages != 1 || st.IDs != 1 {
		t.Errorf("stats %+v: want the one message of id 1", st)
	}
}

// TestApplyLogTopics: topic records go to the caller with their own copy
// of the message, in order, and change no id's history; ApplyLog skips
// them; a cut or zero position is malformed.
func TestApplyLogTopics(t *testing.T) {
	s := newStoreMust(t)
	log := AppendTopicEntry(AppendEntry(AppendOpen(nil, 1, 7), 1, 7, 1, 1, "room", []byte("hi")), "room", 5, 1, 2, []byte("hi"))
	log = AppendTopicEntry(log, "news", 5, 9, 3, nil)
	var got []TopicEntry
	if err := s.ApplyLogTo(log, 1, nil, func(e TopicEntry) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Topic != "room" || got[0].Epoch != 5 || got[0].Seq != 1 || got[0].At != 2 || string(got[0].Msg) != "hi" || got[1].Topic != "news" || got[1].Seq != 9 {
		t.Fatalf("topic entries %+v", got)
	}
	log[len(log)-3] = 'x' // the message's bytes are copies
	if string(got[0].Msg) != "hi" {
		t.Fatal("the topic entry aliases the log")
	}
	if err := newStoreMust(t).ApplyLog(log, 1, nil); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 1 || st.IDs != 1 {
		t.Errorf("stats %+v: want the one message of id 1", st)
	}
	for _, bad := range [][]byte{AppendTopicEntry(nil, "a", 0, 1, 1, nil), AppendTopicEntry(nil, "a", 1, 0, 1, nil), AppendTopicEntry(nil, "a", 1, 1, 1, []byte("xy"))[:8]} {
		if err := s.ApplyLogTo(bad, 1, nil, func(TopicEntry) {}); !errors.Is(err, ErrBadLog) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}
