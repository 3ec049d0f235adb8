//go:build linux

package flood

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/ws"
)

// WebSocket clients (/ws/{id}): the upgrade, then the gateway's frames,
// each message "CURSOR\nMESSAGE" checked like an SSE event (position and
// numbered seq), a resumed frame that says whether messages were missed,
// and pings answered.

var status101 = []byte("HTTP/1.1 101 ")

// upgradeHead is what a WebSocket client adds to its request (a fixed
// key: floodtest checks the gateway's frames, not its accept key).
const upgradeHead = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: Zmxvb2R0ZXN0IGNsaWVudA==\r\n"

var wsResumedMissed = []byte(`"missed":true`)

// wsConsume reads the frames in b (after what was held of an earlier
// read) and holds a partial frame for the next read.
func (e *Engine) wsConsume(sl *client, b []byte) {
	c := &sl.V
	if c.partial != nil {
		*c.partial = append(*c.partial, b...)
		b = *c.partial
	}
	e.cur, e.curErrs = c, chunkProblems{}
	for len(b) > 0 && c.state != stFree {
		n := e.wsFrame(sl, b)
		if n == 0 {
			break
		}
		b = b[n:]
	}
	e.cur = nil
	e.count(ErrLost, e.curErrs.lost)
	e.count(ErrDup, e.curErrs.dup)
	switch {
	case c.state == stFree:
	case len(b) > 1<<20+ws.MaxHeader:
		e.closeLocked(sl, ErrFraming)
	default:
		hold(c, b)
	}
}

// wsFrame handles the server frame at the start of b, if it is all
// there, and returns its length (0: wait for more).
func (e *Engine) wsFrame(sl *client, b []byte) int {
	c := &sl.V
	if len(b) < 2 {
		return 0
	}
	if b[1]&0x80 != 0 || b[0]&0x70 != 0 || b[0]&0x80 == 0 {
		e.closeLocked(sl, ErrFraming) // masked, reserved bits, or fragmented: the gateway does none
		return 0
	}
	op, hl, n := b[0]&0x0F, 2, uint64(b[1]&0x7F)
	switch n {
	case 126:
		if len(b) < 4 {
			return 0
		}
		n, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0
		}
		n, hl = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > 1<<20 {
		e.closeLocked(sl, ErrFraming)
		return 0
	}
	if uint64(len(b)-hl) < n {
		return 0
	}
	p := b[hl : hl+int(n)]
	switch op {
	case ws.OpPing:
		// The pong, masked with a zero key (the payload as is).
		unix.Write(sl.FD(), ws.AppendClientFrame(nil, 0x80|ws.OpPong, p, [4]byte{}))
	case ws.OpClose:
		e.closeLocked(sl, ErrEnded)
		return 0
	case ws.OpText, ws.OpBinary:
		e.wsMessage(c, p)
	default:
		e.closeLocked(sl, ErrFraming)
		return 0
	}
	return hl + int(n)
}

// wsMessage checks one message frame, or notes the resumed frame.
func (e *Engine) wsMessage(c *conn, p []byte) {
	e.chunks.Add(1)
	if c.state == stWelcome {
		c.state = stBody
	}
	if len(p) > 0 && p[0] == '{' {
		if bytes.Contains(p, wsResumedMissed) {
			e.count(ErrMissed, 1)
			c.epoch = 0
		}
		return
	}
	e.messages.Add(1)
	if e.cfg.NoCheck {
		return
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		e.count(ErrAnswer, 1)
		return
	}
	if i > 0 {
		cur, err := cursor.Parse(string(p[:i]))
		if err != nil {
			e.count(ErrAnswer, 1)
			return
		}
		if cur.Seq != c.pos || cur.Epoch != c.epoch { // a broadcast carries the cursor the client has
			e.position(c, cur)
		}
	}
	body := p[i+1:]
	e.lat.record(body, e.now)
	if s, ok := numberedSeq(body); ok {
		e.numbered(c, s)
	}
}

// publisher makes the WebSocket clients in a topic publish into it
// (Config.WSPublish): client i once a period, at its own step of the
// period, so that the publishes of many clients come evenly spread, not
// in bursts.
func (e *Engine) publisher(stop <-chan struct{}) {
	t := time.NewTicker(publishStep)
	defer t.Stop()
	last := time.Now().UnixNano() / int64(publishStep)
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			k := now.UnixNano() / int64(publishStep)
			if k > last {
				e.publish(last, k)
				last = k
			}
		}
	}
}

// publishStep is the publishers' clock: client i's turn comes once a
// period, at step (−i mod steps per period).
const publishStep = 10 * time.Millisecond

// publish sends the publish requests of the clients whose turn came in
// steps (from, to].
func (e *Engine) publish(from, to int64) {
	steps := max(int64(e.cfg.WSPublish/publishStep), 1)
	if to-from >= steps {
		from = to - steps // a stall: each client once
	}
	var frame []byte
	e.conns.Each(func(sl *client) {
		c := &sl.V
		if c.kind != kindWS || c.state < stWelcome {
			return
		}
		// The step of the period at which this client publishes, and
		// whether it lies in (from, to] (the range may wrap).
		turn := (steps - int64(c.idx)%steps) % steps
		d := (turn - from%steps + steps) % steps // steps after from to its turn (0: a whole period)
		if d == 0 && to-from < steps || d > to-from {
			return
		}
		t, err := e.cfg.Target(int(c.idx))
		if err != nil {
			return
		}
		_, q, _ := strings.Cut(t.Path, "?topics=")
		topic, _, _ := strings.Cut(q, "&")
		if topic == "" {
			return
		}
		frame = appendPublish(frame[:0], topic, t.ID, time.Now().UnixNano())
		if n, err := unix.Write(sl.FD(), frame); err != nil || n != len(frame) {
			e.count(ErrReset, 1)
			return
		}
		e.published.Add(1)
	})
}

// appendPublish appends a client's publish request as a masked text
// frame (a zero key: the payload as is).
func appendPublish(b []byte, topic string, id []byte, now int64) []byte {
	var p []byte
	p = append(p, `{"op":"publish","topic":"`...)
	p = append(p, topic...)
	p = append(p, `","data":"chat from `...)
	p = append(p, id...)
	p = append(p, " t="...)
	p = strconv.AppendInt(p, now, 10)
	p = append(p, `"}`...)
	return ws.AppendClientFrame(b, 0x80|ws.OpText, p, [4]byte{})
}
