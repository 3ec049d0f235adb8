package hub

import (
	"time"

	"github.com/cometgw/comet/internal/cursor"
)

// Kind is one kind of client session: what it writes, and what it does
// with deliveries, resume answers, time and shutdown. The hub does the
// rest (the socket, the table, pending output, the router's logins). A
// Kind's methods are called with the session's lock held; they must not
// block, and they act on the session only through s.
type Kind interface {
	// Traits says how the hub treats sessions of this kind. It is read
	// once, when the hub starts.
	Traits() Traits
	// Open writes the session's response head; r is the request that
	// opened it. The router has been told of the session.
	Open(s Session, r *Request)
	// Deliver writes, or gathers, message m and reports whether the
	// session took it. For a resumable kind the hub has already moved
	// the session's cursor to m's position (and dropped a position the
	// session had).
	Deliver(s Session, m *Message) bool
	// Resumed is called when the router answered the session's resume
	// (resumable kinds): s.Cursor() is where the client continues,
	// s.Head() the last position of the catch-up that follows, and
	// s.Missed() says messages after the client's cursor are gone.
	Resumed(s Session)
	// Tick is called about every 250 ms for a session that has no stuck
	// output (heartbeats, deadlines); now is in unix nanoseconds.
	Tick(s Session, now int64)
	// Written is called when all of the session's pending output has
	// been written.
	Written(s Session)
	// Shutdown is called when the hub closes: the session writes its
	// last bytes. The hub then closes it (unless Shutdown did).
	Shutdown(s Session)
}

// Traits says how the hub treats the sessions of a kind.
type Traits struct {
	// Name names the kind in stats and metrics ("html", "sse", "poll").
	Name string
	// Resumable sessions log in with a resume (Listener.Resume), keep a
	// cursor that deliveries with a position move on, and drop a
	// position they already have.
	Resumable bool
	// KeepsInput: what the client sends is left in the socket for
	// whoever reads the connection next (a long-poll's next request).
	// Otherwise it is read and dropped, and more than 64 KiB of it
	// closes the session (ReasonProtocol).
	KeepsInput bool
	// Reads: the kind reads what its clients send (it implements
	// Reader): the hub hands it every byte, in order.
	Reads bool
}

// Reader is a kind that reads its clients' input (Traits.Reads).
type Reader interface {
	// Input hands the kind what the client sent and has not been used:
	// input held from before, then what was just read. It returns how
	// much it used; the hub holds the rest, at most MaxHeldInput bytes
	// (past it the session closes, ReasonProtocol), and hands it again
	// with more. After Session.PauseInput the hub reads nothing more
	// until Session.ResumeInput.
	Input(s Session, p []byte) int
}

// MaxHeldInput bounds the input the hub holds for a reading session that
// has not used it (a frame not yet whole): a kind that reads messages of
// at most M bytes has them whole within M plus its framing.
const MaxHeldInput = 1<<20 + 64

// MaxKinds is the most kinds one hub serves.
const MaxKinds = 8

// Request is what the gateway read of the request that opens a session.
type Request struct {
	// Kind is the session's kind: its index in the kinds the hub was
	// made with.
	Kind int
	// ID is the id the session logs in as.
	ID int64
	// Cursor is where a resumable session starts: after this position
	// (zero: from now on).
	Cursor cursor.Cursor
	// HTTP10: the client speaks HTTP/1.0 (no chunked framing).
	HTTP10 bool
	// KeepAlive: the client may send another request on the connection.
	KeepAlive bool
	// Wait is how long a request-answer session (a long-poll) waits for
	// something to answer.
	Wait time.Duration
	// Expires ends the session at this time (the client's token
	// expires): its kind's Shutdown writes its last bytes and it closes
	// with ReasonExpired. Zero: never.
	Expires time.Time
	// Topics are the topics the session joins, and Presence whether it
	// wants their join and leave events (the hub passes them to its
	// Listener and keeps nothing of them).
	Topics   []string
	Presence bool
	// Rewind asks, with Topics, for up to that many of each topic's kept
	// messages before the live ones (?rewind=); ignored for a session
	// that resumes from a cursor (it continues where it was).
	Rewind int
	// Allowed are the topics the client may join later (its token's
	// claim); nil: any. Passed to the Listener with Topics.
	Allowed []string
	// Input is what the client sent after its request that the HTTP
	// server had already read: a reading kind gets it first.
	Input []byte
	// Head holds response head lines the kind writes (each ended by CR
	// LF): a WebSocket's Sec-WebSocket-Accept and -Protocol.
	Head string
	// Perm is the kind's own byte of what the client may do (a
	// WebSocket client's permissions), kept as the session's kind flags.
	Perm uint8
	// Peer is the connection's count in the gateway's per-address
	// limits (Config.Release takes it back when the socket closes); 0:
	// none.
	Peer uint32
}

// Message is one delivery as the kinds see it: the message and its
// position in its id's sequence (zero if it has none). Encoded keeps one
// encoding per kind, so a message going to many sessions is encoded once.
type Message struct {
	Body []byte
	Pos  cursor.Cursor
	// Event is EventMessage, or the type of an event that is not a
	// message sent to the client (EventPresence): it has no position.
	Event uint8
	enc   [MaxKinds][]byte
	have  uint8 // bit i: enc[i] holds this message's encoding for kind i
	body  uint8 // bit i: ... and it was made from Body and Event alone (EncodedBody)
}

// reset makes m the next message to deliver. The same message at
// another position (a topic's publish: one position per member's id)
// keeps the encodings made from its body alone: escaped once per
// publish, not once per member.
func (m *Message) reset(body []byte, pos cursor.Cursor, event uint8) {
	if event == m.Event && sameBytes(body, m.Body) {
		if pos != m.Pos {
			m.Pos, m.have = pos, m.have&m.body
		}
		return
	}
	m.Body, m.Pos, m.Event, m.have, m.body = body, pos, event, 0, 0
}

// sameBytes reports whether a and b are the same bytes in memory (the
// same record of one frame), not merely equal ones; nil never is.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// Types of Message.Event.
const (
	// EventMessage is a message: sent to an id, published to a topic,
	// broadcast.
	EventMessage uint8 = iota
	// EventPresence is a topic's join and leave event (?presence=1), the
	// router's JSON: {"presence":"lobby","ids":3,"joined":[7],"left":[]}.
	EventPresence
)

// EventName is the name of event type ev ("" for EventMessage).
func EventName(ev uint8) string {
	if ev == EventPresence {
		return "presence"
	}
	return ""
}

// trim drops encodings that grew past their usual size.
func (m *Message) trim() {
	m.Body, m.have, m.body = nil, 0, 0
	for i := range m.enc {
		if cap(m.enc[i]) > 256<<10 {
			m.enc[i] = nil
		}
	}
}

// Encoded returns m as encode makes it for s's kind: made once per
// message and kind, valid until the Kind method returns.
func (m *Message) Encoded(s Session, encode func(dst []byte, m *Message) []byte) []byte {
	return m.encoded(s.sl.V.kind, encode, false)
}

// EncodedBody is Encoded for an encode that reads only m.Body and
// m.Event, never m.Pos: its encoding also serves the same message at
// other positions (a topic's members).
func (m *Message) EncodedBody(s Session, encode func(dst []byte, m *Message) []byte) []byte {
	return m.encoded(s.sl.V.kind, encode, true)
}

// encoded returns kind k's encoding of m, made now if it has none;
// bodyOnly says whether it survives a reset to another position.
func (m *Message) encoded(k uint8, encode func(dst []byte, m *Message) []byte, bodyOnly bool) []byte {
	if m.have&(1<<k) == 0 {
		m.enc[k] = encode(m.enc[k][:0], m)
		m.have |= 1 << k
		m.body &^= 1 << k
		if bodyOnly {
			m.body |= 1 << k
		}
	}
	return m.enc[k]
}

// Listener hears about sessions logging in and out (the gateway's link to
// the router). Every call is made with the session's lock held, so that,
// for one conn, they are ordered with Hub.Snapshot; they must not block.
// Joins is what a session joins: its topics, and whether it wants their
// presence events.
type Joins struct {
	Topics   []string
	Presence bool
	// Rewind: up to that many of each topic's kept messages first (at
	// Opened only: not kept for a resync).
	Rewind int
	// Allowed are the topics the session's client may join later (a
	// WebSocket's join request): nil any (Request.Allowed).
	Allowed []string
}

type Listener interface {
	// Opened: a session of a kind that is not resumable logs in as id
	// and joins topics (Request.Topics and Presence; the listener may
	// keep the slice).
	Opened(conn uint64, id int64, j Joins)
	// Resume: a resumable session logs in as id, joins topics, and wants
	// every kept message after cur (zero: from now on).
	Resume(conn uint64, id int64, cur cursor.Cursor, j Joins)
	// Closed: the session, logged in as id, logs out (closed, or its
	// request answered).
	Closed(conn uint64, id int64)
}
