package retention

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A log of the histories, for routers that follow another and take over
// from it (docs/PROTOCOL.md, "Redundant routers"): the router that leads
// writes, in the order it made them, every history it opens and every
// message it gives a position; the others apply the log to their Store,
// so that when one of them leads it has every position the log holds.
//
//	log    = record*
//	record = 1 open   id:varint epoch:uvarint
//	       | 2 entry  id:varint epoch:uvarint seq:uvarint at:varint topic:str msg:bytes
//	       | 3 frame  sender:uvarint n:uvarint sends:uvarint
//	       | 4 topic  topic:str epoch:uvarint seq:uvarint at:varint msg:bytes
//
// A frame record is the router's: the send frame n of sender (its
// frame-id) was routed, with that many sends, publishes and broadcasts;
// ApplyLog hands it to its caller. A topic record is a message kept in
// a topic's own history (package topichist) at its position; ApplyLogTo
// hands it to its caller, ApplyLog skips it.
//
// str and bytes are a uvarint length, then the bytes.

// Log record ops.
const (
	logOpen  = 1
	logEntry = 2
	logFrame = 3
	logTopic = 4
)

// ErrBadLog is returned for a malformed log.
var ErrBadLog = errors.New("retention: malformed history log")

// AppendOpen appends the record of id's history opened at epoch.
func AppendOpen(b []byte, id int64, epoch uint64) []byte {
	b = append(b, logOpen)
	b = binary.AppendVarint(b, id)
	return binary.AppendUvarint(b, epoch)
}

// AppendEntry appends the record of msg kept at (epoch, seq) of id at
// unix nanos at, published to topic ("" sent to id).
func AppendEntry(b []byte, id int64, epoch, seq uint64, at int64, topic string, msg []byte) []byte {
	b = append(b, logEntry)
	b = binary.AppendVarint(b, id)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// AppendFrame appends the record of frame n of sender routed with sends
// records.
func AppendFrame(b []byte, sender, n, sends uint64) []byte {
	b = binary.AppendUvarint(append(b, logFrame), sender)
	return binary.AppendUvarint(binary.AppendUvarint(b, n), sends)
}

// AppendTopicEntry appends the record of msg kept at (epoch, seq) of
// topic's own history at unix nanos at.
func AppendTopicEntry(b []byte, topic string, epoch, seq uint64, at int64, msg []byte) []byte {
	b = append(b, logTopic)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// TopicEntry is a topic record's message: the callback of ApplyLogTo
// gets its own copy of Msg.
type TopicEntry struct {
	Topic      string
	Epoch, Seq uint64
	At         int64
	Msg        []byte
}

// ApplyLog applies a log written by the leading router: histories it
// opened replace any other life of the id's history here, messages are
// kept at their positions (a position the history passed already is
// left alone; one past its next position leaves a gap, which the leader
// made by jumping). It returns ErrBadLog (wrapped) for a malformed log,
// after applying the records before the fault. Frame records go to
// frame (if not nil).
func (s *Store) ApplyLog(log []byte, now int64, frame func(sender, n, sends uint64)) error {
	return s.ApplyLogTo(log, now, frame, nil)
}

// ApplyLogTo is ApplyLog that hands topic records to topic (if not nil).
func (s *Store) ApplyLogTo(log []byte, now int64, frame func(sender, n, sends uint64), topic func(TopicEntry)) error {
	for len(log) > 0 {
		op := log[0]
		log = log[1:]
		if op == logTopic {
			var e TopicEntry
			var name []byte
			var ok bool
			if name, log, ok = lenPrefixed(log, 128); !ok {
				return fmt.Errorf("%w: topic", ErrBadLog)
			}
			var v [2]uint64
			for i := range v {
				var n int
				if v[i], n = binary.Uvarint(log); n <= 0 || v[i] == 0 {
					return fmt.Errorf("%w: topic position", ErrBadLog)
				}
				log = log[n:]
			}
			at, msg, rest, err := atAndMsg(log)
			if err != nil {
				return err
			}
			log = rest
			if topic != nil {
				e = TopicEntry{Topic: string(name), Epoch: v[0], Seq: v[1], At: at, Msg: slices.Clone(msg)}
				topic(e)
			}
			continue
		}
		if op == logFrame {
			var v [3]uint64
			for i := range v {
				var n int
				if v[i], n = binary.Uvarint(log); n <= 0 {
					return fmt.Errorf("%w: frame", ErrBadLog)
				}
				log = log[n:]
			}
			if frame != nil {
				frame(v[0], v[1], v[2])
			}
			continue
		}
		var id int64
		var epoch uint64
		var n int
		if id, n = binary.Varint(log); n <= 0 {
			return fmt.Errorf("%w: id", ErrBadLog)
		}
		log = log[n:]
		if epoch, n = binary.Uvarint(log); n <= 0 || epoch == 0 {
			return fmt.Errorf("%w: epoch", ErrBadLog)
		}
		log = log[n:]
		switch op {
		case logOpen:
			s.open(id, epoch, now)
		case logEntry:
			seq, n := binary.Uvarint(log)
			if n <= 0 || seq == 0 {
				return fmt.Errorf("%w: seq", ErrBadLog)
			}
			log = log[n:]
			at, n := binary.Varint(log)
			if n <= 0 {
				return fmt.Errorf("%w: time", ErrBadLog)
			}
			topic, rest, ok := lenPrefixed(log[n:], 128)
			if !ok {
				return fmt.Errorf("%w: topic", ErrBadLog)
			}
			msg, rest, ok := lenPrefixed(rest, 1<<20)
			if !ok {
				return fmt.Errorf("%w: message", ErrBadLog)
			}
			log = rest
			s.keep(id, epoch, seq, at, string(topic), msg, now)
		default:
			return fmt.Errorf("%w: op %d", ErrBadLog, op)
		}
	}
	return nil
}

// atAndMsg splits a record's time and message off log.
func atAndMsg(log []byte) (at int64, msg, rest []byte, err error) {
	at, n := binary.Varint(log)
	if n <= 0 {
		return 0, nil, nil, fmt.Errorf("%w: time", ErrBadLog)
	}
	msg, rest, ok := lenPrefixed(log[n:], 1<<20)
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: message", ErrBadLog)
	}
	return at, msg, rest, nil
}

// lenPrefixed splits a uvarint length (at most max) and that many bytes
// off b.
func lenPrefixed(b []byte, max uint64) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > max || l > uint64(len(b)-n) {
		return nil, nil, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

// at returns id's history at epoch, made (replacing another life of it)
// if need be (made is then true). A history made here starts idle: the
// next Sweep keeps it if id is held. sh.mu must be held.
func (s *Store) at(sh *shard, id int64, epoch uint64, now int64) (h *history, made bool) {
	h = sh.m[id]
	if h != nil && h.epoch == epoch {
		return h, false
	}
	if h != nil {
		s.dropFront(h, len(h.live()))
		h.gone.Store(true)
	} else {
		s.ids.Add(1)
	}
	h = newHistory(id, epoch, now)
	sh.m[id] = h
	return h, true
}

func (s *Store) open(id int64, epoch uint64, now int64) {
	sh := s.shard(id)
	sh.mu.Lock()
	s.at(sh, id, epoch, now)
	sh.mu.Unlock()
}

// keep keeps msg at (epoch, seq) of id, as Append did in the leader.
func (s *Store) keep(id int64, epoch, seq uint64, at int64, topic string, msg []byte, now int64) {
	sh := s.shard(id)
	sh.mu.Lock()
	h, made := s.at(sh, id, epoch, now)
	switch {
	case seq >= h.next:
		if seq > h.next && !made {
			// The leader jumped (a history made here from this message
			// knows nothing before it: a cursor there has missed).
			h.gapFrom, h.gapTo = h.next, seq
		}
		h.next = seq + 1
	case seq >= h.gapFrom && seq < h.gapTo:
		// Given in the gap by a leader that had not learnt it lost the
		// lead: kept in its place, the gap now after it.
		h.gapFrom = seq + 1
	default: // a position the history passed already
		sh.mu.Unlock()
		return
	}
	s.insert(h, seq, at, topic, msg, now)
	h.moved()
	sh.mu.Unlock()
	s.enqueue(h, seq, at)
}

// insert keeps msg at seq in h, in order. The shard's lock must be held.
func (s *Store) insert(h *history, seq uint64, at int64, topic string, msg []byte, now int64) {
	i := h.from(seq)
	e := Entry{Seq: seq, At: at, Msg: append([]byte(nil), msg...), Topic: topic}
	if i == len(h.live()) {
		h.push(e)
	} else {
		h.kept = slices.Insert(h.kept, h.head+i, e)
	}
	s.msgs.Add(1)
	s.bytes.Add(int64(len(msg)) + entryCost)
	s.trim(h, now)
}

// Jump moves every history's next position n ahead: the router taking
// the lead gives no position the one before it could have given to a
// message it had not yet logged. A client holding a position in the gap
// has missed nothing.
func (s *Store) Jump(n uint64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, h := range sh.m {
			h.gapFrom = h.next
			h.next += n
			h.gapTo = h.next
			h.moved()
		}
		sh.mu.Unlock()
	}
}
