package router

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/wire"
)

// Config configures a Router.
type Config struct {
	// NATSURL joins an existing NATS server or cluster. Default "": start
	// an embedded nats-server configured by Embedded.
	NATSURL string
	// Embedded configures the embedded server (default listen address
	// 127.0.0.1:4222).
	Embedded embeddednats.Config
	// AdminAddr is the admin HTTP address. Default "127.0.0.1:8001";
	// "off" disables it.
	AdminAddr string
	// GatewayTimeout forgets a gateway (and purges its logins) when no
	// frame came from it for this long. Default 3s; gateways send a
	// heartbeat every second.
	GatewayTimeout time.Duration
	// ConnectTimeout bounds the wait for NATSURL at start. Default 10s.
	ConnectTimeout time.Duration
	// Retention bounds the history kept for resumable (long-poll and SSE)
	// clients; see retention.Config for its defaults.
	Retention retention.Config
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Embedded:       embeddednats.DefaultConfig(),
		AdminAddr:      "127.0.0.1:8001",
		GatewayTimeout: 3 * time.Second,
		ConnectTimeout: 10 * time.Second,
		Retention:      retention.DefaultConfig(),
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.GatewayTimeout < 100*time.Millisecond {
		return fmt.Errorf("router: gateway timeout %s is below 100ms", c.GatewayTimeout)
	}
	if err := c.Retention.Validate(); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}

// peer is a gateway the router knows: its name, down subject and the
// index its logins carry in the registry.
type peer struct {
	name     string
	subject  string
	idx      uint32
	instance uint64
	lastSeen atomic.Int64
	// The fields below are only touched with Router.upMu held.
	conns      int64
	mismatches int
	resyncAt   time.Time // when a resync was last asked; zero when none pending
}

// Router routes sends to the gateways holding the ids. Create it with New,
// run it with Run.
type Router struct {
	cfg   Config
	log   *zap.Logger
	reg   *registry.Registry
	store *retention.Store
	ns    *embeddednats.Server
	nc    *nats.Conn

	upMu  sync.Mutex // serializes gateway updates and purges
	upDec wire.Decoder
	upRec wire.Record
	upBuf []byte   // resume answers
	one   []uint64 // one conn

	gwMu     sync.RWMutex
	gwByName map[string]*peer
	gwByIdx  map[uint32]*peer
	nextIdx  uint32

	batches sync.Pool // *sendBatch

	sent, delivered, void, logins, logouts, resyncs, purges, badFrames, stale atomic.Uint64
	resumes, missed, caughtUp, kept                                           atomic.Uint64

	metrics *obs.Metrics
	admin   *obs.Admin
	subs    []*nats.Subscription
}

// New starts the router's NATS side (embedded server or connection) and its
// admin server. Call Run to serve and Close (or cancel Run) to stop.
func New(cfg Config) (*Router, error) {
	def := DefaultConfig()
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = def.AdminAddr
	}
	if cfg.GatewayTimeout == 0 {
		cfg.GatewayTimeout = def.GatewayTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = def.ConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store, err := retention.NewStore(cfg.Retention)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r := &Router{
		cfg:      cfg,
		log:      cfg.Logger,
		reg:      registry.New(),
		store:    store,
		gwByName: make(map[string]*peer),
		gwByIdx:  make(map[uint32]*peer),
		one:      make([]uint64, 1),
	}
	r.reg.OnIdle(func(id int64) { store.Idle(id, time.Now().UnixNano()) })
	r.batches.New = func() any {
		b := &sendBatch{r: r, frames: make(map[uint32]*[]byte)}
		b.routeFn = b.route
		return b
	}
	var more []nats.Option
	url := cfg.NATSURL
	if url == "" {
		ecfg := cfg.Embedded
		if ecfg.Logger == nil {
			ecfg.Logger = cfg.Logger
		}
		ns, err := embeddednats.Start(ecfg)
		if err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
		r.ns = ns
		url = ns.ClientURL()
		more = append(more, ns.InProcess())
		r.log.Info("embedded nats started", zap.String("url", url))
	}
	nc, err := natsconn.Connect(url, natsconn.Options{
		Name: "comet-router", Retry: cfg.ConnectTimeout, Reconnect: true, Log: r.log, More: more,
	})
	if err != nil {
		r.ns.Shutdown()
		return nil, fmt.Errorf("router: %w", err)
	}
	r.nc = nc

	upSub, err := nc.Subscribe(wire.SubjectUp, r.handleUp)
	if err == nil {
		r.subs = append(r.subs, upSub)
		var sendSub *nats.Subscription
		sendSub, err = nc.QueueSubscribe(wire.SubjectSend, wire.QueueRouters, r.handleSend)
		r.subs = append(r.subs, sendSub)
	}
	if err == nil {
		for _, s := range r.subs {
			s.SetPendingLimits(-1, 1<<30)
		}
		err = nc.Flush()
	}
	if err != nil {
		r.closeNATS()
		return nil, fmt.Errorf("router: subscribe: %w", err)
	}

	r.metrics = newMetrics(r)
	if cfg.AdminAddr != "off" {
		a, err := obs.ListenAdmin(cfg.AdminAddr, r.adminMux(), r.log)
		if err != nil {
			r.closeNATS()
			return nil, fmt.Errorf("router: %w", err)
		}
		r.admin = a
		r.log.Info("admin listening", zap.Stringer("addr", a.Addr()))
	}
	return r, nil
}

// NATSURL is the URL of the NATS server the router uses.
func (r *Router) NATSURL() string {
	if r.ns != nil {
		return r.ns.ClientURL()
	}
	return r.nc.ConnectedUrl()
}

// AdminAddr is the admin server's bound address, or "" if disabled.
func (r *Router) AdminAddr() string {
	if r.admin == nil {
		return ""
	}
	return r.admin.Addr().String()
}

// Registry exposes the registry (read-only use).
func (r *Router) Registry() *registry.Registry { return r.reg }

// Run serves until done is closed, forgetting silent gateways, then shuts
// down: the NATS connection is drained, the admin server and the embedded
// NATS server stopped.
func (r *Router) Run(done <-chan struct{}) error {
	t := time.NewTicker(max(r.cfg.GatewayTimeout/4, 25*time.Millisecond))
	defer t.Stop()
	natsDown := r.nc.StatusChanged(nats.CLOSED)
	for {
		select {
		case <-done:
			return r.Close()
		case <-natsDown:
			r.Close()
			return errors.New("router: nats connection closed")
		case now := <-t.C:
			r.sweep(now)
			r.store.Sweep(now.UnixNano(), r.reg.Held)
		}
	}
}

func (r *Router) closeNATS() {
	natsconn.Drain(r.nc, 5*time.Second)
	r.ns.Shutdown()
}

// Close stops the router (Run calls it when done closes).
func (r *Router) Close() error {
	var err error
	if r.admin != nil {
		err = r.admin.Shutdown()
		r.admin = nil
	}
	r.closeNATS()
	r.log.Info("router stopped")
	return err
}

// sweep forgets gateways that went silent and repeats resyncs that were
// not answered.
func (r *Router) sweep(now time.Time) {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	limit := now.Add(-r.cfg.GatewayTimeout).UnixNano()
	r.gwMu.RLock()
	var gone, resync []*peer
	for _, gw := range r.gwByIdx {
		if gw.lastSeen.Load() < limit {
			gone = append(gone, gw)
		} else if !gw.resyncAt.IsZero() && now.Sub(gw.resyncAt) > r.cfg.GatewayTimeout {
			resync = append(resync, gw)
		}
	}
	r.gwMu.RUnlock()
	for _, gw := range gone {
		n := r.forget(gw)
		r.log.Warn("gateway silent, forgotten", zap.String("gateway", gw.name), zap.Int("conns", n),
			zap.Duration("timeout", r.cfg.GatewayTimeout))
	}
	for _, gw := range resync {
		r.askResync(gw)
	}
}

// forget purges gw's logins and drops it. upMu must be held.
func (r *Router) forget(gw *peer) int {
	n := r.reg.LogoutGateway(gw.idx)
	r.purges.Add(1)
	r.gwMu.Lock()
	if r.gwByName[gw.name] == gw {
		delete(r.gwByName, gw.name)
	}
	delete(r.gwByIdx, gw.idx)
	r.gwMu.Unlock()
	return n
}

// askResync asks gw to send every live login again. upMu must be held.
func (r *Router) askResync(gw *peer) {
	gw.resyncAt = time.Now()
	gw.mismatches = 0
	r.resyncs.Add(1)
	frame := wire.AppendResync(wire.AppendHeader(make([]byte, 0, 4), wire.KindDown))
	if err := r.nc.Publish(gw.subject, frame); err != nil {
		r.log.Warn("resync request failed", zap.String("gateway", gw.name), zap.Error(err))
	}
}

// handleUp applies one gateway frame: logins, logouts, heartbeats.
func (r *Router) handleUp(m *nats.Msg) {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	h, err := r.upDec.Reset(m.Data)
	if err != nil || h.Kind != wire.KindUp {
		r.badFrames.Add(1)
		r.log.Warn("bad frame on up subject", zap.Error(err), zap.Stringer("kind", h.Kind))
		return
	}
	now := time.Now()
	r.gwMu.RLock()
	gw := r.gwByName[h.Gateway]
	r.gwMu.RUnlock()
	fresh := false
	if gw == nil || gw.instance != h.Instance {
		if gw != nil {
			n := r.forget(gw)
			r.log.Info("gateway restarted", zap.String("gateway", gw.name), zap.Int("purged", n))
		}
		gw = r.addGateway(h.Gateway, h.Instance)
		fresh = true
	}
	gw.lastSeen.Store(now.UnixNano())
	rec := &r.upRec
	first := true
	for r.upDec.Next(rec) {
		if first && fresh && rec.Op != wire.OpHello && rec.Op != wire.OpBye {
			// A gateway we do not know that is not starting: we (the
			// router) restarted or forgot it. Ask for its logins.
			r.log.Info("unknown gateway, asking for its logins", zap.String("gateway", gw.name))
			r.askResync(gw)
		}
		first = false
		switch rec.Op {
		case wire.OpHello:
			if !fresh || gw.conns != 0 {
				gw.conns = 0
				r.reg.LogoutGateway(gw.idx)
			}
			gw.resyncAt = time.Time{}
			gw.mismatches = 0
			r.log.Info("gateway hello", zap.String("gateway", gw.name), zap.Uint64("conns", rec.Count))
		case wire.OpLogin:
			if newConn, newPair := r.reg.Login(rec.ID, registry.Conn{GW: gw.idx, Conn: rec.Conn}); newPair {
				r.logins.Add(1)
				if newConn {
					gw.conns++
				}
			}
		case wire.OpResume:
			r.resume(gw, rec.Conn, rec.ID, cursor.Cursor{Epoch: rec.Epoch, Seq: rec.Seq})
		case wire.OpLogout:
			if r.reg.Logout(registry.Conn{GW: gw.idx, Conn: rec.Conn}) > 0 {
				gw.conns--
				r.logouts.Add(1)
			}
		case wire.OpHeartbeat:
			if int64(rec.Count) != gw.conns && gw.resyncAt.IsZero() {
				// Frames are applied in the order the gateway wrote
				// them, so a mismatch means a frame was lost.
				gw.mismatches++
				r.log.Warn("gateway login count mismatch", zap.String("gateway", gw.name),
					zap.Uint64("gateway_says", rec.Count), zap.Int64("router_has", gw.conns))
				r.askResync(gw)
			}
		case wire.OpBye:
			n := r.forget(gw)
			r.log.Info("gateway bye", zap.String("gateway", gw.name), zap.Int("purged", n))
		}
	}
	if err := r.upDec.Err(); err != nil {
		r.badFrames.Add(1)
		r.log.Warn("bad frame from gateway", zap.String("gateway", gw.name), zap.Error(err))
	}
}

// resume logs conn in as id and sends the gateway, in one down frame
// ordered before any later delivery to conn, where the conn's client
// continues and every kept message from there. upMu must be held.
func (r *Router) resume(gw *peer, conn uint64, id int64, cur cursor.Cursor) {
	r.store.Resume(id, cur, func(res retention.Resumed, kept []retention.Entry) {
		if newConn, newPair := r.reg.Login(id, registry.Conn{GW: gw.idx, Conn: conn}); newPair {
			r.logins.Add(1)
			if newConn {
				gw.conns++
			}
		}
		r.resumes.Add(1)
		if res.Missed {
			r.missed.Add(1)
		}
		f := wire.AppendResumed(wire.AppendHeader(r.upBuf[:0], wire.KindDown), conn, res.Epoch, res.From, res.Head, res.Missed)
		r.one[0] = conn
		for _, e := range kept {
			if len(f) >= maxDownFrame {
				r.publishDown(gw, f)
				f = wire.AppendHeader(f[:0], wire.KindDown)
			}
			f = wire.AppendDeliverAt(f, res.Epoch, e.Seq, e.Msg, r.one)
		}
		r.caughtUp.Add(uint64(len(kept)))
		r.delivered.Add(uint64(len(kept)))
		r.publishDown(gw, f)
		if cap(f) <= 4*maxDownFrame {
			r.upBuf = f[:0]
		}
	})
}

// publishDown sends a down frame to gw; a failure is logged.
func (r *Router) publishDown(gw *peer, f []byte) {
	if err := r.nc.Publish(gw.subject, f); err != nil {
		r.log.Warn("deliver failed", zap.String("gateway", gw.name), zap.Error(err))
	}
}

func (r *Router) addGateway(name string, instance uint64) *peer {
	r.gwMu.Lock()
	defer r.gwMu.Unlock()
	r.nextIdx++
	gw := &peer{name: name, subject: wire.DownSubject(name), idx: r.nextIdx, instance: instance}
	r.gwByName[name] = gw
	r.gwByIdx[gw.idx] = gw
	r.log.Info("gateway joined", zap.String("gateway", name), zap.Uint64("instance", instance))
	return gw
}

// handleSend routes one sender frame; a request gets an ack.
func (r *Router) handleSend(m *nats.Msg) {
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.reset()
	b.now = time.Now().UnixNano()
	h, err := b.dec.Reset(m.Data)
	if err == nil && h.Kind != wire.KindSend {
		err = fmt.Errorf("%s frame on the send subject", h.Kind)
	}
	if err == nil {
		for b.dec.Next(&b.rec) {
			b.send(b.rec.ID, b.rec.Msg)
		}
		err = b.dec.Err()
	}
	b.flush()
	if err != nil {
		r.badFrames.Add(1)
		r.log.Warn("bad send frame", zap.Error(err))
	}
	if m.Reply != "" {
		ack := wire.AppendAck(wire.AppendHeader(make([]byte, 0, 32), wire.KindAck), b.accepted, b.delivered, b.void)
		if err := r.nc.Publish(m.Reply, ack); err != nil {
			r.log.Warn("ack failed", zap.Error(err))
		}
	}
}

// Send routes msg to every conn logged in as id and returns how many
// copies went out. It is what POST /send/{id} calls.
func (r *Router) Send(id int64, msg []byte) uint64 {
	n, _ := r.SendKept(id, msg)
	return n
}

// SendKept is Send that also says whether msg got a position in id's
// history (kept for long-poll and SSE clients that resume).
func (r *Router) SendKept(id int64, msg []byte) (delivered uint64, kept bool) {
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.reset()
	b.now = time.Now().UnixNano()
	b.send(id, msg)
	b.flush()
	return b.delivered, b.positioned > 0
}

// maxDownFrame bounds a delivery frame; NATS's default max payload is 1 MiB.
const maxDownFrame = 512 << 10

// sendBatch gathers the deliveries of one send frame per gateway, so each
// gateway gets one NATS message per frame and each message is encoded once
// per gateway, whatever the number of its conns.
type sendBatch struct {
	r      *Router
	dec    wire.Decoder
	rec    wire.Record
	conns  []registry.Conn
	group  []uint64
	frames map[uint32]*[]byte

	// The send being routed, for route (a method value made once: no
	// allocation per send).
	id      int64
	msg     []byte
	now     int64
	routeFn func(epoch, seq uint64)

	accepted, delivered, void uint64
	positioned                uint64 // sends given a position in their id's history
}

func (b *sendBatch) reset() {
	b.accepted, b.delivered, b.void, b.positioned = 0, 0, 0, 0
}

func (b *sendBatch) send(id int64, msg []byte) {
	b.accepted++
	b.r.sent.Add(1)
	b.id, b.msg = id, msg
	b.r.store.Append(id, msg, b.now, b.routeFn)
	b.msg = nil
}

// route writes the send being routed into the frames of the gateways
// holding its id; epoch and seq are its position (0 when its id has no
// history). It runs with the id's history lock held (see Store.Append).
func (b *sendBatch) route(epoch, seq uint64) {
	r := b.r
	id, msg := b.id, b.msg
	if epoch != 0 {
		b.positioned++
	}
	b.conns = r.reg.Lookup(id, b.conns[:0])
	if len(b.conns) == 0 {
		if epoch != 0 {
			r.kept.Add(1) // nobody holds it now, but a resuming client will get it
			return
		}
		b.void++
		r.void.Add(1)
		return
	}
	if len(b.conns) > 1 {
		slices.SortFunc(b.conns, func(x, y registry.Conn) int { return int(x.GW) - int(y.GW) })
	}
	for i := 0; i < len(b.conns); {
		gw := b.conns[i].GW
		b.group = b.group[:0]
		for ; i < len(b.conns) && b.conns[i].GW == gw; i++ {
			b.group = append(b.group, b.conns[i].Conn)
		}
		f := b.frames[gw]
		if f == nil {
			f = new([]byte)
			b.frames[gw] = f
		}
		if len(*f) == 0 {
			*f = wire.AppendHeader(*f, wire.KindDown)
		}
		if epoch != 0 {
			*f = wire.AppendDeliverAt(*f, epoch, seq, msg, b.group)
		} else {
			*f = wire.AppendDeliver(*f, msg, b.group)
		}
		b.delivered += uint64(len(b.group))
		r.delivered.Add(uint64(len(b.group)))
		if len(*f) >= maxDownFrame {
			b.publish(gw, f)
		}
	}
}

func (b *sendBatch) flush() {
	for gw, f := range b.frames {
		if len(*f) > 0 {
			b.publish(gw, f)
		}
		if cap(*f) > 4*maxDownFrame {
			delete(b.frames, gw)
		}
	}
}

func (b *sendBatch) publish(gwIdx uint32, f *[]byte) {
	r := b.r
	r.gwMu.RLock()
	gw := r.gwByIdx[gwIdx]
	r.gwMu.RUnlock()
	if gw == nil {
		r.stale.Add(1) // the gateway was forgotten while we routed
	} else {
		r.publishDown(gw, *f)
	}
	*f = (*f)[:0]
}
