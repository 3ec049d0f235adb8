//go:build linux

package hub

import (
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/netpoll"
)

// maxInput bounds what a session whose kind drops input may send.
const maxInput = 64 << 10

// keepInput is the largest input buffer a session keeps once it is empty
// (larger ones go back to the garbage collector at once).
const keepInput = 4 << 10

// loop watches every session's socket in one epoll set: a hang-up closes
// the session at once, input is read (each socket at most
// Config.ReadBudget bytes a turn, the rest after the others' turns) or
// dropped, and a socket that can take more gets its pending output.
func (h *Hub) loop() {
	defer h.loops.Done()
	var buf [2048]byte
	var sc scratch
	err := h.poller.WaitMore(func(fd int, tag uint32, ev uint32) {
		sl := h.table.Lookup(fd, tag)
		if sl == nil {
			return
		}
		defer sl.Unlock()
		if h.readers[sl.V.kind] != nil {
			// What the client sent before it hung up is read first (a
			// WebSocket close frame).
			if ev&(netpoll.In|netpoll.HangUp) != 0 && !h.readInput(sl, buf[:], &sc) {
				return
			}
		}
		if ev&netpoll.HangUp != 0 {
			h.close(sl, hangUp(fd))
			return
		}
		if ev&netpoll.In != 0 && !h.traits[sl.V.kind].KeepsInput && h.readers[sl.V.kind] == nil && !h.dropInput(sl, buf[:]) {
			return
		}
		if ev&netpoll.Out != 0 {
			h.flush(sl, &sc)
			sc.trim()
		}
	}, func() bool { return h.readReady(buf[:], &sc) })
	if err != nil && err != netpoll.ErrClosed {
		h.log.Error("epoll loop stopped", zap.Error(err))
	}
}

// hangUp is why a socket the poller says is over closed: ReasonTimeout
// if the kernel gave up on it (TCP_USER_TIMEOUT: the client stopped
// reading or vanished), else ReasonPeer.
func hangUp(fd int) Reason {
	if e, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && unix.Errno(e) == unix.ETIMEDOUT {
		return ReasonTimeout
	}
	return ReasonPeer
}

// later puts sl on the ready list: its socket has input its turn did not
// read (edge-triggered epoll will not tell again). sl's lock is held.
func (h *Hub) later(sl *slot) {
	if sl.V.flags&flagQueued != 0 {
		return
	}
	sl.V.flags |= flagQueued
	h.readyMu.Lock()
	wake := len(h.ready) == 0
	h.ready = append(h.ready, sl.Key())
	h.readyMu.Unlock()
	if wake {
		h.poller.Wake()
	}
}

// readReady gives every session on the ready list one more turn of
// reading, and reports whether the list has sessions again.
func (h *Hub) readReady(buf []byte, sc *scratch) bool {
	h.readyMu.Lock()
	keys := h.ready
	h.ready = h.spare[:0]
	h.readyMu.Unlock()
	for _, k := range keys {
		sl := h.table.LookupKey(k)
		if sl == nil {
			continue
		}
		sl.V.flags &^= flagQueued
		switch {
		case h.readers[sl.V.kind] != nil:
			h.readInput(sl, buf, sc)
		case !h.traits[sl.V.kind].KeepsInput:
			h.dropInput(sl, buf)
		}
		sl.Unlock()
	}
	h.spare = keys[:0]
	sc.trim()
	h.readyMu.Lock()
	more := len(h.ready) > 0
	h.readyMu.Unlock()
	return more
}

// dropInput reads and drops what the client sent (edge-triggered: until
// EAGAIN), within maxInput, and reports whether the session is still
// open.
func (h *Hub) dropInput(sl *slot, buf []byte) bool {
	total := 0
	return h.drain(sl, buf, maxInput+len(buf), func(p []byte) bool {
		if total += len(p); total > maxInput {
			h.close(sl, ReasonProtocol)
			return false
		}
		return true
	})
}

// drain reads sl's socket until EAGAIN (edge-triggered), its kind pauses
// its input, or budget bytes were read (then sl goes on the ready list
// for another turn), handing each read to take, which reports whether
// the session is still open; so does drain. End of stream or a read
// error closes the session.
func (h *Hub) drain(sl *slot, buf []byte, budget int, take func(p []byte) bool) bool {
	for sl.V.flags&flagPaused == 0 {
		if budget <= 0 {
			h.later(sl)
			return true
		}
		n, err := unix.Read(sl.FD(), buf)
		if n > 0 {
			budget -= n
			if !take(buf[:n]) {
				return false
			}
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return true
		}
		// n == 0: end of stream; or a read error.
		h.close(sl, ReasonPeer)
		return false
	}
	return true
}

// readInput hands a reading session's input to its kind: what is held,
// then what the socket has (edge-triggered: until EAGAIN, or one turn's
// budget), unless the kind pauses. It reports whether the session is
// still open. buf is a read buffer (nil: one of its own).
func (h *Hub) readInput(sl *slot, buf []byte, sc *scratch) bool {
	v := &sl.V
	if in := *h.inputs.at(sl.FD()); in != nil && len(in.b) > 0 && v.flags&flagPaused == 0 {
		if !h.input(sl, nil, sc) {
			return false
		}
	}
	if buf == nil {
		var b [2048]byte
		buf = b[:]
	}
	return h.drain(sl, buf, h.cfg.ReadBudget, func(p []byte) bool { return h.input(sl, p, sc) })
}

// input hands p, after the input held, to the session's kind and holds
// what it leaves (within MaxHeldInput, and the hub's InputBudget). It
// reports whether the session is still open.
func (h *Hub) input(sl *slot, p []byte, sc *scratch) bool {
	v := &sl.V
	in := h.inputs.at(sl.FD())
	if *in != nil && len((*in).b) > 0 {
		(*in).b = append((*in).b, p...)
		p = (*in).b
	}
	n := h.readers[v.kind].Input(Session{h, sl, sc}, p)
	if !sl.IsOpen() {
		return false
	}
	rest := p[n:]
	if len(rest) > MaxHeldInput {
		h.close(sl, ReasonProtocol)
		return false
	}
	if len(rest) > 0 && *in == nil {
		*in = h.getIn()
	}
	b := *in
	if b == nil {
		return true
	}
	b.b = append(b.b[:0], rest...) // rest may alias b.b: append moves it like copy
	if n > 0 && b.op == 0 {
		// A frame was used and no message is in fragments: what is
		// held (part of the next frame) began now.
		b.since = uint32(h.clock.Load() / 1e9)
	}
	if len(b.b) == 0 && cap(b.b) > keepInput {
		b.b = nil
	}
	if len(b.msg) == 0 && cap(b.msg) > keepInput {
		b.msg = nil
	}
	if len(b.b) == 0 && len(b.msg) == 0 && b.op == 0 {
		h.putIn(b)
		*in = nil
		return true
	}
	h.account(b)
	if h.held.Load() > 2*h.cfg.InputBudget {
		h.finish(sl, sc, ReasonInputBudget)
		return false
	}
	return true
}
