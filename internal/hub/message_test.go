package hub

import (
	"fmt"
	"testing"

	"github.com/cometgw/comet/internal/cursor"
)

// TestEncodedBodyKeptAcrossPositions: a topic's publish comes as the
// same message at one position per member; an encoding made from the
// body alone is made once for all of them, one that reads the position
// again for each, and another message (or the same bytes elsewhere, or
// another event, or the next round) is encoded anew.
func TestEncodedBodyKeptAcrossPositions(t *testing.T) {
	bySlot := func(kind uint8) Session { sl := new(slot); sl.V.kind = kind; return Session{sl: sl} }
	plain, positioned := bySlot(0), bySlot(1)
	var made []string
	escape := func(dst []byte, m *Message) []byte {
		made = append(made, "body "+string(m.Body))
		return append(dst, m.Body...)
	}
	withPos := func(dst []byte, m *Message) []byte {
		made = append(made, fmt.Sprintf("pos %s %d", m.Body, m.Pos.Seq))
		return fmt.Appendf(dst, "%d:%s", m.Pos.Seq, m.Body)
	}
	var m Message
	body := []byte("hello")
	deliver := func(b []byte, seq uint64, event uint8) string {
		m.reset(b, cursor.Cursor{Epoch: 1, Seq: seq}, event)
		return string(m.EncodedBody(plain, escape)) + "|" + string(m.Encoded(positioned, withPos))
	}
	steps := []struct {
		name   string
		b      []byte
		seq    uint64
		event  uint8
		want   string
		encode []string
	}{
		{"first", body, 1, EventMessage, "hello|1:hello", []string{"body hello", "pos hello 1"}},
		{"same message, next member's position", body, 2, EventMessage, "hello|2:hello", []string{"pos hello 2"}},
		{"same message, same position", body, 2, EventMessage, "hello|2:hello", nil},
		{"equal bytes elsewhere", []byte("hello"), 2, EventMessage, "hello|2:hello", []string{"body hello", "pos hello 2"}},
		{"another message", []byte("world"), 3, EventMessage, "world|3:world", []string{"body world", "pos world 3"}},
	}
	for _, st := range steps {
		made = nil
		if got := deliver(st.b, st.seq, st.event); got != st.want {
			t.Errorf("%s: %q, want %q", st.name, got, st.want)
		}
		if fmt.Sprint(made) != fmt.Sprint(st.encode) {
			t.Errorf("%s: encoded %q, want %q", st.name, made, st.encode)
		}
	}
	same := m.Body
	made = nil
	deliver(same, 3, EventPresence)
	if len(made) != 2 {
		t.Errorf("another event: encoded %q, want both anew", made)
	}
	m.trim() // the round's end: its frames go back to their pool
	made = nil
	deliver(same, 3, EventPresence)
	if len(made) != 2 {
		t.Errorf("after the round: encoded %q, want both anew", made)
	}
}
