package sse

import (
	"strings"
	"testing"
)

// parseEvent reads one event the way the EventSource spec's parser does
// (lines end with CR LF, CR or LF; "data:" values joined with LF; one
// space after the colon dropped) and returns its id and data.
func parseEvent(t *testing.T, ev string) (id, data string) {
	t.Helper()
	if !strings.HasSuffix(ev, "\n\n") {
		t.Fatalf("event %q does not end with a blank line", ev)
	}
	body := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(ev[:len(ev)-2])
	var datas []string
	for _, l := range strings.Split(body, "\n") {
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			datas = append(datas, value)
		default:
			t.Fatalf("event %q has line %q", ev, l)
		}
	}
	return id, strings.Join(datas, "\n")
}

func TestEvent(t *testing.T) {
	for _, tt := range []struct{ msg, want string }{
		{"", ""},
		{"hi", "hi"},
		{"a\nb", "a\nb"},
		{"a\r\nb\rc\n", "a\nb\nc\n"},
		{"\n\n", "\n\n"},
		{"data: x", "data: x"},
		{" lead", " lead"},
	} {
		ev := string(AppendEvent(nil, []byte("ab-3"), []byte(tt.msg)))
		id, data := parseEvent(t, ev)
		if id != "ab-3" || data != tt.want {
			t.Errorf("%q -> %q -> id %q data %q, want %q", tt.msg, ev, id, data, tt.want)
		}
	}
}

// FuzzEvent: whatever the message, the event parses back to it (line
// ends normalized to LF, as EventSource does) and never ends early.
func FuzzEvent(f *testing.F) {
	for _, s := range []string{"", "x", "a\r\nb", "\r\r\n\n", "id: 5\n\ndata: evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		ev := string(AppendEvent(nil, []byte("1-1"), []byte(msg)))
		if i := strings.Index(ev, "\n\n"); i != len(ev)-2 {
			t.Fatalf("%q: blank line inside the event %q", msg, ev)
		}
		id, data := parseEvent(t, ev)
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(msg)
		if id != "1-1" || data != want {
			t.Fatalf("%q -> %q -> %q", msg, ev, data)
		}
	})
}
