package longpoll

import (
	"encoding/json"
	"testing"

	"github.com/cometgw/comet/internal/cursor"
)

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
	msgs := AppendMessage(nil, 3, "", AppendJSONString(nil, []byte("a")))
	msgs = append(msgs, ',')
	msgs = AppendMessage(msgs, 4, "", AppendJSONString(nil, []byte("b\n")))
	var got Answer
	b := AppendAnswer(nil, -9, cursor.Cursor{Epoch: 0x1f, Seq: 4}, msgs, true)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.ID != -9 || got.Cursor != "1f-4" || !got.Missed || len(got.Messages) != 2 ||
		got.Messages[0].Seq != 3 || got.Messages[1].Data != "b\n" {
		t.Fatalf("answer %s decodes to %+v", b, got)
	}
}
