package sse

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/hub"
)

// Stream is the EventSource kind: the response head and a retry: field,
// then an event per message, each with its position as its id, a missed
// event when the router says messages are gone, and comment heartbeats.
type Stream struct {
	// Retry is the reconnection delay the client is told to use.
	Retry time.Duration
	// Heartbeat writes a comment after this long without a write, so
	// that proxies keep the stream. Zero: none.
	Heartbeat time.Duration
	// CORS is the CORS header lines of the response head, each ended by
	// CR LF (gateway.Config.AllowOrigin); empty: none.
	CORS string
}

// Traits implements hub.Kind: SSE sessions resume.
func (Stream) Traits() hub.Traits { return hub.Traits{Name: "sse", Resumable: true} }

// Open writes the response head and the retry: field.
func (k Stream) Open(s hub.Session, r *hub.Request) {
	var buf [512]byte
	var w [32]byte
	retry := appendRetry(w[:0], k.Retry.Milliseconds())
	head := buf[:0]
	if r.HTTP10 {
		s.SetFlags(chunked.FlagHTTP10)
		head = append(AppendHead(head, k.CORS, true), retry...)
	} else {
		head = chunked.AppendChunk(AppendHead(head, k.CORS, false), retry)
	}
	s.Write(head)
}

// positioned encodes a message that has a position: its event is the same
// for every stream it goes to.
func positioned(dst []byte, m *hub.Message) []byte {
	var id [48]byte
	return AppendEvent(dst, m.Pos.Append(id[:0]), m.Body)
}

// Deliver writes the message's event; its id is the stream's cursor. An
// event that is not a message has its type: "event: presence".
func (Stream) Deliver(s hub.Session, m *hub.Message) bool {
	if m.Pos.Epoch != 0 {
		return chunked.Frame(s, m.Encoded(s, positioned))
	}
	var id [48]byte
	b := (*s.Scratch())[:0]
	if name := hub.EventName(m.Event); name != "" {
		b = append(append(append(b, "event: "...), name...), '\n')
	}
	b = AppendEvent(b, s.Cursor().Append(id[:0]), m.Body)
	*s.Scratch() = b
	return chunked.Frame(s, b)
}

// Resumed sets the client's Last-Event-ID to where it continues, and
// says so if messages were missed.
func (Stream) Resumed(s hub.Session) {
	var b [160]byte
	ev := b[:0]
	var idb [48]byte
	id := s.Cursor().Append(idb[:0])
	if s.Missed() {
		ev = append(ev, "event: missed\n"...)
		ev = AppendEvent(ev, id, append(append([]byte(`{"missed":true,"cursor":"`), id...), `"}`...))
	} else {
		ev = append(append(append(ev, "id: "...), id...), "\n\n"...)
	}
	chunked.Frame(s, ev)
}

var (
	heartbeatChunk = chunked.AppendChunk(nil, []byte(": \n\n"))
	heartbeatBare  = []byte(": \n\n")
)

// Tick writes the comment heartbeat.
func (k Stream) Tick(s hub.Session, now int64) {
	if s.Flags()&chunked.FlagHTTP10 != 0 {
		s.Heartbeat(heartbeatBare, k.Heartbeat, now)
	} else {
		s.Heartbeat(heartbeatChunk, k.Heartbeat, now)
	}
}

// Written implements hub.Kind.
func (Stream) Written(hub.Session) {}

// Shutdown ends the stream with the terminating chunk. A stream ended in
// a drain is first told a retry: between Retry and three times it, at
// random, so EventSource clients come back spread, not in one second.
func (k Stream) Shutdown(s hub.Session) {
	if s.EndReason() == hub.ReasonDrained {
		s.Flush()
		if s.IsOpen() && s.Idle() {
			ms := k.Retry.Milliseconds()
			var w [32]byte
			retry := appendRetry(w[:0], ms+rand.Int64N(2*ms+1))
			if s.Flags()&chunked.FlagHTTP10 == 0 {
				retry = chunked.AppendChunk(nil, retry)
			}
			s.Write(retry)
		}
	}
	chunked.End(s)
}

// appendRetry appends the event that sets an EventSource's reconnection
// delay to ms milliseconds.
func appendRetry(b []byte, ms int64) []byte {
	return append(strconv.AppendInt(append(b, "retry: "...), ms, 10), '\n', '\n')
}
