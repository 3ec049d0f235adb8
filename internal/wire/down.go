package wire

// The records a router sends a gateway (KindDown frames, on the
// gateway's down subject).

import (
	"encoding/binary"
)

// AppendDownHeader starts a router-to-gateway frame, the seq-th this
// router sends this gateway (0: no done record wanted).
func AppendDownHeader(b []byte, seq uint64) []byte {
	return binary.AppendUvarint(append(b, Version, byte(KindDown)), seq)
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
