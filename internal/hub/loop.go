//go:build linux

package hub

import (
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/netpoll"
)

// maxInput bounds what a session whose kind drops input may send.
const maxInput = 64 << 10

// loop watches every session's socket in one epoll set: a hang-up closes
// the session at once, input is dropped (or left for the next reader, as
// the kind says), and a socket that can take more gets its pending
// output.
func (h *Hub) loop() {
	defer h.loops.Done()
	var buf [2048]byte
	var sc scratch
	err := h.poller.Wait(func(fd int, tag uint32, ev uint32) {
		sl := h.table.Lookup(fd, tag)
		if sl == nil {
			return
		}
		defer sl.Unlock()
		if ev&netpoll.HangUp != 0 {
			h.close(sl, ReasonPeer)
			return
		}
		if ev&netpoll.In != 0 && !h.traits[sl.V.kind].KeepsInput && !h.dropInput(sl, fd, buf[:]) {
			return
		}
		if ev&netpoll.Out != 0 {
			h.flush(sl, &sc)
			sc.trim()
		}
	})
	if err != nil && err != netpoll.ErrClosed {
		h.log.Error("epoll loop stopped", zap.Error(err))
	}
}

// dropInput reads and drops what the client sent (edge-triggered: until
// EAGAIN), within maxInput, and reports whether the session is still
// open.
func (h *Hub) dropInput(sl *slot, fd int, buf []byte) bool {
	total := 0
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			total += n
			if total > maxInput {
				h.close(sl, ReasonProtocol)
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
}
