package wire

// The NATS subjects the frames travel on, the partitions of the ids,
// and the watch lists partitioned routers exchange.

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

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
