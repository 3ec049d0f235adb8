package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/wire"
)

// maxUpFrame bounds a gateway-to-router frame; NATS's default max payload
// is 1 MiB.
const maxUpFrame = 256 << 10

// link is the gateway's side of the router protocol. It batches logins and
// logouts into up frames (one NATS message carries every update made while
// the previous one was being published), sends a heartbeat every second,
// and applies deliveries and resync requests from the router.
type link struct {
	nc       *nats.Conn
	name     string
	instance uint64
	log      *zap.Logger
	hub      *hub.Hub

	mu     sync.Mutex
	frames [][]byte // full frames waiting to be published
	cur    []byte   // the frame being filled
	live   uint64   // logins announced and not yet logged out
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	downDec wire.Decoder
	downRec wire.Record

	published, badFrames, publishErrs atomic.Uint64
}

func newLink(nc *nats.Conn, name string, instance uint64, log *zap.Logger) *link {
	return &link{
		nc: nc, name: name, instance: instance, log: log,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// start subscribes to the gateway's down subject, says hello and starts
// the publisher and heartbeat.
func (l *link) start(hub *hub.Hub) error {
	l.hub = hub
	sub, err := l.nc.Subscribe(wire.DownSubject(l.name), l.handleDown)
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, 1<<30)
	if err := l.nc.Flush(); err != nil {
		return err
	}
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendHello(l.cur, 0)
	l.mu.Unlock()
	l.signal()
	l.wg.Add(1)
	go l.publisher()
	return nil
}

// header starts a new frame if none is open. l.mu must be held.
func (l *link) header() {
	if len(l.cur) == 0 {
		l.cur = wire.AppendUpHeader(l.cur, l.name, l.instance)
	}
}

// rotate moves a full frame aside. l.mu must be held.
func (l *link) rotate() {
	if len(l.cur) >= maxUpFrame {
		l.frames = append(l.frames, l.cur)
		l.cur = nil
	}
}

func (l *link) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Opened implements hub.Listener: the conn logs in as id.
func (l *link) Opened(conn uint64, id int64) {
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendLogin(l.cur, conn, id)
	l.live++
	l.rotate()
	l.mu.Unlock()
	l.signal()
}

// Resume implements hub.Listener: the conn logs in as id, resuming
// after cur.
func (l *link) Resume(conn uint64, id int64, cur cursor.Cursor) {
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendResume(l.cur, conn, id, cur.Epoch, cur.Seq)
	l.live++
	l.rotate()
	l.mu.Unlock()
	l.signal()
}

// Closed implements hub.Listener: the conn logs out.
func (l *link) Closed(conn uint64) {
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendLogout(l.cur, conn)
	l.live--
	l.rotate()
	l.mu.Unlock()
	l.signal()
}

func (l *link) publisher() {
	defer l.wg.Done()
	hb := time.NewTicker(time.Second)
	defer hb.Stop()
	for {
		select {
		case <-l.kick:
		case <-hb.C:
			l.mu.Lock()
			l.header()
			l.cur = wire.AppendHeartbeat(l.cur, l.live)
			l.mu.Unlock()
		case <-l.done:
			l.flush()
			return
		}
		l.flush()
	}
}

// flush publishes every pending frame, in order.
func (l *link) flush() {
	l.mu.Lock()
	frames := l.frames
	if len(l.cur) > 0 {
		frames = append(frames, l.cur)
	}
	l.frames, l.cur = nil, nil
	l.mu.Unlock()
	for _, f := range frames {
		if err := l.nc.Publish(wire.SubjectUp, f); err != nil {
			l.publishErrs.Add(1)
			l.log.Warn("publish to router failed", zap.Error(err))
			continue
		}
		l.published.Add(1)
	}
}

// handleDown applies deliveries and resync requests from the router.
func (l *link) handleDown(m *nats.Msg) {
	h, err := l.downDec.Reset(m.Data)
	if err == nil && h.Kind != wire.KindDown {
		err = errWrongKind
	}
	if err != nil {
		l.badFrames.Add(1)
		l.log.Warn("bad frame from router", zap.Error(err))
		return
	}
	for l.downDec.Next(&l.downRec) {
		switch l.downRec.Op {
		case wire.OpDeliver:
			l.hub.Deliver(l.downRec.Msg, l.downRec.Conns)
		case wire.OpDeliverAt:
			l.hub.DeliverAt(l.downRec.Epoch, l.downRec.Seq, l.downRec.Msg, l.downRec.Conns)
		case wire.OpResumed:
			r := &l.downRec
			l.hub.Resumed(r.Conn, r.Epoch, r.Seq, r.Head, r.Missed)
		case wire.OpResync:
			l.resync()
		}
	}
	if err := l.downDec.Err(); err != nil {
		l.badFrames.Add(1)
		l.log.Warn("bad frame from router", zap.Error(err))
	}
}

// resync sends a hello and then every live login, ordered with concurrent
// opens and closes (see hub.Hub.Snapshot).
func (l *link) resync() {
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendHello(l.cur, l.live)
	l.mu.Unlock()
	n := 0
	l.hub.Snapshot(func(conn uint64, id int64, resumable bool, cur cursor.Cursor) {
		l.mu.Lock()
		l.header()
		if resumable {
			l.cur = wire.AppendResume(l.cur, conn, id, cur.Epoch, cur.Seq)
		} else {
			l.cur = wire.AppendLogin(l.cur, conn, id)
		}
		l.rotate()
		l.mu.Unlock()
		n++
	})
	l.signal()
	l.log.Info("resync sent to router", zap.Int("logins", n))
}

// stop says bye, publishes what is pending and drains the connection.
func (l *link) stop() {
	l.mu.Lock()
	l.header()
	l.cur = wire.AppendBye(l.cur)
	l.mu.Unlock()
	close(l.done)
	l.wg.Wait()
	if err := l.nc.Drain(); err != nil {
		l.nc.Close()
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	l.nc.Close()
}
