package hub

import "github.com/cometgw/comet/internal/cursor"

// job operations.
const (
	opDeliver uint8 = iota
	opResumed
)

// job is work for one writer: a message for some of its sessions, or a
// resume answer for one.
type job struct {
	op     uint8
	missed bool
	msg    []byte // the message as sent
	conns  []uint64
	epoch  uint64 // position of msg, or of the resume
	seq    uint64 // deliver: msg's position; resumed: the first to follow
	head   uint64 // resumed: the last position of the catch-up
}

// Deliver queues msg for every session in conns. Each session gets its
// messages in the order Deliver, DeliverAt and Resumed were called for
// it. Deliver waits while the writers' queues are full; after Close it
// drops msg.
func (h *Hub) Deliver(msg []byte, conns []uint64) {
	h.DeliverAt(0, 0, msg, conns)
}

// DeliverAt is Deliver for a message at position (epoch, seq) of its id:
// resumable sessions take the position as their cursor, and drop a
// position they already have.
func (h *Hub) DeliverAt(epoch, seq uint64, msg []byte, conns []uint64) {
	if len(conns) == 0 {
		return
	}
	h.queue(job{op: opDeliver, msg: append([]byte(nil), msg...), epoch: epoch, seq: seq}, conns)
}

// Resumed applies the router's answer to conn's resume: the messages from
// position seq to head of epoch follow; missed says messages after the
// client's cursor are no longer kept.
func (h *Hub) Resumed(conn, epoch, seq, head uint64, missed bool) {
	h.queue(job{op: opResumed, epoch: epoch, seq: seq, head: head, missed: missed}, []uint64{conn})
}

// queue hands j to the writers owning conns (a conn always goes to the
// same writer, which keeps each session's order).
func (h *Hub) queue(j job, conns []uint64) {
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if h.closed {
		return
	}
	w := len(h.queues)
	if w == 1 || len(conns) == 1 {
		j.conns = append([]uint64(nil), conns...)
		h.queues[int(uint32(conns[0]))%w] <- j
		return
	}
	parts := make([][]uint64, w)
	for _, c := range conns {
		i := int(uint32(c)) % w
		parts[i] = append(parts[i], c)
	}
	for i, p := range parts {
		if len(p) > 0 {
			j.conns = p
			h.queues[i] <- j
		}
	}
}

// writer applies the jobs of one queue.
func (h *Hub) writer(q chan job) {
	defer h.workers.Done()
	var m Message
	var sc scratch
	for j := range q {
		m.reset(j.msg, cursor.Cursor{Epoch: j.epoch, Seq: j.seq})
		for _, c := range j.conns {
			sl := h.table.LookupKey(c)
			if sl == nil {
				h.stale.Add(1)
				continue
			}
			s := Session{h, sl, &sc}
			if j.op == opResumed {
				h.resumed(s, &j)
			} else {
				h.deliver(s, &m)
			}
			sl.Unlock()
		}
		sc.trim()
		for i := range m.enc {
			if cap(m.enc[i]) > 256<<10 {
				m.enc[i] = nil
			}
		}
	}
}

// deliver hands one message to s's kind.
func (h *Hub) deliver(s Session, m *Message) {
	v := &s.sl.V
	if v.flags&flagFinished != 0 {
		h.late.Add(1)
		return
	}
	if h.traits[v.kind].Resumable && m.Pos.Epoch != 0 {
		if m.Pos.Epoch == v.epoch && m.Pos.Seq <= v.n {
			h.dups.Add(1)
			return
		}
		v.epoch, v.n = m.Pos.Epoch, m.Pos.Seq
	}
	if h.kinds[v.kind].Deliver(s, m) {
		h.messages.Add(1)
	}
}

// resumed applies the router's answer to s's resume.
func (h *Hub) resumed(s Session, j *job) {
	v := &s.sl.V
	if !h.traits[v.kind].Resumable {
		return
	}
	if j.epoch != v.epoch || j.seq-1 > v.n || j.missed {
		v.epoch, v.n = j.epoch, j.seq-1
	}
	v.head = j.head
	v.flags |= flagResumed
	if j.missed {
		v.flags |= flagMissed
	}
	h.kinds[v.kind].Resumed(s)
}
