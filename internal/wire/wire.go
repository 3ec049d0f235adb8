package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version written in byte 0 of every frame.
const Version = 3

// StatusHeader and StatusNotTaken are the header a request's answer
// carries when nobody took the request: NATS's own "no responders"
// answer (no data, Status 503), which a router that does not lead gives
// too. The sender sends the request again (it was not routed).
const (
	StatusHeader   = "Status"
	StatusNotTaken = "503"
)

// Kind says who sent a frame to whom; it is byte 1 of every frame.
type Kind uint8

// Frame kinds.
const (
	KindUp   Kind = 1 // gateway -> every router: hello, login, logout, heartbeat, bye, resume, login-topics, resume-topics
	KindSend Kind = 2 // sender -> router: send, publish, broadcast
	KindDown Kind = 3 // router -> gateway: deliver, resync, resumed, deliver-at, fanout, fanout-to, broadcast-all
	KindAck  Kind = 4 // router -> sender: the reply to a send frame
	KindDone Kind = 5 // gateway -> the router that sent a down frame: what became of its copies
)

func (k Kind) String() string {
	switch k {
	case KindUp:
		return "up"
	case KindSend:
		return "send"
	case KindDown:
		return "down"
	case KindAck:
		return "ack"
	case KindDone:
		return "done"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Op is a record's operation. Each op belongs to exactly one kind.
type Op uint8

// Record operations.
const (
	OpHello     Op = 1 // up: a gateway instance starts; Count = its live logins
	OpLogin     Op = 2 // up: Conn logs in as ID
	OpLogout    Op = 3 // up: Conn logs out of every id it holds
	OpHeartbeat Op = 4 // up: the gateway is alive; Count = its live logins
	OpBye       Op = 5 // up: the gateway instance stops; forget all its logins
	OpResume    Op = 6 // up: Conn logs in as ID, resuming after cursor (Epoch, Seq)
	// up: Conn logs in as ID and joins Topics (a connection's own topics)
	OpLoginTopics Op = 7
	// up: Conn logs in as ID, joins Topics, and resumes after (Epoch, Seq)
	OpResumeTopics Op = 8
	// up: Conn, logged in as ID, joins Topics too (a WebSocket client's
	// join request); Resumable: its client resumes (its id lingers in
	// the topics when it leaves)
	OpJoin Op = 9
	// up: Conn leaves Topics (a WebSocket client's leave request)
	OpPart Op = 10
	// up: Server is the NATS server the gateway is connected to (sent
	// after each hello and on each reconnection)
	OpServer Op = 11
	// up, just before Conn's login-topics or join record: the client
	// asked for up to Count of each joined topic's kept messages first
	// (rewind)
	OpRewind    Op = 12
	OpSend      Op = 16 // send: deliver Msg to every conn logged in as ID
	OpPublish   Op = 17 // send: deliver Msg to every member of Topic
	OpBroadcast Op = 18 // send: deliver Msg to every connection
	// send, on a route subject only: Msg is another partition's presence
	// event for Topic, for this partition's watchers of it
	OpPresence Op = 19
	// send, first in its frame only: the frame is number Seq of sender
	// Sender (a random 64-bit number the sender picks at start), so a
	// router that took it already answers a copy sent again instead of
	// routing it twice
	OpFrameID   Op = 20
	OpDeliver   Op = 32 // down: write Msg to each of Conns
	OpResync    Op = 33 // down: the router lost track; send every live login again
	OpResumed   Op = 34 // down: the answer to a resume: Conn, Epoch, Seq (first to follow), Head, Missed
	OpDeliverAt Op = 35 // down: write Msg, at position (Epoch, Seq) of its id, to each of Conns
	// down: Msg, for the fanout-to records that follow it in the frame
	OpFanout Op = 36
	// down: write the last fanout's Msg, at position (Epoch, Seq) of the
	// id these conns hold (0: none), to each of Conns
	OpFanoutTo Op = 37
	// down: write Msg to every connection of the gateway
	OpBroadcastAll Op = 38
	// down: end the sessions of Conns (an operator's kick)
	OpKick Op = 39
	// down: Msg, a topic's presence event (JSON, no position), for the
	// fanout-to records that follow it in the frame; the sessions write
	// it as their kind types an event (SSE "event: presence")
	OpFanoutPresence Op = 41
	// down: the router of partition Count lost track; send hello and
	// every live login of that partition (partitioned routers)
	OpResyncPart Op = 42
	OpDone       Op = 40 // done: what became of the copies of down frame Seq (Tally)
	OpAck        Op = 48 // ack: Count sends accepted, Void and Kept sends, what became of the copies (Tally)
	// ack, after the ack record, from a partitioned router to another
	// (SubjectRoute): what became of each publish of the frame, one byte
	// each in order (Msg): PubVoid, PubKept or PubCopies; the ack
	// record's counts then cover the frame's sends only
	OpPubOutcomes Op = 49
	// ack, after the ack record: the frame (sent again, with a frame-id)
	// was routed by a leading router that is gone; Count is its sends,
	// what became of their copies is not known (the positioned ones are
	// in their ids' histories)
	OpRetaken Op = 50
)

func (o Op) kind() Kind {
	switch o {
	case OpHello, OpLogin, OpLogout, OpHeartbeat, OpBye, OpResume, OpLoginTopics, OpResumeTopics, OpJoin, OpPart, OpServer, OpRewind:
		return KindUp
	case OpSend, OpPublish, OpBroadcast, OpPresence, OpFrameID:
		return KindSend
	case OpDeliver, OpResync, OpResumed, OpDeliverAt, OpFanout, OpFanoutTo, OpBroadcastAll, OpKick, OpFanoutPresence, OpResyncPart:
		return KindDown
	case OpDone:
		return KindDone
	case OpAck, OpPubOutcomes, OpRetaken:
		return KindAck
	}
	return 0
}

func (o Op) String() string {
	switch o {
	case OpHello:
		return "hello"
	case OpLogin:
		return "login"
	case OpLogout:
		return "logout"
	case OpHeartbeat:
		return "heartbeat"
	case OpBye:
		return "bye"
	case OpResume:
		return "resume"
	case OpResumed:
		return "resumed"
	case OpDeliverAt:
		return "deliver-at"
	case OpSend:
		return "send"
	case OpDeliver:
		return "deliver"
	case OpResync:
		return "resync"
	case OpDone:
		return "done"
	case OpAck:
		return "ack"
	case OpLoginTopics:
		return "login-topics"
	case OpResumeTopics:
		return "resume-topics"
	case OpJoin:
		return "join"
	case OpPart:
		return "part"
	case OpServer:
		return "server"
	case OpRewind:
		return "rewind"
	case OpPublish:
		return "publish"
	case OpBroadcast:
		return "broadcast"
	case OpPresence:
		return "presence"
	case OpFanout:
		return "fanout"
	case OpFanoutTo:
		return "fanout-to"
	case OpBroadcastAll:
		return "broadcast-all"
	case OpKick:
		return "kick"
	case OpFanoutPresence:
		return "fanout-presence"
	case OpResyncPart:
		return "resync-part"
	case OpPubOutcomes:
		return "publish-outcomes"
	case OpFrameID:
		return "frame-id"
	case OpRetaken:
		return "retaken"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Limits enforced by the decoder (and documented in PROTOCOL.md).
const (
	// MaxMessage is the largest message body, in bytes.
	MaxMessage = 1 << 20
	// MaxGatewayName is the longest gateway name, in bytes.
	MaxGatewayName = 64
	// MaxTopic is the longest topic name, in bytes.
	MaxTopic = 128
	// MaxConnTopics is the most topics one connection joins.
	MaxConnTopics = 64
	// MaxServerName is the longest NATS server name a gateway reports.
	MaxServerName = 256
)

// Errors returned by the decoder. They are wrapped with the offset at which
// decoding stopped.
var (
	ErrShort    = errors.New("wire: frame truncated")
	ErrVersion  = errors.New("wire: unsupported protocol version")
	ErrKind     = errors.New("wire: unknown frame kind")
	ErrOp       = errors.New("wire: op not valid in this frame kind")
	ErrVarint   = errors.New("wire: malformed varint")
	ErrTooLarge = errors.New("wire: field too large")
	ErrName     = errors.New("wire: invalid gateway name")
	ErrTopic    = errors.New("wire: invalid topic")
)

// ValidTopic reports whether s can name a topic: 1 to 128 bytes of ASCII
// letters, digits, '.', '_', '-' and ':'.
func ValidTopic(s []byte) bool {
	if len(s) == 0 || len(s) > MaxTopic {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

// ValidGatewayName reports whether s can name a gateway: 1 to 64 bytes of
// ASCII letters, digits, '-' and '_' (it becomes one NATS subject token).
func ValidGatewayName(s string) bool {
	if len(s) == 0 || len(s) > MaxGatewayName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Header is the decoded start of a frame.
type Header struct {
	Kind Kind
	// Gateway and Instance are set for KindUp and KindDone: the sending
	// gateway's name and the instance number that changes each time it
	// starts.
	Gateway  string
	Instance uint64
	// Seq is set for KindDown: the frame's number in the stream of frames
	// one router sends one gateway (1, 2, 3...), which the gateway's done
	// record names; 0 for a frame that wants no done record.
	Seq uint64
}

// Tally says what became of the copies of messages: in a done record, of
// the copies one down frame carried; in an ack, of the copies of the
// sends of one send frame.
type Tally struct {
	// Delivered copies are queued to a live connection: written to its
	// socket, or in its bounded pending output. In a done record only
	// copies written or queued; the router adds Dup and Late to it in
	// acks.
	Delivered uint64
	// Copies not delivered, by reason: the connection had closed (Gone),
	// was closed as too slow to take them (Slow), or the gateway went
	// away or never confirmed them (Gateway; acks only).
	Gone, Slow, Gateway uint64
	// Done records only: copies for a position the client already had
	// (Dup), and copies the router keeps for the session's next answer
	// (Late): for a long-poll answered in the meantime, or for a
	// resumable session whose resume the router has not answered yet.
	Dup, Late uint64
}

// Dropped is every copy not delivered.
func (t Tally) Dropped() uint64 { return t.Gone + t.Slow + t.Gateway }

// Add adds o to t.
func (t *Tally) Add(o Tally) {
	t.Delivered += o.Delivered
	t.Gone += o.Gone
	t.Slow += o.Slow
	t.Gateway += o.Gateway
	t.Dup += o.Dup
	t.Late += o.Late
}

// Record is one decoded record. Which fields are set depends on Op:
//
//	hello, heartbeat: Count
//	login:            Conn, ID
//	resume:           Conn, ID, Epoch, Seq (Epoch 0: no cursor, start from now)
//	login-topics:     Conn, ID, Topics, Presence
//	resume-topics:    Conn, ID, Epoch, Seq, Topics, Presence
//	publish:          Topic, Msg
//	broadcast:        Msg
//	fanout:           Msg
//	fanout-presence:  Msg
//	fanout-to:        Epoch, Seq, Conns
//	broadcast-all:    Msg
//	kick:             Conns
//	logout:           Conn
//	server:           Server
//	send:             ID, Msg
//	deliver:          Msg, Conns
//	deliver-at:       Epoch, Seq, Msg, Conns
//	resumed:          Conn, Epoch, Seq, Head, Missed
//	done:             Seq (the down frame's), Tally (Delivered, Gone, Slow, Dup, Late)
//	ack:              Count (sends accepted), Void, Kept, Tally (Delivered, Gone, Slow, Gateway); Retaken (ParseAck)
//	frame-id:         Sender, Seq
type Record struct {
	Op    Op
	Conn  uint64
	ID    int64
	Count uint64
	// Void counts sends to ids nobody holds; Kept, sends to ids nobody
	// holds now whose message is kept for a resuming client.
	Void  uint64
	Kept  uint64
	Tally Tally
	// Epoch and Seq are a position in an id's message sequence; for
	// resumed, Seq is the first position that follows and Head the last
	// one assigned, and Missed says that messages after the client's
	// cursor are no longer kept.
	Epoch  uint64
	Seq    uint64
	Head   uint64
	Missed bool
	// Msg aliases the frame being decoded; copy it to keep it.
	Msg []byte
	// Conns is reused between calls to Decoder.Next; copy it to keep it.
	Conns []uint64
	// Topic (publish) aliases the frame; Topics (login-topics,
	// resume-topics) too, and is reused between calls to Next. Every
	// topic decoded is valid (ValidTopic).
	Topic  []byte
	Topics [][]byte
	// Presence (login-topics, resume-topics): the conn wants its topics'
	// join and leave events.
	Presence bool
	// Resumable: a join's conn resumes.
	Resumable bool
	// Server (server) aliases the frame.
	Server []byte
	// Sender (frame-id): the sender's number.
	Sender uint64
	// Retaken (ParseAck): a retaken record follows the ack record.
	Retaken bool
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}
