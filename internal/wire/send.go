package wire

// The records a sender (msggen, an application, a gateway for its
// WebSocket clients, a partition's router) sends a router (KindSend),
// and the router's acks (KindAck).

import (
	"encoding/binary"
	"fmt"
	"time"
)

// AppendHeader starts a frame of kind k (KindSend, KindAck). KindUp and
// KindDone have AppendUpHeader, KindDown AppendDownHeader.
func AppendHeader(b []byte, k Kind) []byte {
	return append(b, Version, byte(k))
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

// AppendBroadcast appends a broadcast record: msg to every connection.
func AppendBroadcast(b []byte, msg []byte) []byte {
	return appendBytes(append(b, byte(OpBroadcast)), msg)
}

// AppendSend appends a send record.
func AppendSend(b []byte, id int64, msg []byte) []byte {
	b = binary.AppendVarint(append(b, byte(OpSend)), id)
	return appendBytes(b, msg)
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
