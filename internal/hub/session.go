package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/fdtable"
)

// session is the state of one client connection: with the table slot's
// lock, generation and descriptor, 72 bytes, stored inline in the table
// at the index of its descriptor. An idle session owns nothing else.
type session struct {
	id int64
	// Non-resumable kinds: messages delivered (for "Recvd msg #N").
	// Resumable kinds: the position (in epoch) of the last message the
	// client has: its cursor.
	n     uint64
	epoch uint64
	head  uint64 // the last position of a resume's catch-up
	// Output the socket did not take yet; nil when idle. With flagHeld:
	// output gathered by the kind and not to be written yet.
	out *outbuf
	// While output is pending: unix nanos of the last write progress.
	// Otherwise: of the last write (for heartbeats), or a deadline the
	// kind set (Session.SetDeadline).
	clock  int64
	kind   uint8
	flags  uint8 // the hub's, below
	kflags uint8 // the kind's own (Session.Flags)
	// Unix seconds after which the session's credentials (its token)
	// no longer hold and the sweeper ends it; 0: never. In the slot's
	// padding: the slot stays 72 bytes.
	expires uint32
}

type slot = fdtable.Slot[session]

// The hub's session flags.
const (
	flagResumed   uint8 = 1 << iota // the router answered the resume
	flagMissed                      // ... saying messages were missed
	flagHeld                        // out is gathered output, not to be written
	flagFinished                    // no more deliveries: the last output is being written
	flagDirty                       // a writer gathered output for it this round
	flagPaused                      // a reading kind paused its input (Session.PauseInput)
	flagQueued                      // on the loop's ready list: more input to read
	flagThrottled                   // input paused until the next second (Session.Throttle)
)

// inputs holds, by descriptor, the inbuf of each reading session that
// has one and its per-second counts, in pages made the first time a
// descriptor of theirs needs one: a session slot stays 72 bytes, and a
// gateway whose clients send nothing pays nothing. An element is read and
// written under its session's lock.
type inputs struct {
	mu    sync.Mutex
	pages []atomic.Pointer[[inputPage]input]
}

// input is one descriptor's element: its held input, and the requests
// (Session.Request) and cheap frames (Session.Cheap) its client sent in
// second sec (the low 16 bits of the unix time).
type input struct {
	in    *inbuf
	sec   uint16
	reqs  uint16
	cheap uint8
}

// count returns fd's element with its counts of the current second.
func (h *Hub) count(fd int) *input {
	e := h.inputs.elem(fd)
	if now := uint16(h.clock.Load() / 1e9); e.sec != now {
		e.sec, e.reqs, e.cheap = now, 0, 0
	}
	return e
}

const inputPage = 512

func newInputs(cap int) *inputs {
	return &inputs{pages: make([]atomic.Pointer[[inputPage]input], cap/inputPage+1)}
}

// peek returns fd's inbuf, nil if its page was never made.
func (in *inputs) peek(fd int) *inbuf {
	if p := in.pages[fd/inputPage].Load(); p != nil {
		return p[fd%inputPage].in
	}
	return nil
}

// at returns fd's inbuf pointer, making its page if need be.
func (in *inputs) at(fd int) **inbuf { return &in.elem(fd).in }

// elem returns fd's element, making its page if need be.
func (in *inputs) elem(fd int) *input {
	pg := &in.pages[fd/inputPage]
	p := pg.Load()
	if p == nil {
		in.mu.Lock()
		if p = pg.Load(); p == nil {
			p = new([inputPage]input)
			pg.Store(p)
		}
		in.mu.Unlock()
	}
	return &p[fd%inputPage]
}

// inbuf is a reading session's unused input and what its kind keeps
// across reads. Pooled; only sessions with input held have one.
type inbuf struct {
	b   []byte // read and not yet used
	msg []byte // the kind's (Session.Assembly)
	op  uint8  // the kind's, with msg
	// since is when (unix seconds) what is held began to be incomplete:
	// Config.InputTimeout counts from it.
	since uint32
	// size is the capacity of b and msg counted in Hub.held.
	size int32
}

// account counts in's buffers' capacity in the hub's held input.
func (h *Hub) account(in *inbuf) {
	size := int32(cap(in.b) + cap(in.msg))
	if d := size - in.size; d != 0 {
		h.held.Add(int64(d))
		in.size = size
	}
}

// outbuf is a session's pending output: the bytes, and where each message
// in them ends (so that a session closed with output pending counts the
// messages it loses). Pooled; only sessions with output pending have one.
type outbuf struct {
	b     []byte
	ends  []int32
	since int64 // unix nanos when its oldest byte was put in (Hub.Latencies' outputWait)
}

// scratch is the state of one goroutine that calls Kind methods: buffers,
// and for a writer the sessions it gathered output for this round.
type scratch struct {
	body, out []byte
	// deferred: Session.Write gathers output in the session's outbuf, to
	// be written once at the end of the writer's round.
	deferred bool
	dirty    []uint64
	why      Reason // why the last write closed its session
	due      int    // -1: flushDirty writes everything (the writer stops)
	// A writer's current write delay (adapt), the sessions it holds back
	// for it, and their output.
	delay     time.Duration
	held      lingering
	lingering int
	saturated int           // sweeps in a row the machine was saturated (adapt)
	busy      time.Duration // time spent in rounds since the last adapt
	owed      time.Duration // the longest a batch waited for the writer's previous round since then
	lastEnd   int64         // unix nanos when the writer's last round ended
	since     time.Time     // the last adapt
	sweep     uint64        // the sweep of the last adapt
	w         int           // the writer's index (Hub.delays)
}

// trim drops buffers that grew past their usual size.
func (sc *scratch) trim() {
	if cap(sc.body) > 256<<10 {
		sc.body = nil
	}
	if cap(sc.out) > 256<<10 {
		sc.out = nil
	}
}

// Session is a Kind's handle on one session, valid during the Kind method
// it is passed to.
type Session struct {
	h  *Hub
	sl *slot
	sc *scratch
}

// ID is the id the session is logged in as.
func (s Session) ID() int64 { return s.sl.V.id }

// SetExpires moves the session's end to t (a refreshed token's expiry;
// zero: never).
func (s Session) SetExpires(t time.Time) { s.sl.V.expires = expiry(t) }

// Conn is the session's conn number: generation << 32 | descriptor.
func (s Session) Conn() uint64 { return s.sl.Key() }

// IsOpen reports whether the session is still open (a write can close
// it).
func (s Session) IsOpen() bool { return s.sl.IsOpen() }

// Cursor is a resumable session's position: the last message its client
// has (zero: none yet, from now on).
func (s Session) Cursor() cursor.Cursor { return cursor.Cursor{Epoch: s.sl.V.epoch, Seq: s.sl.V.n} }

// Next counts one more message for a session that is not resumable and
// returns its number: 1, 2, 3...
func (s Session) Next() uint64 { s.sl.V.n++; return s.sl.V.n }

// Head is the last position of the catch-up that follows the resume
// answer.
func (s Session) Head() uint64 { return s.sl.V.head }

// Resumed reports whether the router has answered the session's resume;
// Missed whether it said messages were missed.
func (s Session) Resumed() bool { return s.sl.V.flags&flagResumed != 0 }
func (s Session) Missed() bool  { return s.sl.V.flags&flagMissed != 0 }

// Flags and SetFlags are a byte the kind keeps per session.
func (s Session) Flags() uint8     { return s.sl.V.kflags }
func (s Session) SetFlags(f uint8) { s.sl.V.kflags = f }

// Scratch is a buffer for building a message body, and OutBuf a second
// one for framing it: the calling goroutine's, valid until the Kind
// method returns.
func (s Session) Scratch() *[]byte { return &s.sc.body }
func (s Session) OutBuf() *[]byte  { return &s.sc.out }

// Write writes p, keeping what the socket does not take (within
// Config.MaxPending), and reports whether the session is still open. In
// a writer's round the output is gathered and written once at its end.
func (s Session) Write(p []byte) bool { return s.h.write(s.sl, p, s.sc) }

// Cheap counts one cheap frame from the client (a control frame, an
// empty data frame: input that costs the gateway work and the client
// nothing) and returns how many it sent this second (at most 255). A
// kind closes a client past its rate (ReasonRate).
func (s Session) Cheap() int {
	e := s.h.count(s.sl.FD())
	if e.cheap < 255 {
		e.cheap++
	}
	return int(e.cheap)
}

// Request counts one request from a reading session's client and
// returns how many it made this second (at most 65535): a kind that
// bounds its clients' request rate throttles one past it.
func (s Session) Request() int {
	e := s.h.count(s.sl.FD())
	if e.reqs < 65535 {
		e.reqs++
	}
	return int(e.reqs)
}

// Throttle stops reading the client until the next second (the
// sweeper then reads it again): what it sends meanwhile stays in the
// socket, and TCP slows it. Counted in Stats.Throttled.
func (s Session) Throttle() {
	v := &s.sl.V
	if v.flags&flagThrottled == 0 {
		s.h.throttled.Add(1)
	}
	v.flags |= flagPaused | flagThrottled
}

// Paused reports whether the session's input is paused (PauseInput,
// Throttle).
func (s Session) Paused() bool { return s.sl.V.flags&flagPaused != 0 }

// Heartbeat writes p if nothing was written for quiet, and counts it.
func (s Session) Heartbeat(p []byte, quiet time.Duration, now int64) {
	if quiet > 0 && s.sl.V.out == nil && s.sl.V.clock <= now-int64(quiet) {
		s.h.heartbeats.Add(1)
		s.Write(p)
	}
}

// Idle reports whether no output is pending.
func (s Session) Idle() bool { return s.sl.V.out == nil }

// Flush writes pending output now (at shutdown).
func (s Session) Flush() { s.h.flush(s.sl, s.sc) }

// Gather appends p to the output the kind gathers without writing it (a
// long-poll's answer being built); Gathered returns it, and Release drops
// it.
func (s Session) Gather(p []byte) {
	v := &s.sl.V
	if v.out == nil {
		v.out = s.h.getBuf()
		v.flags |= flagHeld
	}
	v.out.b = append(v.out.b, p...)
}

func (s Session) Gathered() []byte {
	if s.sl.V.out == nil || s.sl.V.flags&flagHeld == 0 {
		return nil
	}
	return s.sl.V.out.b
}

func (s Session) Release() {
	if s.sl.V.flags&flagHeld != 0 {
		s.h.putBuf(s.sl.V.out)
		s.sl.V.out = nil
		s.sl.V.flags &^= flagHeld
	}
}

// Finish ends the session's deliveries: later ones are counted as late
// (the router keeps them for the client's next request), and Kind.Written
// is called once what is written now has gone out.
func (s Session) Finish() { s.sl.V.flags |= flagFinished }

// Finished reports whether Finish was called.
func (s Session) Finished() bool { return s.sl.V.flags&flagFinished != 0 }

// Deadline and SetDeadline keep a time (unix nanos) for the kind while
// the session writes nothing (they share the write clock).
func (s Session) Deadline() int64      { return s.sl.V.clock }
func (s Session) SetDeadline(ns int64) { s.sl.V.clock = ns }

// Assembly is a buffer and a byte a reading kind keeps across Input
// calls (a message arriving in fragments). The hub frees them once the
// buffer is empty, the byte zero and no input is held.
func (s Session) Assembly() (*[]byte, *uint8) {
	in := s.h.inputs.at(s.sl.FD())
	if *in == nil {
		*in = s.h.getIn()
	}
	return &(*in).msg, &(*in).op
}

// PauseInput stops reading the client: what it sends stays in the
// socket (TCP then slows the client) until ResumeInput. A Reader calls
// it when the client has as many requests in flight as it may.
func (s Session) PauseInput() { s.sl.V.flags |= flagPaused }

// ResumeInput reads the client again: the input held, then the socket.
// Called from Hub.With (not from Input).
func (s Session) ResumeInput() {
	if s.sl.V.flags&flagPaused == 0 {
		return
	}
	s.sl.V.flags &^= flagPaused | flagThrottled
	s.h.readInput(s.sl, nil, s.sc)
}

// EndReason is why the session is being ended, in Kind.Shutdown.
func (s Session) EndReason() Reason { return s.sc.why }

// Close closes the session's socket and logs it out.
func (s Session) Close(why Reason) { s.h.close(s.sl, why) }

// Handback ends the session without closing its socket, which goes to
// Config.Handback (or is closed if there is none); why is counted as the
// session's close reason.
func (s Session) Handback(why Reason) { s.h.handback(s.sl, why) }

// write writes p to sl, keeping what the socket does not take; in a
// writer's round (sc.deferred) it gathers p for the round's one write. It
// returns false if sl was closed (sc.why says why).
func (h *Hub) write(sl *slot, p []byte, sc *scratch) bool {
	v := &sl.V
	if v.out != nil || sc.deferred {
		if v.out == nil {
			v.out = h.getBuf() // the clock stays: the time of the last write
		} else if len(v.out.b)+len(p) > min(coalesceMax, h.cfg.MaxPending) && v.flags&flagHeld == 0 {
			h.flush(sl, sc) // enough for one write (or a long round): let the socket take what it can first
			if !sl.IsOpen() {
				return false
			}
			if v.out != nil && len(v.out.b)+len(p) > h.cfg.MaxPending {
				h.closeFor(sl, ReasonSlow, sc)
				return false
			}
			if v.out == nil {
				return h.write(sl, p, sc)
			}
		}
		v.out.b = append(v.out.b, p...)
		if sc.deferred && v.flags&flagDirty == 0 {
			v.flags |= flagDirty
			sc.dirty = append(sc.dirty, sl.Key())
		}
		return true
	}
	n, err := writeFD(sl.FD(), p)
	if err != nil {
		h.closeFor(sl, ReasonWriteError, sc)
		return false
	}
	h.bytes.Add(uint64(n))
	v.clock = h.clock.Load()
	if n < len(p) {
		if len(p)-n > h.cfg.MaxPending {
			h.closeFor(sl, ReasonSlow, sc)
			return false
		}
		v.out = h.getBuf()
		v.out.b = append(v.out.b, p[n:]...)
		v.clock = time.Now().UnixNano()
	}
	return true
}

// writes counts write(2) calls on session sockets, every hub of the
// process together.
var writes atomic.Uint64

// closeFor closes sl for why and tells the writing goroutine.
func (h *Hub) closeFor(sl *slot, why Reason, sc *scratch) {
	sc.why = why
	h.close(sl, why)
}

// writeFD writes as much of p as the socket takes without blocking.
func writeFD(fd int, p []byte) (int, error) {
	writes.Add(1)
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == nil:
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return done, nil
		default:
			return done, err
		}
	}
	return done, nil
}

// flush writes sl's pending output; when all of it is out, the kind hears
// so (Kind.Written).
func (h *Hub) flush(sl *slot, sc *scratch) {
	v := &sl.V
	if v.out == nil || v.flags&flagHeld != 0 {
		return
	}
	o := v.out
	n, err := writeFD(sl.FD(), o.b)
	if err != nil {
		h.closeFor(sl, ReasonWriteError, sc)
		return
	}
	h.bytes.Add(uint64(n))
	if n == len(o.b) {
		h.outputWait.Observe(time.Duration(time.Now().UnixNano() - o.since))
		h.putBuf(o)
		v.out = nil
		v.clock = h.clock.Load()
		h.kinds[v.kind].Written(Session{h, sl, sc})
		return
	}
	if n > 0 {
		o.b = o.b[:copy(o.b, o.b[n:])]
		k := 0
		for k < len(o.ends) && int(o.ends[k]) <= n {
			k++
		}
		o.ends = o.ends[:copy(o.ends, o.ends[k:])]
		for i := range o.ends {
			o.ends[i] -= int32(n)
		}
		v.clock = time.Now().UnixNano()
	}
}

func (h *Hub) getBuf() *outbuf {
	o := h.pool.Get().(*outbuf)
	o.b, o.ends, o.since = o.b[:0], o.ends[:0], time.Now().UnixNano()
	return o
}

// putBuf gives o back to the pool unless it grew large (a slow client's
// output): those go to the garbage collector, so the pool holds small
// buffers only.
func (h *Hub) putBuf(o *outbuf) {
	if o != nil && cap(o.b) <= 8<<10 && cap(o.ends) <= 256 {
		h.pool.Put(o)
	}
}

func (h *Hub) getIn() *inbuf {
	in := h.inPool.Get().(*inbuf)
	in.b, in.msg, in.op = in.b[:0], in.msg[:0], 0
	in.since = uint32(h.clock.Load() / 1e9)
	h.account(in)
	return in
}

// putIn takes in's buffers out of the held input and gives it back to
// the pool unless it grew large.
func (h *Hub) putIn(in *inbuf) {
	if in == nil {
		return
	}
	h.held.Add(-int64(in.size))
	in.size = 0
	if cap(in.b) <= 8<<10 && cap(in.msg) <= 8<<10 {
		h.inPool.Put(in)
	}
}

// end frees sl's slot and logs the session out. sl's lock must be held.
func (h *Hub) end(sl *slot, why Reason) {
	v := &sl.V
	conn := sl.Key()
	h.table.Free(sl)
	if v.out != nil && v.flags&flagHeld == 0 && len(v.out.ends) > 0 {
		h.lost[why].Add(uint64(len(v.out.ends)))
	}
	h.putBuf(v.out)
	v.out = nil
	if h.inputs != nil {
		if in := h.inputs.at(sl.FD()); *in != nil {
			h.putIn(*in)
			*in = nil
		}
	}
	h.open.Add(-1)
	h.byKind[v.kind].Add(-1)
	h.closes[why].Add(1)
	if h.listener != nil {
		h.listener.Closed(conn, v.id)
	}
	if why != ReasonPeer && why != ReasonShutdown && why != ReasonAnswered && h.log.Core().Enabled(zap.DebugLevel) {
		h.log.Debug("session closed", zap.Int64("id", v.id), zap.Uint64("conn", conn), zap.Stringer("reason", why))
	}
}

// close closes sl's socket and ends the session.
func (h *Hub) close(sl *slot, why Reason) {
	if !sl.IsOpen() {
		return
	}
	unix.Close(sl.FD())
	h.releasePeer(h.takePeer(sl))
	h.end(sl, why)
}

// handback ends the session and hands its socket to Config.Handback.
func (h *Hub) handback(sl *slot, why Reason) {
	if !sl.IsOpen() {
		return
	}
	if h.cfg.Handback == nil {
		h.close(sl, why)
		return
	}
	fd := sl.FD()
	h.poller.Remove(fd)
	peer := h.takePeer(sl)
	h.end(sl, why)
	h.cfg.Handback(fd, peer)
}
