package router

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/latency"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/request"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// Router routes sends to the gateways holding the ids. Create it with
// New, run it with Run; Close (or the end of Run) stops it.
//
// Each job is its own type (docs/ARCHITECTURE.md): the gateway table
// (gateways), their up frames and resumes (members), flow control and
// acks (flows), the fan-out of one send frame (sendBatch), stored
// subscriptions (storedSubs), presence (presence), and, when configured,
// the lease (lead) with its history log (histLog) and the partition
// (partition), whose methods are safe on nil when the feature is off.
type Router struct {
	cfg    Config
	log    *zap.Logger
	name   string // this router's name in its done subject and the lease
	reg    *registry.Registry
	store  *retention.Store
	topics *topics.Index
	gws    *gateways
	fl     *flows
	up     *members
	frames *frameTable
	pres   *presence
	stored *storedSubs      // nil without JetStream
	hooks  *webhooks        // nil without -webhook
	thist  *topichist.Store // nil without -topic-history
	lead   *lead            // nil alone
	hist   *histLog         // the lead's (nil alone)
	part   *partition       // nil unpartitioned
	// fwd: a standby's forwards of HTTP sends to the leader.
	fwd     *request.Client
	batches sync.Pool // *sendBatch
	c       counters

	tmpStore string
	ns       *embeddednats.Server
	nc       *nats.Conn

	// The senders' frames, the gateways' client requests (WebSocket
	// publish, send) and, partitioned, this partition's send and route
	// subjects.
	senders senders

	stopOnce sync.Once
	stopErr  error
	metrics  *obs.Metrics
	admin    *obs.Admin
}

// counters are the router's counts (GET /stats, /metrics); each part
// adds to its own.
type counters struct {
	sent, void, logins, logouts, resyncs, purges, badFrames atomic.Uint64
	// Down frames a live gateway had not confirmed at the deliver
	// timeout (their copies counted lost; some come late), and those
	// NATS said nobody subscribed to (the gateway's connection gone).
	unconfirmed, unheard            atomic.Uint64
	resumes, missed, caughtUp, kept atomic.Uint64
	// Copies: routed to gateways, then delivered or dropped by reason
	// (the gateway's done records), dup and late (in delivered).
	routed, delivered, dups, late            atomic.Uint64
	droppedGone, droppedSlow, droppedGateway atomic.Uint64
	waits, refused, unknownDone              atomic.Uint64
	published, broadcasts, topicVoid         atomic.Uint64
	presenceSent, kicks                      atomic.Uint64
	// Topic history: messages kept, and copies of them given to
	// joining conns (rewind).
	topicKept, rewound atomic.Uint64
	// Stage latencies: routing one send frame (from its arrival to its
	// down frames published, waiting for window room included), and a
	// down frame's flight (from its publish to the gateway's done record).
	route, confirm latency.Histogram
	// Up frames from gateways partitioned otherwise than this router
	// (members.handleStray).
	strayUp atomic.Uint64
}

// New starts the router's NATS side (embedded server or connection) and
// its admin server. Call Run to serve and Close (or cancel Run) to stop.
// When it fails it closes what it opened: no goroutine, connection,
// listener or temporary store outlives a failed New.
func New(cfg Config) (*Router, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store, err := retention.NewStore(cfg.Retention)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	reg := registry.New()
	var rb [8]byte
	rand.Read(rb[:])
	r := &Router{
		cfg: cfg, log: cfg.Logger, name: fmt.Sprintf("r%x", rb), reg: reg, store: store,
		topics: topics.New(reg.Held), gws: newGateways(), frames: newFrameTable(),
		part: newPartition(cfg.Partitions, cfg.Partition),
	}
	if r.thist, err = topichist.New(cfg.TopicHistory); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.fl = newFlows(r.gws, r.frames, &r.c, cfg.Window, wire.DoneSubject(r.name), r.log)
	r.batches.New = func() any { return newSendBatch(r) }
	if r.part != nil {
		r.topics.SetPartition(cfg.Partition, cfg.Partitions)
	}
	opened := false
	defer func() {
		if !opened {
			r.Close()
		}
	}()
	if err := r.connect(); err != nil {
		return nil, err
	}
	var owns func(int64) bool
	if r.part != nil {
		owns = r.part.owns
	}
	if r.stored, err = openStored(r.nc, cfg.StoreReplicas, r.ns != nil, owns, r.topics, r.log); err != nil {
		return nil, err
	}
	if cfg.Redundant {
		if r.stored == nil {
			return nil, errors.New("router: -redundant needs JetStream on the NATS server (for the lease and the history log)")
		}
		if r.lead, err = openLead(r); err != nil {
			return nil, err
		}
		r.hist = r.lead.hist
		if r.fwd, err = request.New(r.nc, request.Config{Timeout: cfg.answerIn()}); err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
	}
	if err := r.part.start(r.nc, r.fl, cfg.answerIn(), r.log); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.up = &members{gws: r.gws, fl: r.fl, reg: reg, store: store, topics: r.topics, thist: r.thist, stored: r.stored, lead: r.lead, hist: r.hist,
		part: r.part, nc: r.nc, log: r.log, c: &r.c, timeout: cfg.GatewayTimeout, deliverTimeout: cfg.DeliverTimeout, one: make([]uint64, 1)}
	r.pres = &presence{topics: r.topics, stored: r.stored, reg: reg, part: r.part, lead: r.lead, nc: r.nc, log: r.log, c: &r.c, send: r.sendPresence}
	if r.hooks, err = openWebhooks(r); err != nil {
		return nil, err
	}
	reg.OnIdle(func(id int64) {
		store.Idle(id, time.Now().UnixNano())
		r.stored.changed(id)
		r.hooks.changed(id, false)
	})
	reg.OnActive(func(id int64) {
		r.stored.changed(id)
		r.hooks.changed(id, true)
	})
	store.OnDrop(r.topics.ForgetID)
	if err := r.subscribe(); err != nil {
		return nil, fmt.Errorf("router: subscribe: %w", err)
	}
	if r.stored != nil {
		// Only a router that holds every id's subscriptions and routes
		// (not a partition's, not a standby) compacts their stream.
		go r.stored.compactor(func() bool { return r.part == nil && !r.lead.standby() })
	}
	r.metrics = newMetrics(r)
	if cfg.AdminAddr != "off" {
		adminToken, err := obs.ReadToken(cfg.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("router: admin %w", err)
		}
		a, err := obs.ListenAdmin(cfg.AdminAddr, obs.WithHealth(obs.RequireBearer(adminToken, r.adminMux()), r.Ready), r.log)
		if err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
		r.admin = a
		r.log.Info("admin listening", zap.Stringer("addr", a.Addr()))
	}
	opened = true
	return r, nil
}

// answerIn is how long any router takes at most to answer a send frame.
func (c *Config) answerIn() time.Duration { return c.DeliverTimeout + c.OverloadWait + time.Second }

// connect starts the embedded NATS server (unless Config.NATSURL) and
// connects to it.
func (r *Router) connect() error {
	cfg := r.cfg
	more, err := cfg.NATSAuth.Options()
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	url := cfg.NATSURL
	if url == "" {
		ecfg := cfg.Embedded
		if cfg.NATSAuth.TokenFile != "" && ecfg.ConfigFile == "" {
			if ecfg.Token, err = obs.ReadToken(cfg.NATSAuth.TokenFile); err != nil {
				return fmt.Errorf("router: nats token: %w", err)
			}
		}
		if ecfg.Logger == nil {
			ecfg.Logger = cfg.Logger
		}
		// Exposed, it must ask for credentials (a -nats-config without
		// users would not).
		ecfg.RequireAuth = ecfg.RequireAuth || !cfg.InsecureOpen && !auth.IsLoopback(ecfg.Addr)
		ecfg.StoreDir = cfg.StoreDir
		if ecfg.StoreDir == "" {
			if r.tmpStore, err = os.MkdirTemp("", "comet-router-store-"); err != nil {
				return fmt.Errorf("router: %w", err)
			}
			ecfg.StoreDir = r.tmpStore
		}
		ns, err := embeddednats.Start(ecfg)
		if err != nil {
			return fmt.Errorf("router: %w", err)
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
		return fmt.Errorf("router: %w", err)
	}
	r.nc, r.fl.nc = nc, nc
	return nil
}

// subscribe subscribes to the gateways' frames and, unless it waits for
// the lead, the senders'. Each subscription's messages are handled by one
// goroutine in order; what waits for it is bounded (pending limits): up
// frames (logins) generously, since losing one costs a resync; send
// frames at SendLimit, past which NATS drops them and the senders get no
// ack; done frames, which the windows bound. They end with the
// connection's drain at Close.
func (r *Router) subscribe() error {
	nc := r.nc
	upSubject, stray := r.part.upSubjects()
	subs := []struct {
		subject string
		handle  nats.MsgHandler
		limit   int
	}{
		{upSubject, r.up.handleUp, 256 << 20},
		// Gateways given other -partitions than this router's: said,
		// not ignored (nothing comes there when all agree).
		{stray, r.up.handleStray, 16 << 20},
		{r.fl.doneSubject, r.fl.handleDone, 64 << 20},
	}
	if p := r.part; p != nil {
		// Every router hears which topics the others watch (a standby
		// too: it leads with them).
		subs = append(subs, struct {
			subject string
			handle  nats.MsgHandler
			limit   int
		}{p.watchSubject, r.pres.handleWatch, 16 << 20})
		// Other partitions ask for this one's share of a topic's
		// presence; any of its routers answers.
		if _, err := nc.QueueSubscribe(wire.PartSubject(wire.SubjectPresence, p.n, p.k), wire.QueueRouters, r.pres.handleShare); err != nil {
			return err
		}
	}
	for _, s := range subs {
		sub, err := nc.Subscribe(s.subject, s.handle)
		if err != nil {
			return err
		}
		sub.SetPendingLimits(-1, s.limit)
	}
	if !r.cfg.Redundant { // a redundant router subscribes when it leads
		if err := r.subscribeSenders(); err != nil {
			return err
		}
	}
	return nc.Flush()
}

// subscribeSenders takes the senders' and the clients' frames (client
// requests are send frames from gateways, handled alike and bounded
// alike: a client waits for its answer before more). Partitioned, every
// partition's router takes a share of the plain subjects and hands on
// what is not its own, and it alone takes its partition's send subject
// (senders that split their frames) and route subject (other
// partitions' routers).
func (r *Router) subscribeSenders() error {
	all := []senderSubject{{wire.SubjectSend, r.handleSend}, {wire.SubjectClient, r.handleSend}}
	if p := r.part; p != nil {
		all = append(all, senderSubject{wire.PartSubject(wire.SubjectSend, p.n, p.k), r.handleSend}, senderSubject{p.route[p.k], r.handleRoute})
	}
	return r.senders.take(r.nc, all, r.cfg.SendLimit)
}

// senderSubject is a subject the senders' frames come on, and their
// handler.
type senderSubject struct {
	subject string
	handle  nats.MsgHandler
}

// senders is the router's subscriptions to the senders' frames (a
// redundant router has them while it leads).
type senders struct {
	mu   sync.Mutex // guards subs
	subs []*nats.Subscription
}

// take subscribes to every subject in all, in the routers' queue group,
// each holding up to limit bytes of frames.
func (s *senders) take(nc *nats.Conn, all []senderSubject, limit int) error {
	var subs []*nats.Subscription
	for _, ss := range all {
		sub, err := nc.QueueSubscribe(ss.subject, wire.QueueRouters, ss.handle)
		if err != nil {
			for _, sub := range subs {
				sub.Unsubscribe()
			}
			return fmt.Errorf("router: subscribe: %w", err)
		}
		sub.SetPendingLimits(-1, limit)
		subs = append(subs, sub)
	}
	// Known to the server before the router says it takes frames: a
	// sender that asks meanwhile is told "not taken" and sends again.
	// (No answer in 2 s: they go out when the connection is back.)
	nc.FlushTimeout(2 * time.Second)
	s.mu.Lock()
	s.subs = subs
	s.mu.Unlock()
	return nil
}

// stop stops taking senders' and clients' frames; what NATS holds for
// them is routed first, for up to wait.
func (s *senders) stop(wait time.Duration) {
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	for _, sub := range subs {
		sub.Drain()
	}
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(subs, (*nats.Subscription).IsValid) {
			return
		}
	}
}

// dropped is the send frames NATS dropped for this router.
func (s *senders) dropped() uint64 {
	var total uint64
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	for _, sub := range subs {
		if n, err := sub.Dropped(); err == nil && n > 0 {
			total += uint64(n)
		}
	}
	return total
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

// Ready says why the router cannot route now, or nil: its NATS
// connection is down, or (redundant) no router has led for two leases
// (GET /readyz).
func (r *Router) Ready() error {
	switch {
	case r.fl.closed():
		return errors.New("router: stopping")
	case !r.nc.IsConnected():
		return fmt.Errorf("router: NATS connection %s", r.nc.Status())
	}
	return r.lead.leaderKnown()
}

// Registry exposes the registry (read-only use).
func (r *Router) Registry() *registry.Registry { return r.reg }

// Run serves until ctx ends, forgetting silent gateways, then shuts
// down (Close). It returns early, with the reason, if the router cannot
// go on (its NATS connection closed, or it was deposed as leader).
func (r *Router) Run(ctx context.Context) error {
	done := ctx.Done()
	t := time.NewTicker(max(r.cfg.GatewayTimeout/4, 25*time.Millisecond))
	defer t.Stop()
	go r.pres.loop(done)
	r.hooks.start()
	natsDown := r.nc.StatusChanged(nats.CLOSED)
	r.lead.start(done)
	for {
		select {
		case <-done:
			return r.Close()
		case err := <-r.lead.fatalErr():
			r.log.Error("router stops", zap.Error(err))
			r.Close()
			return err
		case <-natsDown:
			r.Close()
			return errors.New("router: nats connection closed")
		case now := <-t.C:
			r.up.sweep(now)
			r.store.Sweep(now.UnixNano(), r.reg.Held)
			r.thist.Expire(now.UnixNano())
		}
	}
}

// Close stops the router (Run calls it when done closes): the lead is
// handed over, the admin server stopped, the NATS connection drained and
// the embedded server stopped. Sends waiting for a window give up; their
// copies are counted lost with the gateway. It may be called more than
// once, and on a router New has only partly built.
func (r *Router) Close() error {
	r.stopOnce.Do(func() {
		start := time.Now()
		step := func(what string, f func()) { // a slow step is said
			at := time.Now()
			f()
			if d := time.Since(at); d > time.Second {
				r.log.Info("stopping took a while", zap.String("step", what), zap.Duration("took", d))
			}
		}
		r.fl.close()
		step("webhook events queued", r.hooks.close)
		step("lead handed over", r.lead.release)
		var err error
		if r.admin != nil {
			step("admin server", func() { err = r.admin.Shutdown() })
		}
		r.stored.close()
		r.part.close()
		if r.fwd != nil {
			r.fwd.Close()
		}
		step("NATS drained and its embedded server stopped", func() {
			if r.nc != nil {
				natsconn.Drain(r.nc, 5*time.Second)
			}
			r.ns.Shutdown()
		})
		if r.tmpStore != "" {
			os.RemoveAll(r.tmpStore)
		}
		r.log.Info("router stopped", zap.Duration("took", time.Since(start)))
		r.stopErr = err
	})
	return r.stopErr
}
