package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Version is the protocol version written in byte 0 of every frame.
const Version = 3

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
	OpServer    Op = 11
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
	case OpHello, OpLogin, OpLogout, OpHeartbeat, OpBye, OpResume, OpLoginTopics, OpResumeTopics, OpJoin, OpPart, OpServer:
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
	// (Dup), and copies for a long-poll answered in the meantime, kept
	// by the router for its next poll (Late).
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

// AppendHeader starts a frame of kind k (KindSend, KindAck). KindUp and
// KindDone have AppendUpHeader, KindDown AppendDownHeader.
func AppendHeader(b []byte, k Kind) []byte {
	return append(b, Version, byte(k))
}

// AppendUpHeader starts a gateway-to-router frame of kind k (KindUp or
// KindDone).
func AppendUpHeader(b []byte, k Kind, gateway string, instance uint64) []byte {
	b = append(b, Version, byte(k))
	b = appendString(b, gateway)
	return binary.AppendUvarint(b, instance)
}

// AppendDownHeader starts a router-to-gateway frame, the seq-th this
// router sends this gateway (0: no done record wanted).
func AppendDownHeader(b []byte, seq uint64) []byte {
	return binary.AppendUvarint(append(b, Version, byte(KindDown)), seq)
}

// AppendHello appends a hello record (a gateway instance starts).
func AppendHello(b []byte, conns uint64) []byte {
	return binary.AppendUvarint(append(b, byte(OpHello)), conns)
}

// AppendServer appends a server record: the gateway is connected to the
// NATS server named name (clipped to MaxServerName bytes).
func AppendServer(b []byte, name string) []byte {
	return appendString(append(b, byte(OpServer)), name[:min(len(name), MaxServerName)])
}

// AppendLogin appends a login record.
func AppendLogin(b []byte, conn uint64, id int64) []byte {
	b = binary.AppendUvarint(append(b, byte(OpLogin)), conn)
	return binary.AppendVarint(b, id)
}

// AppendResume appends a resume record: conn logs in as id and wants every
// kept message after position (epoch, seq); epoch 0 means from now on.
func AppendResume(b []byte, conn uint64, id int64, epoch, seq uint64) []byte {
	b = binary.AppendUvarint(append(b, byte(OpResume)), conn)
	b = binary.AppendVarint(b, id)
	b = binary.AppendUvarint(b, epoch)
	return binary.AppendUvarint(b, seq)
}

// AppendResumed appends the router's answer to a resume: positions from
// seq to head of epoch follow as deliver-at records; missed says that
// messages between the client's cursor and seq are no longer kept.
func AppendResumed(b []byte, conn, epoch, seq, head uint64, missed bool) []byte {
	b = binary.AppendUvarint(append(b, byte(OpResumed)), conn)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, head)
	m := byte(0)
	if missed {
		m = 1
	}
	return append(b, m)
}

// AppendDeliverAt appends a deliver-at record: msg, at position (epoch,
// seq) of its id, to conns.
func AppendDeliverAt(b []byte, epoch, seq uint64, msg []byte, conns []uint64) []byte {
	b = binary.AppendUvarint(append(b, byte(OpDeliverAt)), epoch)
	b = binary.AppendUvarint(b, seq)
	return appendConns(appendBytes(b, msg), conns)
}

// AppendLoginTopics appends a login-topics record: conn logs in as id
// and joins topics (each valid, at most MaxConnTopics); presence: it
// wants the topics' join and leave events.
func AppendLoginTopics(b []byte, conn uint64, id int64, topics []string, presence bool) []byte {
	b = binary.AppendUvarint(append(b, byte(OpLoginTopics)), conn)
	return appendTopics(binary.AppendVarint(b, id), topics, presence)
}

// AppendResumeTopics appends a resume-topics record: a resume (see
// AppendResume) of a conn that joins topics.
func AppendResumeTopics(b []byte, conn uint64, id int64, epoch, seq uint64, topics []string, presence bool) []byte {
	b = binary.AppendUvarint(append(b, byte(OpResumeTopics)), conn)
	b = binary.AppendVarint(b, id)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, seq)
	return appendTopics(b, topics, presence)
}

// AppendJoin appends a join record: conn, logged in as id, joins topics
// too; resumable says its client resumes.
func AppendJoin(b []byte, conn uint64, id int64, resumable bool, topics []string, presence bool) []byte {
	b = binary.AppendUvarint(append(b, byte(OpJoin)), conn)
	b = binary.AppendVarint(b, id)
	r := byte(0)
	if resumable {
		r = 1
	}
	return appendTopics(append(b, r), topics, presence)
}

// AppendPart appends a part record: conn leaves topics (the presence
// flag is unused).
func AppendPart(b []byte, conn uint64, topics []string) []byte {
	return appendTopics(binary.AppendUvarint(append(b, byte(OpPart)), conn), topics, false)
}

// appendTopics appends the count of topics, times 2, plus 1 if presence
// events are wanted, then the topics.
func appendTopics(b []byte, topics []string, presence bool) []byte {
	nf := uint64(len(topics)) << 1
	if presence {
		nf |= 1
	}
	b = binary.AppendUvarint(b, nf)
	for _, t := range topics {
		b = appendString(b, t)
	}
	return b
}

// AppendPublish appends a publish record: msg to every member of topic.
func AppendPublish(b []byte, topic string, msg []byte) []byte {
	return appendBytes(appendString(append(b, byte(OpPublish)), topic), msg)
}

// AppendPresence appends a presence record: msg, a presence event of
// topic from another partition's router.
func AppendPresence(b []byte, topic string, msg []byte) []byte {
	return appendBytes(appendString(append(b, byte(OpPresence)), topic), msg)
}

// AppendWatch appends a watch list (SubjectWatch): version:u8
// partition:uvarint topic:str..., the topics partition has presence
// watchers in.
func AppendWatch(b []byte, partition int, topics []string) []byte {
	b = binary.AppendUvarint(append(b, Version), uint64(partition))
	for _, t := range topics {
		b = appendString(b, t)
	}
	return b
}

// ParseWatch reads a watch list; its topics alias b. A bad version or
// partition, a truncated string or a bad topic name is an error.
func ParseWatch(b []byte, partitions int) (partition int, topics [][]byte, err error) {
	if len(b) == 0 || b[0] != Version {
		return 0, nil, ErrVersion
	}
	p, n := binary.Uvarint(b[1:])
	if n <= 0 || p >= uint64(partitions) {
		return 0, nil, fmt.Errorf("wire: watch list of partition %d of %d", p, partitions)
	}
	for off := 1 + n; off < len(b); {
		l, n := binary.Uvarint(b[off:])
		if n <= 0 || l > uint64(len(b)-off-n) {
			return 0, nil, ErrShort
		}
		t := b[off+n : off+n+int(l) : off+n+int(l)]
		if !ValidTopic(t) {
			return 0, nil, ErrTopic
		}
		topics = append(topics, t)
		off += n + int(l)
	}
	return int(p), topics, nil
}

// AppendBroadcast appends a broadcast record: msg to every connection.
func AppendBroadcast(b []byte, msg []byte) []byte {
	return appendBytes(append(b, byte(OpBroadcast)), msg)
}

// AppendFanout appends a fanout record: msg, written once, for the
// fanout-to records that follow it.
func AppendFanout(b []byte, msg []byte) []byte {
	return appendBytes(append(b, byte(OpFanout)), msg)
}

// AppendFanoutPresence appends a fanout-presence record: msg, a presence
// event, written once, for the fanout-to records that follow it.
func AppendFanoutPresence(b []byte, msg []byte) []byte {
	return appendBytes(append(b, byte(OpFanoutPresence)), msg)
}

// AppendFanoutTo appends a fanout-to record: the last fanout's message,
// at position (epoch, seq) of the id conns hold (0, 0: none), to conns.
func AppendFanoutTo(b []byte, epoch, seq uint64, conns []uint64) []byte {
	b = binary.AppendUvarint(append(b, byte(OpFanoutTo)), epoch)
	return appendConns(binary.AppendUvarint(b, seq), conns)
}

// AppendBroadcastAll appends a broadcast-all record: msg to every
// connection of the gateway.
func AppendBroadcastAll(b []byte, msg []byte) []byte {
	return appendBytes(append(b, byte(OpBroadcastAll)), msg)
}

// AppendKick appends a kick record: end the sessions of conns.
func AppendKick(b []byte, conns []uint64) []byte {
	return appendConns(append(b, byte(OpKick)), conns)
}

// AppendLogout appends a logout record.
func AppendLogout(b []byte, conn uint64) []byte {
	return binary.AppendUvarint(append(b, byte(OpLogout)), conn)
}

// AppendHeartbeat appends a heartbeat record.
func AppendHeartbeat(b []byte, conns uint64) []byte {
	return binary.AppendUvarint(append(b, byte(OpHeartbeat)), conns)
}

// AppendBye appends a bye record.
func AppendBye(b []byte) []byte { return append(b, byte(OpBye)) }

// AppendSend appends a send record.
func AppendSend(b []byte, id int64, msg []byte) []byte {
	b = binary.AppendVarint(append(b, byte(OpSend)), id)
	return appendBytes(b, msg)
}

// AppendDeliver appends a deliver record for msg to conns.
func AppendDeliver(b []byte, msg []byte, conns []uint64) []byte {
	return appendConns(appendBytes(append(b, byte(OpDeliver)), msg), conns)
}

func appendConns(b []byte, conns []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(conns)))
	for _, c := range conns {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

// AppendResync appends a resync record.
func AppendResync(b []byte) []byte { return append(b, byte(OpResync)) }

// AppendResyncPart appends a resync-part record: the router of partition
// part asks for the logins of that partition.
func AppendResyncPart(b []byte, part int) []byte {
	return binary.AppendUvarint(append(b, byte(OpResyncPart)), uint64(part))
}

// AppendDone appends a done record: what became of the copies down frame
// seq carried (t.Gateway is not sent).
func AppendDone(b []byte, seq uint64, t Tally) []byte {
	b = binary.AppendUvarint(append(b, byte(OpDone)), seq)
	for _, v := range [...]uint64{t.Delivered, t.Gone, t.Slow, t.Dup, t.Late} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// AppendAck appends an ack record: accepted sends, of which void went to
// nobody and kept were only kept for resuming clients, and what became of
// the copies (t.Dup and t.Late are not sent: acks count them delivered).
func AppendAck(b []byte, accepted, void, kept uint64, t Tally) []byte {
	b = append(b, byte(OpAck))
	for _, v := range [...]uint64{accepted, void, kept, t.Delivered, t.Gone, t.Slow, t.Gateway} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// What became of one publish in one partition (OpPubOutcomes), from
// least to most: a publish's outcome over every partition is the most
// any partition reports.
const (
	PubVoid   = 0 // no member in this partition
	PubKept   = 1 // no conn, but kept for resuming members
	PubCopies = 2 // copies went to conns
)

// AppendPubOutcomes appends a publish-outcomes record (outcomes: one
// PubVoid, PubKept or PubCopies per publish).
func AppendPubOutcomes(b []byte, outcomes []byte) []byte {
	return appendBytes(append(b, byte(OpPubOutcomes)), outcomes)
}

// ParseRouteAck reads an ack frame and the publish outcomes after its ack
// record, if any (nil: none).
func ParseRouteAck(frame []byte) (Record, []byte, error) {
	rec, err := ParseAck(frame)
	if err != nil {
		return rec, nil, err
	}
	var d Decoder
	d.Reset(frame)
	var r Record
	d.Next(&r)
	if !d.Next(&r) {
		return rec, nil, d.Err()
	}
	if r.Op != OpPubOutcomes {
		return rec, nil, fmt.Errorf("wire: %s record after an ack", r.Op)
	}
	return rec, r.Msg, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// Decoder walks the records of one frame. The zero value is not usable;
// call Reset.
type Decoder struct {
	buf   []byte
	off   int
	kind  Kind
	err   error
	conns []uint64
}

// Reset starts decoding frame and returns its header. The decoder keeps
// frame (without copying) until the next Reset.
func (d *Decoder) Reset(frame []byte) (Header, error) {
	d.buf, d.off, d.err, d.kind = frame, 0, nil, 0
	var h Header
	if len(frame) < 2 {
		return h, d.fail(ErrShort)
	}
	if frame[0] != Version {
		return h, d.fail(fmt.Errorf("%w %d (want %d)", ErrVersion, frame[0], Version))
	}
	h.Kind = Kind(frame[1])
	if h.Kind < KindUp || h.Kind > KindDone {
		return h, d.fail(fmt.Errorf("%w %d", ErrKind, frame[1]))
	}
	d.off = 2
	if h.Kind == KindDown {
		var ok bool
		if h.Seq, ok = d.uvarint(); !ok {
			return h, d.err
		}
	}
	if h.Kind == KindUp || h.Kind == KindDone {
		name, ok := d.bytes(MaxGatewayName)
		if !ok {
			return h, d.err
		}
		if !ValidGatewayName(string(name)) {
			return h, d.fail(fmt.Errorf("%w %q", ErrName, name))
		}
		h.Gateway = string(name)
		if h.Instance, ok = d.uvarint(); !ok {
			return h, d.err
		}
	}
	d.kind = h.Kind
	return h, nil
}

// Next decodes the next record into r. It returns false at the end of the
// frame or on a malformed record; Err tells which.
func (d *Decoder) Next(r *Record) bool {
	if d.err != nil || d.off >= len(d.buf) || d.kind == 0 {
		return false
	}
	op := Op(d.buf[d.off])
	if op.kind() != d.kind {
		d.fail(fmt.Errorf("%w: %s in %s frame", ErrOp, op, d.kind))
		return false
	}
	d.off++
	*r = Record{Op: op, Conns: r.Conns[:0], Topics: r.Topics[:0]}
	var ok bool
	switch op {
	case OpLoginTopics:
		if r.Conn, ok = d.uvarint(); ok {
			if r.ID, ok = d.varint(); ok {
				ok = d.topics(r)
			}
		}
	case OpResumeTopics:
		ok = d.uvarintVarint(&r.Conn, &r.ID) && d.uvarints(&r.Epoch, &r.Seq) && d.topics(r)
	case OpJoin:
		var res uint64
		if ok = d.uvarintVarint(&r.Conn, &r.ID) && d.uvarints(&res) && d.topics(r); ok {
			if res > 1 {
				d.fail(fmt.Errorf("%w: join's resumable field is %d (want 0 or 1)", ErrOp, res))
				return false
			}
			r.Resumable = res == 1
		}
	case OpPart:
		if r.Conn, ok = d.uvarint(); ok {
			ok = d.topics(r)
		}
		if ok && r.Presence {
			d.fail(fmt.Errorf("%w: part's topic count is odd (it has no presence flag)", ErrOp))
			return false
		}
	case OpPublish, OpPresence:
		if r.Topic, ok = d.topic(); ok {
			r.Msg, ok = d.bytes(MaxMessage)
		}
	case OpBroadcast, OpFanout, OpBroadcastAll, OpFanoutPresence:
		r.Msg, ok = d.bytes(MaxMessage)
	case OpFanoutTo:
		ok = d.uvarints(&r.Epoch, &r.Seq) && d.connList(r)
	case OpKick:
		ok = d.connList(r)
	case OpHello, OpHeartbeat, OpResyncPart:
		r.Count, ok = d.uvarint()
	case OpLogin:
		if r.Conn, ok = d.uvarint(); ok {
			r.ID, ok = d.varint()
		}
	case OpResume:
		if r.Conn, ok = d.uvarint(); ok {
			if r.ID, ok = d.varint(); ok {
				if r.Epoch, ok = d.uvarint(); ok {
					r.Seq, ok = d.uvarint()
				}
			}
		}
	case OpResumed:
		ok = d.resumed(r)
	case OpLogout:
		r.Conn, ok = d.uvarint()
	case OpServer:
		r.Server, ok = d.bytes(MaxServerName)
	case OpBye, OpResync:
		ok = true
	case OpSend:
		if r.ID, ok = d.varint(); ok {
			r.Msg, ok = d.bytes(MaxMessage)
		}
	case OpDeliverAt:
		if r.Epoch, ok = d.uvarint(); ok {
			if r.Seq, ok = d.uvarint(); ok {
				ok = d.deliver(r)
			}
		}
	case OpDeliver:
		ok = d.deliver(r)
	case OpDone:
		ok = d.uvarints(&r.Seq, &r.Tally.Delivered, &r.Tally.Gone, &r.Tally.Slow, &r.Tally.Dup, &r.Tally.Late)
	case OpAck:
		ok = d.uvarints(&r.Count, &r.Void, &r.Kept, &r.Tally.Delivered, &r.Tally.Gone, &r.Tally.Slow, &r.Tally.Gateway)
	case OpPubOutcomes:
		r.Msg, ok = d.bytes(MaxMessage)
	case OpFrameID:
		if d.off != 3 { // right after the 2-byte header
			d.fail(fmt.Errorf("%w: frame-id after another record (it must be the first)", ErrOp))
			return false
		}
		ok = d.uvarints(&r.Sender, &r.Seq)
	case OpRetaken:
		ok = true
	}
	return ok
}

// uvarints decodes one uvarint into each of vs, in order.
func (d *Decoder) uvarints(vs ...*uint64) bool {
	for _, v := range vs {
		var ok bool
		if *v, ok = d.uvarint(); !ok {
			return false
		}
	}
	return true
}

// uvarintVarint decodes a uvarint then a varint.
func (d *Decoder) uvarintVarint(u *uint64, v *int64) bool {
	var ok bool
	if *u, ok = d.uvarint(); ok {
		*v, ok = d.varint()
	}
	return ok
}

// topic decodes one topic name and checks it.
func (d *Decoder) topic() ([]byte, bool) {
	t, ok := d.bytes(MaxTopic)
	if !ok {
		return nil, false
	}
	if !ValidTopic(t) {
		d.fail(fmt.Errorf("%w %q", ErrTopic, t))
		return nil, false
	}
	return t, true
}

// topics decodes a count (with the presence flag) and that many topics
// into r.Topics.
func (d *Decoder) topics(r *Record) bool {
	nf, ok := d.uvarint()
	if !ok {
		return false
	}
	n := nf >> 1
	r.Presence = nf&1 == 1
	if n > MaxConnTopics {
		d.fail(fmt.Errorf("%w: %d topics (max %d)", ErrTooLarge, n, MaxConnTopics))
		return false
	}
	for i := uint64(0); i < n; i++ {
		t, ok := d.topic()
		if !ok {
			return false
		}
		r.Topics = append(r.Topics, t)
	}
	return true
}

// deliver decodes the msg and conns of a deliver or deliver-at record.
func (d *Decoder) deliver(r *Record) bool {
	var ok bool
	if r.Msg, ok = d.bytes(MaxMessage); !ok {
		return false
	}
	return d.connList(r)
}

// connList decodes a count and that many conns into r.Conns.
func (d *Decoder) connList(r *Record) bool {
	n, ok := d.uvarint()
	if !ok {
		return false
	}
	// Each conn takes at least one byte: a count larger than what is left
	// is malformed, and checking first bounds the allocation.
	if n > uint64(len(d.buf)-d.off) {
		d.fail(fmt.Errorf("%w: %d conns in %d bytes", ErrShort, n, len(d.buf)-d.off))
		return false
	}
	conns := d.conns[:0]
	for i := uint64(0); i < n; i++ {
		c, ok := d.uvarint()
		if !ok {
			return false
		}
		conns = append(conns, c)
	}
	d.conns = conns
	r.Conns = conns
	return true
}

func (d *Decoder) resumed(r *Record) bool {
	var ok bool
	if r.Conn, ok = d.uvarint(); !ok {
		return false
	}
	if r.Epoch, ok = d.uvarint(); !ok {
		return false
	}
	if r.Seq, ok = d.uvarint(); !ok {
		return false
	}
	if r.Head, ok = d.uvarint(); !ok {
		return false
	}
	if d.off >= len(d.buf) {
		d.fail(ErrShort)
		return false
	}
	switch d.buf[d.off] {
	case 0:
	case 1:
		r.Missed = true
	default:
		d.fail(fmt.Errorf("%w: missed flag %d", ErrVarint, d.buf[d.off]))
		return false
	}
	d.off++
	return true
}

// ParseAck reads an ack frame: its ack record (Count sends accepted,
// Void, Kept, Tally), and Retaken if a retaken record follows it.
func ParseAck(frame []byte) (Record, error) {
	var d Decoder
	h, err := d.Reset(frame)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if h.Kind != KindAck || !d.Next(&rec) || rec.Op != OpAck {
		if d.Err() != nil {
			return Record{}, d.Err()
		}
		return Record{}, fmt.Errorf("wire: %s frame without an ack record", h.Kind)
	}
	var next Record
	if d.Next(&next) && next.Op == OpRetaken {
		rec.Retaken = true
	}
	return rec, nil
}

// FrameID returns the frame-id a send frame starts with, if it has one
// (ok false for any other frame, well formed or not: the decoder says
// what is wrong with it when it is routed).
func FrameID(frame []byte) (sender, n uint64, ok bool) {
	if len(frame) < 3 || frame[0] != Version || Kind(frame[1]) != KindSend || Op(frame[2]) != OpFrameID {
		return 0, 0, false
	}
	var d Decoder
	d.Reset(frame)
	var r Record
	if !d.Next(&r) {
		return 0, 0, false
	}
	return r.Sender, r.Seq, true
}

// AppendFrameID appends a frame-id record: frame n of sender. It must
// come right after the header.
func AppendFrameID(b []byte, sender, n uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(append(b, byte(OpFrameID)), sender), n)
}

// AppendRetaken appends a retaken record, after an ack record.
func AppendRetaken(b []byte) []byte { return append(b, byte(OpRetaken)) }

// FrameWindow is how long a router remembers the frames with a
// frame-id it took: a sender sends a frame again within it, or not at
// all (docs/PROTOCOL.md, "Sending a frame again").
const FrameWindow = 2 * time.Minute

// Err returns the first decoding error, or nil if the frame was well formed
// up to where it was read.
func (d *Decoder) Err() error { return d.err }

func (d *Decoder) fail(err error) error {
	if d.err == nil {
		d.err = fmt.Errorf("%w (at byte %d)", err, d.off)
	}
	return d.err
}

func (d *Decoder) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(d.buf[d.off:])
	return v, d.advance(n)
}

func (d *Decoder) varint() (int64, bool) {
	v, n := binary.Varint(d.buf[d.off:])
	return v, d.advance(n)
}

// advance moves past a varint of n bytes as encoding/binary reports it: 0
// when the frame ends inside it, negative when it overflows 64 bits.
func (d *Decoder) advance(n int) bool {
	switch {
	case n == 0:
		d.fail(ErrShort)
		return false
	case n < 0:
		d.fail(ErrVarint)
		return false
	}
	d.off += n
	return true
}

func (d *Decoder) bytes(max int) ([]byte, bool) {
	n, ok := d.uvarint()
	if !ok {
		return nil, false
	}
	if n > uint64(max) {
		d.fail(fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, max))
		return nil, false
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail(ErrShort)
		return nil, false
	}
	p := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p, true
}

// NATS subjects of protocol version 3.
const (
	// SubjectUp carries KindUp frames from every gateway to every router
	// (a plain subscription: each router keeps the whole registry).
	SubjectUp = "comet.v3.up"
	// SubjectSend carries KindSend frames from senders to one router
	// (queue group QueueRouters). A frame sent as a request is answered
	// with a KindAck frame; an empty send frame is a ping.
	SubjectSend = "comet.v3.send"
	// SubjectClient carries KindSend frames that clients of a gateway
	// sent (WebSocket publish and send requests) from the gateway to one
	// router (queue group QueueRouters), as requests answered with a
	// KindAck frame on a ReplyPrefix subject.
	SubjectClient = "comet.v3.client"
	// SubjectRoute carries KindSend frames from one partitioned router
	// to the leader of another partition (PartSubject), as requests
	// answered with a KindAck frame: the records of a frame taken on
	// SubjectSend or SubjectClient that the other partition routes. A
	// router routes what comes on it itself, and forwards nothing.
	SubjectRoute = "comet.v3.route"
	// SubjectPresence carries, to the routers of one partition
	// (PartSubject; queue group QueueRouters), requests for their share
	// of a topic's presence: the topic name, answered with the JSON of
	// {"ids":{"ID":conns,...}}.
	SubjectPresence = "comet.v3.presence"
	// SubjectWatch + ".<n>" carries, from the leader of each of n
	// partitions to every router of the others, once every presence
	// round, the topics it has presence watchers in (AppendWatch): a
	// partition makes join and leave events for a topic watched anywhere
	// and hands them to the others on their route subjects (OpPresence).
	SubjectWatch = "comet.v3.watch"
	// ReplyPrefix + gateway name + "." + a number is where a gateway
	// takes the acks of its clients' requests.
	ReplyPrefix = "comet.v3.reply."
	// QueueRouters is the queue group routers join on SubjectSend.
	QueueRouters = "comet-routers"
	// TakeoverJump is how far a redundant router that takes the lead
	// moves every id's next position (docs/PROTOCOL.md, "Redundant
	// routers"): a client sees its positions jump by it, and has missed
	// nothing in the gap.
	TakeoverJump = 1 << 32
	// SubjectHistory is the subject of the history log that the leading
	// one of redundant routers writes (a JetStream stream, the log's
	// format in internal/retention).
	SubjectHistory = "comet.v3.history"
	// LeaderBucket is the JetStream key-value bucket of the redundant
	// routers' lease; SubjectLeader the subjects its writes go to.
	LeaderBucket  = "COMET_LEADER"
	SubjectLeader = "$KV." + LeaderBucket + ".>"
	// downPrefix + gateway name carries KindDown frames to one gateway.
	downPrefix = "comet.v3.down."
	// donePrefix + router name carries KindDone frames to one router; it
	// is the reply subject of that router's down frames.
	donePrefix = "comet.v3.done."
)

// MaxPartitions bounds the partitions ids are split into.
const MaxPartitions = 1024

// Partition is the partition of id when ids are split into n (n >= 1):
// the id as an unsigned 64-bit number (two's complement) modulo n.
func Partition(id int64, n int) int {
	if n <= 1 {
		return 0
	}
	return int(uint64(id) % uint64(n))
}

// PartSubject is the subject of partition k of n for one of the
// partitioned subjects (SubjectUp, SubjectSend, SubjectClient,
// SubjectHistory, SubjectRoute): subject itself when n is 1, else
// subject.<n>.<k> (comet.v3.up.2.0), so that parts configured with
// different partition counts never meet.
func PartSubject(subject string, n, k int) string {
	if n <= 1 {
		return subject
	}
	return subject + "." + strconv.Itoa(n) + "." + strconv.Itoa(k)
}

// DownSubject is the subject on which the gateway named gw receives
// deliveries and resync requests.
func DownSubject(gw string) string { return downPrefix + gw }

// DoneSubject is the subject on which the router named router receives
// done frames for its down frames (a name is one subject token, like a
// gateway's).
func DoneSubject(router string) string { return donePrefix + router }
