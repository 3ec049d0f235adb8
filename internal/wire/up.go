package wire

// The records a gateway sends its routers (KindUp frames, on the up
// subjects) and its done records (KindDone).

import (
	"encoding/binary"
)

// AppendUpHeader starts a gateway-to-router frame of kind k (KindUp or
// KindDone).
func AppendUpHeader(b []byte, k Kind, gateway string, instance uint64) []byte {
	b = append(b, Version, byte(k))
	b = appendString(b, gateway)
	return binary.AppendUvarint(b, instance)
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

// AppendRewind appends a rewind record: conn's next login-topics or join
// record asks for up to n kept messages of each topic it joins, before
// the live ones.
func AppendRewind(b []byte, conn, n uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(append(b, byte(OpRewind)), conn), n)
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

// AppendDone appends a done record: what became of the copies down frame
// seq carried (t.Gateway is not sent).
func AppendDone(b []byte, seq uint64, t Tally) []byte {
	b = binary.AppendUvarint(append(b, byte(OpDone)), seq)
	for _, v := range [...]uint64{t.Delivered, t.Gone, t.Slow, t.Dup, t.Late} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}
