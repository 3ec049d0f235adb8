package wire

// The decoder of every kind of frame.

import (
	"encoding/binary"
	"fmt"
)

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
	case OpRewind:
		ok = d.uvarints(&r.Conn, &r.Count)
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
