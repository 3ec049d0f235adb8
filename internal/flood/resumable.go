//go:build linux

package flood

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/wire"
)

var (
	sseRetry   = []byte("retry:")
	sseID      = []byte("id: ")
	sseData    = []byte("\ndata: ")
	sseMissed  = []byte("event: missed\n")
	sseComment = []byte(":")
)

// sseChunk checks one chunk of an EventSource stream: the first sets the
// retry delay; then each is a heartbeat comment, a retry delay, an id
// that only moves the cursor, a missed event, or a message whose id must
// be the next position and whose numbered seq (msggen -numbered) the next
// seq.
func (e *Engine) sseChunk(c *conn, data []byte) {
	if c.state == stWelcome {
		c.state = stBody
		if !bytes.HasPrefix(data, sseRetry) {
			e.curErrs.welcome++
		}
		return
	}
	switch {
	case bytes.HasPrefix(data, sseComment), bytes.HasPrefix(data, sseRetry):
		// A comment (heartbeat), or a new retry delay (a draining
		// gateway's, before it ends the stream).
		return
	case bytes.HasPrefix(data, sseMissed):
		e.count(ErrMissed, 1)
		data = data[len(sseMissed):]
		if cur, ok := sseCursor(data); ok {
			c.epoch, c.pos = cur.Epoch, cur.Seq
		}
		return
	}
	cur, ok := sseCursor(data)
	if !ok {
		e.count(ErrAnswer, 1)
		return
	}
	i := bytes.Index(data, sseData)
	if i < 0 {
		c.epoch, c.pos = cur.Epoch, cur.Seq // the cursor to resume from
		return
	}
	e.messages.Add(1)
	e.position(c, cur)
	e.lat.record(bytes.TrimRight(data[i:], "\n"), e.now)
	if s, ok := numberedSeq(bytes.TrimRight(data[i+len(sseData):], "\n")); ok {
		e.numbered(c, s)
	}
}

// sseCursor reads the "id: " line at the start of an event.
func sseCursor(ev []byte) (cursor.Cursor, bool) {
	if !bytes.HasPrefix(ev, sseID) {
		return cursor.Cursor{}, false
	}
	line := ev[len(sseID):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	cur, err := cursor.Parse(string(line))
	return cur, err == nil && !cur.IsZero()
}

// position checks that cur is the next position after the client's cursor
// (in the same epoch), counts a gap as lost and a repeat as duplicate, and
// moves the cursor. A gap of half wire.TakeoverJump or more holds a
// redundant router's takeover, whose jump skips positions no message took
// (less whatever the client got from the old leader past what it logged).
func (e *Engine) position(c *conn, cur cursor.Cursor) {
	if c.epoch == cur.Epoch && c.epoch != 0 {
		switch gap := cur.Seq - c.pos - 1; {
		case cur.Seq > c.pos+1 && gap >= wire.TakeoverJump/2:
			e.curErrs.lost += max(gap, wire.TakeoverJump) - wire.TakeoverJump
		case cur.Seq > c.pos+1:
			e.curErrs.lost += gap
		case cur.Seq <= c.pos:
			e.curErrs.dup++
		}
	}
	c.epoch, c.pos = cur.Epoch, cur.Seq
}

func (e *Engine) numbered(c *conn, s uint64) {
	seq, lost, dup := nextSeq(s, uint64(c.lastSeq))
	c.lastSeq = uint32(seq)
	e.curErrs.lost += lost
	e.curErrs.dup += dup
}

// pollPath appends the path of c's next long-poll.
func (e *Engine) pollPath(b []byte, c *conn, path string) []byte {
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:] // kept: the client's topics
	}
	b = append(b, path...)
	if c.epoch == 0 {
		b = append(b, "?timeout=1ms"...)
	} else {
		b = append(b, "?timeout="...)
		b = strconv.AppendInt(b, max(e.cfg.PollTimeout.Milliseconds(), 1), 10)
		b = append(b, "ms&cursor="...)
		b = cursor.Cursor{Epoch: c.epoch, Seq: c.pos}.Append(b)
	}
	if query != "" {
		b = append(append(b, '&'), query...)
	}
	return b
}

var partialPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

var (
	contentLength = []byte("\r\ncontent-length:")
	headEnd       = []byte("\r\n\r\n")
)

// pollConsume reads long-poll answers: each is checked, and the next poll
// is sent on the same connection.
func (e *Engine) pollConsume(sl *client, b []byte) {
	c := &sl.V
	if c.partial != nil {
		*c.partial = append(*c.partial, b...)
		b = *c.partial
	}
	for len(b) > 0 && c.state != stFree {
		n := e.pollAnswer(sl, b)
		if n == 0 {
			break
		}
		b = b[n:]
	}
	if c.state != stFree {
		hold(c, b)
	}
}

// hold keeps rest, what c's last read left of a message not yet whole,
// for the next read (rest may be in c.partial itself).
func hold(c *conn, rest []byte) {
	switch {
	case len(rest) == 0:
		if c.partial != nil {
			partialPool.Put(c.partial)
			c.partial = nil
		}
	case c.partial == nil:
		c.partial = partialPool.Get().(*[]byte)
		*c.partial = append((*c.partial)[:0], rest...)
	default:
		*c.partial = (*c.partial)[:copy(*c.partial, rest)]
	}
}

// pollAnswer handles the answer at the start of b, if it is all there, and
// returns its length (0: wait for more).
func (e *Engine) pollAnswer(sl *client, b []byte) int {
	c := &sl.V
	end := bytes.Index(b, headEnd)
	if end < 0 {
		if len(b) > 8192 {
			e.closeLocked(sl, ErrHead)
		}
		return 0
	}
	head := b[:end+2]
	if !bytes.HasPrefix(head, statusOK) {
		e.closeLocked(sl, statusProblem(0, head))
		return 0
	}
	i := bytes.Index(bytes.ToLower(head), contentLength)
	if i < 0 {
		e.closeLocked(sl, ErrHead)
		return 0
	}
	rest := bytes.TrimLeft(head[i+len(contentLength):], " ")
	cl, k := parseUint(rest)
	if k == 0 || cl > 16<<20 {
		e.closeLocked(sl, ErrHead)
		return 0
	}
	total := end + 4 + int(cl)
	if len(b) < total {
		return 0
	}
	var a longpoll.Answer
	cur, err := cursor.Cursor{}, json.Unmarshal(b[end+4:total], &a)
	if err == nil {
		cur, err = cursor.Parse(a.Cursor)
	}
	if err != nil || cur.IsZero() {
		e.closeLocked(sl, ErrAnswer)
		return 0
	}
	if c.state == stHead {
		c.state = stBody
		e.activated()
	}
	e.chunks.Add(1)
	if a.Missed {
		e.count(ErrMissed, 1)
		c.epoch = 0 // a new start: no gap to count
	}
	for _, m := range a.Messages {
		e.messages.Add(1)
		e.lat.record([]byte(m.Data), e.now)
		e.position(c, cursor.Cursor{Epoch: cur.Epoch, Seq: m.Seq})
		if s, ok := numberedSeq([]byte(m.Data)); ok {
			e.numbered(c, s)
		}
	}
	c.epoch, c.pos = cur.Epoch, cur.Seq
	e.count(ErrLost, e.curErrs.lost)
	e.count(ErrDup, e.curErrs.dup)
	e.curErrs = chunkProblems{}
	t, err := e.cfg.Target(int(c.idx))
	if err != nil || !e.request(sl, t) {
		e.closeLocked(sl, ErrReset)
		return 0
	}
	return total
}
