package ws

import (
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
)

// Ops carries out client requests (the gateway). Its methods are called
// with the session's lock held and must not block.
type Ops interface {
	// Do starts r for s. It returns an error (the error reply's text) if
	// r is refused; else async says whether the reply comes later
	// (Socket.Reply, from hub.With) or is "ok" now.
	Do(s hub.Session, r *Request) (async bool, err error)
}

// What a session's kind flags hold: its client's permissions (set at
// open from hub.Request.Perm), whether a ping awaits its pong, whether a
// close frame went out, and the client's requests in flight.
const (
	PermPublish   uint8 = 1 << iota // publish to the topics it is in
	PermSend                        // send to ids
	flagPing                        // a ping awaits its pong
	flagClosing                     // our close frame went out
	inflightShift = 4               // the high 4 bits: requests in flight
)

// MaxInflight is how many requests (publish, send) one client may have
// waiting for the router's answer; past it the gateway stops reading the
// client until one is answered.
const MaxInflight = 8

// Socket is the WebSocket kind. The upgrade has been checked and the
// accept key computed by the gateway (Check, AppendHandshake); Open
// writes the 101 answer.
type Socket struct {
	// MaxMessage bounds a client message (all its fragments); past it
	// the connection closes with 1009. Default 64 KiB.
	MaxMessage int
	// Ping pings a client after this long without a write, and
	// PongWait closes it (1001... ReasonTimeout) if no pong came within
	// that long after. Zero Ping: never.
	Ping, PongWait time.Duration
	// ControlRate is how many cheap frames (pings, pongs, empty data
	// frames) a client may send per second; past it the connection
	// closes with 1008 (hub.ReasonRate). At most 250. Default 50.
	ControlRate int
	// RequestRate is how many messages (requests) a client may send per
	// second; past it the gateway stops reading it until the next second
	// (TCP then slows it; hub.Session.Throttle). Default 100; at most
	// 65535.
	RequestRate int
	// Ops carries out client requests; nil refuses them all.
	Ops Ops
}

func (k Socket) requestRate() int {
	if k.RequestRate <= 0 {
		return 100
	}
	return k.RequestRate
}

// MaxControlRate is the highest ControlRate (hub.Session.Cheap counts to
// 255).
const MaxControlRate = 250

func (k Socket) controlRate() int {
	if k.ControlRate <= 0 {
		return 50
	}
	return min(k.ControlRate, MaxControlRate)
}

// Traits implements hub.Kind: a WebSocket resumes, and reads its client.
func (Socket) Traits() hub.Traits { return hub.Traits{Name: "ws", Resumable: true, Reads: true} }

func (k Socket) maxMessage() int {
	if k.MaxMessage <= 0 {
		return 64 << 10
	}
	return k.MaxMessage
}

// Open writes the 101 answer (the head lines the gateway made).
func (Socket) Open(s hub.Session, r *hub.Request) {
	var buf [256]byte
	s.Write(AppendHandshake(buf[:0], r.Head))
}

// encode makes a message's frame: its position, a newline, the message;
// a text frame if the message is UTF-8, else a binary one.
func encode(dst []byte, m *hub.Message) []byte { return appendMessage(dst, m.Pos, m.Body) }

// Deliver writes the message's frame; its position is the session's
// cursor (a message without one, a broadcast, carries the cursor the
// client has). An event that is not a message is a JSON frame like the
// replies, typed: the router's presence event with "type":"presence"
// first, {"type":"presence","presence":"lobby","ids":2,...}.
func (Socket) Deliver(s hub.Session, m *hub.Message) bool {
	if m.Pos.Epoch != 0 {
		return s.Write(m.Encoded(s, encode))
	}
	b := s.Scratch()
	if name := hub.EventName(m.Event); name != "" && len(m.Body) > 1 && m.Body[0] == '{' {
		*b = appendEvent((*b)[:0], name, m.Body)
		return s.Write(*b)
	}
	*b = appendMessage((*b)[:0], s.Cursor(), m.Body)
	return s.Write(*b)
}

// appendEvent appends a text frame of the JSON object obj with
// "type":name put first.
func appendEvent(b []byte, name string, obj []byte) []byte {
	const pre, mid = `{"type":"`, `",`
	b = AppendHeader(b, OpText, len(pre)+len(name)+len(mid)+len(obj)-1)
	return append(append(append(append(b, pre...), name...), mid...), obj[1:]...)
}

// Resumed tells the client where it continues and whether messages were
// missed: {"type":"resumed","cursor":"ab-3","missed":false}.
func (Socket) Resumed(s hub.Session) {
	var b [128]byte
	j := append(b[:0], `{"type":"resumed","cursor":"`...)
	j = s.Cursor().Append(j)
	if s.Missed() {
		j = append(j, `","missed":true}`...)
	} else {
		j = append(j, `","missed":false}`...)
	}
	var f [160]byte
	s.Write(AppendFrame(f[:0], OpText, j))
}

// Tick pings a quiet client, and closes one whose pong is overdue.
func (k Socket) Tick(s hub.Session, now int64) {
	if k.Ping <= 0 || !s.Idle() {
		return
	}
	f := s.Flags()
	if f&flagPing != 0 {
		if now-s.Deadline() > int64(k.PongWait) {
			s.Close(hub.ReasonTimeout)
		}
		return
	}
	if now-s.Deadline() >= int64(k.Ping) {
		s.SetFlags(f | flagPing)
		s.Write(pingFrame)
	}
}

var pingFrame = AppendFrame(nil, OpPing, nil)

// Written implements hub.Kind.
func (Socket) Written(hub.Session) {}

// Shutdown writes a close frame saying why the gateway ends the session:
// 1001 when it shuts down, 1008 when the client's token expired or an
// operator kicked it.
func (Socket) Shutdown(s hub.Session) {
	s.Flush()
	if !s.IsOpen() || !s.Idle() {
		return
	}
	var b [64]byte
	switch s.EndReason() {
	case hub.ReasonExpired:
		s.Write(AppendClose(b[:0], ClosePolicy, "token expired"))
	case hub.ReasonKicked:
		s.Write(AppendClose(b[:0], ClosePolicy, "kicked"))
	case hub.ReasonStalled:
		s.Write(AppendClose(b[:0], ClosePolicy, "message incomplete for too long"))
	case hub.ReasonInputBudget:
		s.Write(AppendClose(b[:0], CloseTooBig, "gateway input budget spent"))
	case hub.ReasonDrained:
		// The drain spreads the closes; the hint spreads the
		// reconnects a little more (to another process, or this one
		// restarted).
		s.Write(AppendClose(b[:0], CloseRestart, "gateway restarting: reconnect in "+strconv.Itoa(100+rand.IntN(900))+" ms"))
	default:
		s.Write(AppendClose(b[:0], CloseGoingAway, "gateway shutting down"))
	}
}

// Input reads the client's frames: control frames are answered, data
// frames assembled into messages, and each message is a request. Pings
// are answered once per call, the last one's payload (RFC 6455 5.5.3:
// only the most recent ping needs its pong); cheap frames past the
// control rate close the connection.
func (k Socket) Input(s hub.Session, p []byte) int {
	used := 0
	var pong []byte
	ponging := false
	answer := func() {
		if ponging && s.IsOpen() {
			b := s.OutBuf()
			*b = AppendFrame((*b)[:0], OpPong, pong)
			s.Write(*b)
		}
		ponging = false
	}
	defer answer()
	for s.IsOpen() {
		if inflight(s) >= MaxInflight {
			s.PauseInput()
			return used
		}
		if s.Paused() { // throttled: the rest waits for the next second
			return used
		}
		f, n, err := ParseFrame(p[used:], k.maxMessage())
		if err != nil {
			answer()
			fail(s, err)
			return used
		}
		if n == 0 {
			return used
		}
		used += n
		if (f.Op >= OpClose || len(f.Payload) == 0) && s.Cheap() > k.controlRate() {
			answer()
			failFor(s, &Error{Code: ClosePolicy, Reason: "too many control or empty frames"}, hub.ReasonRate)
			return used
		}
		switch f.Op {
		case OpPing:
			pong, ponging = f.Payload, true
		case OpPong:
			s.SetFlags(s.Flags() &^ flagPing)
		case OpClose:
			answer()
			code, err := ParseClose(f.Payload)
			if err != nil {
				fail(s, err)
				return used
			}
			if s.Flags()&flagClosing == 0 {
				if code == CloseNoStatus {
					code = CloseNormal
				}
				var b [8]byte
				s.Write(AppendClose(b[:0], code, ""))
			}
			s.Flush() // output a writer gathered goes first
			s.Close(hub.ReasonPeer)
			return used
		default:
			if ponging && f.Fin {
				answer() // before the reply to a request that came after it
			}
			k.data(s, f)
		}
	}
	return used
}

// data takes a data frame: a whole message is handled at once, a
// fragment is kept until the message's last one.
func (k Socket) data(s hub.Session, f Frame) {
	asm, op := s.Assembly()
	switch {
	case f.Op == OpContinuation && *op == 0:
		fail(s, protoErr("continuation frame outside a fragmented message"))
		return
	case f.Op != OpContinuation && *op != 0:
		fail(s, protoErr("new message inside a fragmented message"))
		return
	case f.Op != OpContinuation && f.Fin:
		k.message(s, f.Op, f.Payload)
		return
	case f.Op != OpContinuation:
		*op = f.Op
	}
	if len(*asm)+len(f.Payload) > k.maxMessage() {
		fail(s, &Error{Code: CloseTooBig, Reason: "message too big"})
		return
	}
	*asm = append(*asm, f.Payload...)
	if f.Fin {
		o := *op
		msg := *asm
		*asm, *op = (*asm)[:0], 0
		k.message(s, o, msg)
	}
}

// message handles one whole client message: a request. Past the
// request rate the client is throttled after it.
func (k Socket) message(s hub.Session, op byte, msg []byte) {
	if s.Request() > k.requestRate() {
		s.Throttle()
	}
	if op == OpBinary {
		fail(s, &Error{Code: CloseUnsupported, Reason: "binary messages are not requests: send JSON text"})
		return
	}
	if !utf8.Valid(msg) {
		fail(s, &Error{Code: CloseInvalidData, Reason: "text message is not UTF-8"})
		return
	}
	r, err := ParseRequest(msg)
	b := s.OutBuf()
	if err != nil {
		var ref uint64
		var name string
		if r != nil {
			ref, name = r.Ref, r.Op
		}
		s.Write(AppendError((*b)[:0], ref, name, err.Error()))
		return
	}
	if r.Op == "ping" {
		s.Write(AppendReply((*b)[:0], &Reply{Ref: r.Ref, Op: r.Op}))
		return
	}
	if k.Ops == nil {
		s.Write(AppendError((*b)[:0], r.Ref, r.Op, "this gateway takes no requests"))
		return
	}
	async, err := k.Ops.Do(s, r)
	switch {
	case err != nil:
		s.Write(AppendError((*b)[:0], r.Ref, r.Op, err.Error()))
	case async:
		s.SetFlags(s.Flags() + 1<<inflightShift)
	default:
		s.Write(AppendReply((*b)[:0], &Reply{Ref: r.Ref, Op: r.Op}))
	}
}

func inflight(s hub.Session) int { return int(s.Flags() >> inflightShift) }

// Answer writes the reply frame f (AppendReply, AppendError) to a request
// that was in flight, and reads the client again if it waited for room.
// Called from hub.With.
func Answer(s hub.Session, f []byte) {
	if fl := s.Flags(); fl>>inflightShift > 0 {
		s.SetFlags(fl - 1<<inflightShift)
	}
	if s.Write(f) {
		s.ResumeInput()
	}
}

// fail closes the session for a breach of the protocol, with its close
// code and reason.
func fail(s hub.Session, e *Error) { failFor(s, e, hub.ReasonProtocol) }

// failFor is fail counted as why.
func failFor(s hub.Session, e *Error, why hub.Reason) {
	var b [160]byte
	s.Write(AppendClose(b[:0], e.Code, e.Reason))
	s.Flush() // output a writer gathered goes first
	s.Close(why)
}

// appendMessage appends a message frame: pos (empty if zero), a newline,
// body.
func appendMessage(b []byte, pos cursor.Cursor, body []byte) []byte {
	var c [48]byte
	cur := pos.Append(c[:0])
	op := OpText
	if !utf8.Valid(body) {
		op = OpBinary
	}
	b = AppendHeader(b, op, len(cur)+1+len(body))
	b = append(append(b, cur...), '\n')
	return append(b, body...)
}
