package longpoll

import (
	"strconv"
	"unicode/utf8"

	"github.com/cometgw/comet/internal/cursor"
)

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Bytes that are not valid
// UTF-8 become U+FFFD (as encoding/json does); <, > and & are escaped so
// that the text is safe inside HTML too.
func AppendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[last:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[last:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xf])
			}
			i += size
			last = i
			continue
		}
		i += size
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

// AppendMessage appends one element of the answer's "messages" array,
// {"seq":N,"data":"..."}, where data is the message already encoded by
// AppendJSONString; an event that is not a message (seq 0) has its type,
// {"seq":0,"event":"presence","data":"..."}.
func AppendMessage(b []byte, seq uint64, event string, data []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if event != "" {
		b = append(append(append(b, `,"event":"`...), event...), '"')
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// Answer is the JSON body of a long-poll answer, for clients to decode
// (the gateway writes it with AppendAnswer).
type Answer struct {
	ID       int64     `json:"id"`
	Cursor   string    `json:"cursor"`
	Messages []Message `json:"messages"`
	Missed   bool      `json:"missed"`
}

// Message is one element of Answer.Messages.
type Message struct {
	Seq   uint64 `json:"seq"`
	Event string `json:"event,omitempty"` // "presence": a topic's join and leave event
	Data  string `json:"data"`
}

// AppendAnswer appends the JSON body of a long-poll answer,
// {"id":..,"cursor":"..","messages":[..],"missed":..}, where messages is
// a comma-separated run of AppendMessage elements.
func AppendAnswer(b []byte, id int64, cur cursor.Cursor, messages []byte, missed bool) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"cursor":"`...)
	b = cur.Append(b)
	b = append(b, `","messages":[`...)
	b = append(b, messages...)
	b = append(b, `],"missed":`...)
	b = strconv.AppendBool(b, missed)
	return append(b, "}\n"...)
}
