package chunked

import (
	"time"

	"github.com/cometgw/comet/internal/hub"
)

// FlagHTTP10, in a session's kind flags, marks an HTTP/1.0 client: no
// chunk framing, the body ends when the connection closes. The kinds that
// stream over chunked bodies (Stream, sse.Stream) set it when they open.
const FlagHTTP10 uint8 = 1

// Frame writes body to s as one chunk (bare for an HTTP/1.0 client) and
// reports whether s is still open. body must not be in s.OutBuf().
func Frame(s hub.Session, body []byte) bool {
	if s.Flags()&FlagHTTP10 != 0 {
		return s.Write(body)
	}
	b := s.OutBuf()
	*b = AppendChunk((*b)[:0], body)
	return s.Write(*b)
}

// End writes what a chunked stream's session has pending and the
// terminating chunk, at shutdown: the client sees the stream end cleanly.
func End(s hub.Session) {
	s.Flush()
	if s.IsOpen() && s.Idle() && s.Flags()&FlagHTTP10 == 0 {
		s.Write([]byte(LastChunk))
	}
}

var (
	heartbeatChunk = AppendChunk(nil, []byte("\n"))
	heartbeatBare  = []byte("\n")
)

// Stream is the /test/{id} kind: the response head and a welcome chunk,
// then a chunk per message, numbered per connection.
type Stream struct {
	// Heartbeat writes a chunk holding one newline (invisible in HTML)
	// after this long without a write. Zero: none.
	Heartbeat time.Duration
}

// Traits implements hub.Kind.
func (Stream) Traits() hub.Traits { return hub.Traits{Name: "html"} }

// Open writes the response head and the welcome chunk.
func (Stream) Open(s hub.Session, r *hub.Request) {
	var buf [320]byte
	head := buf[:0]
	if r.HTTP10 {
		s.SetFlags(FlagHTTP10)
		head = AppendWelcome(append(head, StreamHeader10...), r.ID)
	} else {
		var w [64]byte
		head = AppendChunk(append(head, StreamHeader...), AppendWelcome(w[:0], r.ID))
	}
	s.Write(head)
}

func escape(dst []byte, m *hub.Message) []byte { return AppendHTMLEscaped(dst, m.Body) }

// Deliver writes "Recvd msg #N: 'MSG'<br/>", the message HTML-escaped
// once for every stream it goes to.
func (Stream) Deliver(s hub.Session, m *hub.Message) bool {
	esc := m.EncodedBody(s, escape)
	b := s.Scratch()
	*b = AppendHTMLMessage((*b)[:0], s.Next(), esc)
	return Frame(s, *b)
}

// Resumed implements hub.Kind; a chunked stream does not resume.
func (Stream) Resumed(hub.Session) {}

// Tick writes the heartbeat.
func (k Stream) Tick(s hub.Session, now int64) {
	if s.Flags()&FlagHTTP10 != 0 {
		s.Heartbeat(heartbeatBare, k.Heartbeat, now)
	} else {
		s.Heartbeat(heartbeatChunk, k.Heartbeat, now)
	}
}

// Written implements hub.Kind.
func (Stream) Written(hub.Session) {}

// Shutdown ends the stream with the terminating chunk.
func (Stream) Shutdown(s hub.Session) { End(s) }
