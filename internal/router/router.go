package router

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/topics"
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
	// StoreDir is where the embedded server keeps its JetStream files:
	// the stored subscriptions. Default "": a temporary directory removed
	// when the router stops (subscriptions then last as long as the
	// router). With NATSURL, the server's JetStream is used, if it has
	// one; without it the router runs without stored subscriptions.
	StoreDir string
	// StoreReplicas is how many servers of a JetStream cluster keep the
	// stored subscriptions (3 in a cluster of 3 routers survives one
	// loss). Default 1.
	StoreReplicas int
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
	// Window bounds the bytes of down frames in flight to one gateway:
	// published and not yet confirmed by the gateway's done record. A
	// send to a gateway whose window is full waits. Default 4 MiB.
	Window int64
	// DeliverTimeout is how long a down frame may stay unconfirmed before
	// its copies are counted lost with the gateway. Default 5s.
	DeliverTimeout time.Duration
	// OverloadWait is how long an HTTP send waits for room in the
	// gateways' windows before it is refused (503). Default 2s.
	OverloadWait time.Duration
	// SendLimit bounds, in bytes, the send frames NATS holds for this
	// router while it routes (senders that wait for their acks keep far
	// below it). Frames past it are dropped by NATS: counted
	// (send_frames_dropped), and their senders get no ack. Default 64 MiB.
	SendLimit int
	// NATSAuth are the router's NATS credentials; with an embedded
	// server, its TokenFile is the token the server asks of every client.
	NATSAuth natsconn.Credentials
	// AdminTokenFile holds the bearer token the admin API asks for;
	// needed when AdminAddr is beyond loopback.
	AdminTokenFile string
	// InsecureOpen allows the admin API without a token, and the
	// embedded NATS server without one, on addresses beyond loopback.
	InsecureOpen bool
	// Redundant makes the router one of several that share the work of
	// one: one leads (takes the senders' frames and numbers positions),
	// the others follow its history log and take over when its lease
	// ends (docs/PROTOCOL.md, "Redundant routers"). It needs JetStream
	// (the embedded server has it). Default false: the router routes
	// alone, and a second one would number its own share of positions.
	Redundant bool
	// Partitions splits ids into this many partitions (wire.Partition:
	// the id modulo the count), each served by its own router (or its
	// own redundant routers): this router serves partition Partition
	// (0-based). It keeps the logins, histories and stored
	// subscriptions of its partition's ids only, and hands the records
	// of a send frame meant for another partition to that partition's
	// router (docs/PROTOCOL.md, "Partitioned routers"). Gateways are
	// started with the same -partitions. Default 1: one partition.
	Partitions, Partition int
	// Lease is how long the leader's lease lasts without renewal (it
	// renews every quarter of it): how soon a standby takes over from a
	// leader that died. Default 2s.
	Lease time.Duration
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
		Window:         4 << 20,
		DeliverTimeout: 5 * time.Second,
		OverloadWait:   2 * time.Second,
		SendLimit:      64 << 20,
		Lease:          2 * time.Second,
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
	if c.Window < 64<<10 {
		return fmt.Errorf("router: window %d is below 64 KiB", c.Window)
	}
	if c.Partitions < 0 || c.Partitions > wire.MaxPartitions {
		return fmt.Errorf("router: -partitions %d: want 1 to %d", c.Partitions, wire.MaxPartitions)
	}
	if c.Partition < 0 || c.Partition >= max(c.Partitions, 1) {
		return fmt.Errorf("router: -partition %d: want 0 to %d (one less than -partitions)", c.Partition, max(c.Partitions, 1)-1)
	}
	if c.Redundant && c.Lease < 200*time.Millisecond {
		return fmt.Errorf("router: lease %s is below 200ms", c.Lease)
	}
	if c.DeliverTimeout < 100*time.Millisecond {
		return fmt.Errorf("router: deliver timeout %s is below 100ms", c.DeliverTimeout)
	}
	if c.AdminAddr != "off" && c.AdminTokenFile == "" && !c.InsecureOpen && !auth.IsLoopback(c.AdminAddr) {
		return fmt.Errorf("router: admin address %s is not a loopback address and anyone reaching it could send to anyone: give -admin-token-file, or -insecure-open", c.AdminAddr)
	}
	if c.NATSURL == "" && c.NATSAuth.TokenFile == "" && c.Embedded.ConfigFile == "" && !c.InsecureOpen && !auth.IsLoopback(c.Embedded.Addr) {
		return fmt.Errorf("router: embedded NATS address %s is not a loopback address and anyone reaching it could send or pose as a gateway: give -nats-token-file or -nats-config (router nats-auth), or -insecure-open", c.Embedded.Addr)
	}
	if c.NATSURL == "" && c.Embedded.ClusterAddr != "" && !c.InsecureOpen && !auth.IsLoopback(c.Embedded.ClusterAddr) {
		ok, err := embeddednats.ClusterAuthorized(c.Embedded.ConfigFile)
		if err != nil {
			return fmt.Errorf("router: -nats-config: %w", err)
		}
		if !ok {
			return fmt.Errorf("router: NATS cluster address %s is not a loopback address and any server reaching it could join the cluster and read every message: give -nats-config with a cluster authorization block (router nats-auth writes one), or -insecure-open", c.Embedded.ClusterAddr)
		}
	}
	if c.NATSURL == "" && c.Embedded.MonitorAddr != "" && !c.InsecureOpen && !auth.IsLoopback(c.Embedded.MonitorAddr) {
		return fmt.Errorf("router: NATS monitoring address %s is not a loopback address: its endpoints ask for no credentials and show every connection and subscription; keep it on loopback, or give -insecure-open", c.Embedded.MonitorAddr)
	}
	if c.NATSURL == "" && c.Embedded.ConfigFile == "" && (c.NATSAuth.NKeyFile != "" || c.NATSAuth.CredsFile != "") {
		return fmt.Errorf("router: the embedded NATS server knows NKeys from its configuration (-nats-config, which router nats-auth writes), else it takes a token (-nats-token-file)")
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
	// conns is written with Router.upMu held; the send path reads it
	// (a broadcast's copies).
	conns atomic.Int64
	// The fields below are only touched with Router.upMu held.
	mismatches int
	resyncAt   time.Time // when a resync was last asked; zero when none pending
	server     string    // the NATS server it is connected to (server record)

	nextSeq atomic.Uint64 // the last down frame number given
	// The flow fields below are guarded by Router.flow.mu.
	flights  map[uint64]flight // by frame number
	inflight int64             // their bytes: the window in use
	gone     bool              // forgotten: its flights were counted lost
}

// Router routes sends to the gateways holding the ids. Create it with New,
// run it with Run.
type Router struct {
	cfg    Config
	log    *zap.Logger
	reg    *registry.Registry
	store  *retention.Store
	topics *topics.Index
	// Stored subscriptions (nil without JetStream): the index, the
	// stream it follows, and where the stream is (a temporary store
	// directory to remove at Close).
	stored    *subs.Index
	subStream *subs.Stream
	subFollow *subs.Follower
	// lead: a redundant router's election and history log (nil alone).
	lead *lead
	// part: a partitioned router's share of the ids (nil unpartitioned).
	part     *partition
	tmpStore string
	ns       *embeddednats.Server
	nc       *nats.Conn

	upMu    sync.Mutex // serializes gateway updates and purges
	upDec   wire.Decoder
	upRec   wire.Record
	upBuf   []byte   // resume answers
	one     []uint64 // one conn
	keptBuf []retention.Entry

	gwMu     sync.RWMutex
	gwByName map[string]*peer
	gwByIdx  map[uint32]*peer
	nextIdx  uint32

	batches sync.Pool // *sendBatch
	frames  *frameTable

	flow        flows
	name        string // this router's name in its done subject
	doneSubject string
	sendMu      sync.Mutex // guards sendSubs (a redundant router subscribes when it leads)
	// The senders' frames, the gateways' client requests (WebSocket
	// publish, send) and, partitioned, this partition's send and route
	// subjects.
	sendSubs []*nats.Subscription

	// acksPending: send frames routed whose ack has not gone out.
	acksPending atomic.Int64

	sent, void, logins, logouts, resyncs, purges, badFrames atomic.Uint64
	resumes, missed, caughtUp, kept                         atomic.Uint64
	// Copies: routed to gateways, then delivered or dropped by reason
	// (the gateway's done records), dup and late (in delivered).
	routed, delivered, dups, late            atomic.Uint64
	droppedGone, droppedSlow, droppedGateway atomic.Uint64
	waits, refused, unknownDone              atomic.Uint64
	published, broadcasts, topicVoid         atomic.Uint64
	presenceSent, kicks, subsCompactions     atomic.Uint64
	// Up frames from gateways partitioned otherwise than this router
	// (handleStrayUp), and the gateways already named in the log.
	strayUp     atomic.Uint64
	strayWarned sync.Map
	// Ids whose subscribed presence may have changed (subscriberPresence).
	subPending struct {
		mu  sync.Mutex
		ids map[int64]struct{}
	}

	metrics *obs.Metrics
	admin   *obs.Admin
}

// withDefaults is c with every zero field that has a default given it
// (DefaultConfig), and no logger a no-op one.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.AdminAddr == "" {
		c.AdminAddr = def.AdminAddr
	}
	if c.GatewayTimeout == 0 {
		c.GatewayTimeout = def.GatewayTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = def.ConnectTimeout
	}
	if c.Window == 0 {
		c.Window = def.Window
	}
	if c.DeliverTimeout == 0 {
		c.DeliverTimeout = def.DeliverTimeout
	}
	if c.OverloadWait <= 0 {
		c.OverloadWait = def.OverloadWait
	}
	if c.SendLimit <= 0 {
		c.SendLimit = def.SendLimit
	}
	if c.Lease == 0 {
		c.Lease = def.Lease
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// New starts the router's NATS side (embedded server or connection) and its
// admin server. Call Run to serve and Close (or cancel Run) to stop.
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
	r := &Router{
		cfg:      cfg,
		log:      cfg.Logger,
		reg:      reg,
		store:    store,
		topics:   topics.New(reg.Held),
		gwByName: make(map[string]*peer),
		gwByIdx:  make(map[uint32]*peer),
		one:      make([]uint64, 1),
	}
	if cfg.Partitions > 1 {
		r.part = newPartition(cfg.Partitions, cfg.Partition)
		r.topics.SetPartition(cfg.Partition, cfg.Partitions)
	}
	// What New opened is closed again if it fails after (a listener
	// taken, a stream that would not open): no goroutine, connection or
	// temporary store outlives a failed New.
	opened := false
	defer func() {
		if !opened {
			r.Close()
		}
	}()
	r.reg.OnIdle(func(id int64) {
		store.Idle(id, time.Now().UnixNano())
		r.subscriberPresence(id)
	})
	r.reg.OnActive(r.subscriberPresence)
	store.OnDrop(r.topics.ForgetID)
	r.batches.New = func() any { return newSendBatch(r) }
	r.frames = newFrameTable()
	r.flow.room = sync.NewCond(&r.flow.mu)
	var rb [8]byte
	rand.Read(rb[:])
	r.name = fmt.Sprintf("r%x", rb)
	r.doneSubject = wire.DoneSubject(r.name)
	adminToken, err := obs.ReadToken(cfg.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("router: admin %w", err)
	}
	more, err := cfg.NATSAuth.Options()
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	url := cfg.NATSURL
	if url == "" {
		ecfg := cfg.Embedded
		if cfg.NATSAuth.TokenFile != "" && ecfg.ConfigFile == "" {
			if ecfg.Token, err = obs.ReadToken(cfg.NATSAuth.TokenFile); err != nil {
				return nil, fmt.Errorf("router: nats token: %w", err)
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
				return nil, fmt.Errorf("router: %w", err)
			}
			ecfg.StoreDir = r.tmpStore
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
		return nil, fmt.Errorf("router: %w", err)
	}
	r.nc = nc
	if err := r.openSubscriptions(); err != nil {
		return nil, err
	}

	// Each subscription's messages are handled by one goroutine in order;
	// what waits for it is bounded (pending limits): up frames (logins)
	// generously, since losing one costs a resync; send frames at
	// SendLimit, past which NATS drops them and the senders get no ack;
	// done frames, which the windows bound.
	if cfg.Redundant {
		if r.subStream == nil {
			return nil, errors.New("router: -redundant needs JetStream on the NATS server (for the lease and the history log)")
		}
		if err := r.openLead(); err != nil {
			return nil, err
		}
	}
	// The subscriptions end with the connection's drain at Close.
	upSub, err := nc.Subscribe(wire.PartSubject(wire.SubjectUp, cfg.Partitions, cfg.Partition), r.handleUp)
	if err == nil {
		upSub.SetPendingLimits(-1, 256<<20)
		// Gateways given other -partitions than this router's: said,
		// not ignored (nothing comes there when all agree).
		stray := wire.SubjectUp + ".>"
		if r.part != nil {
			stray = wire.SubjectUp
		}
		var straySub *nats.Subscription
		if straySub, err = nc.Subscribe(stray, r.handleStrayUp); err == nil {
			straySub.SetPendingLimits(-1, 16<<20)
		}
		if p := r.part; p != nil && err == nil {
			// Other partitions ask for this one's share of a topic's
			// presence; any of its routers answers.
			_, err = nc.QueueSubscribe(wire.PartSubject(wire.SubjectPresence, p.n, p.k), wire.QueueRouters, r.handlePresence)
			if err == nil {
				// Every router hears which topics the others watch
				// (a standby too: it leads with them).
				_, err = nc.Subscribe(p.watchSubject, r.handleWatch)
			}
		}
		if err == nil && !cfg.Redundant { // a redundant router subscribes when it leads
			err = r.subscribeSenders()
		}
	}
	if err == nil {
		var doneSub *nats.Subscription
		doneSub, err = nc.Subscribe(r.doneSubject, r.handleDone)
		if err == nil {
			doneSub.SetPendingLimits(-1, 64<<20)
		}
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("router: subscribe: %w", err)
	}

	r.metrics = newMetrics(r)
	if cfg.AdminAddr != "off" {
		a, err := obs.ListenAdmin(cfg.AdminAddr, obs.RequireBearer(adminToken, r.adminMux()), r.log)
		if err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
		r.admin = a
		r.log.Info("admin listening", zap.Stringer("addr", a.Addr()))
	}
	opened = true
	return r, nil
}

// subscribeSenders takes the senders' and the clients' frames (client
// requests are send frames from gateways, handled alike and bounded
// alike: a client waits for its answer before more). Partitioned, every
// partition's router takes a share of the plain subjects and hands on
// what is not its own, and it alone takes its partition's send subject
// (senders that split their frames) and route subject (other
// partitions' routers).
func (r *Router) subscribeSenders() error {
	type sub struct {
		subject string
		handle  nats.MsgHandler
	}
	all := []sub{{wire.SubjectSend, r.handleSend}, {wire.SubjectClient, r.handleSend}}
	if p := r.part; p != nil {
		all = append(all, sub{wire.PartSubject(wire.SubjectSend, p.n, p.k), r.handleSend}, sub{p.route[p.k], r.handleRoute})
	}
	var subs []*nats.Subscription
	for _, s := range all {
		ns, err := r.nc.QueueSubscribe(s.subject, wire.QueueRouters, s.handle)
		if err != nil {
			for _, ns := range subs {
				ns.Unsubscribe()
			}
			return fmt.Errorf("router: subscribe: %w", err)
		}
		ns.SetPendingLimits(-1, r.cfg.SendLimit)
		subs = append(subs, ns)
	}
	r.sendMu.Lock()
	r.sendSubs = subs
	r.sendMu.Unlock()
	return nil
}

// unsubscribeSenders stops taking senders' and clients' frames; what
// NATS holds for them is routed first, for up to wait.
func (r *Router) unsubscribeSenders(wait time.Duration) {
	r.sendMu.Lock()
	subs := r.sendSubs
	r.sendMu.Unlock()
	for _, s := range subs {
		s.Drain()
	}
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(subs, (*nats.Subscription).IsValid) {
			return
		}
	}
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
	go r.presenceLoop(done)
	natsDown := r.nc.StatusChanged(nats.CLOSED)
	var fatal chan error
	if r.lead != nil {
		fatal = r.lead.fatal
		r.lead.start(done)
	}
	for {
		select {
		case <-done:
			return r.Close()
		case err := <-fatal:
			r.log.Error("router stops", zap.Error(err))
			r.Close()
			return err
		case <-natsDown:
			r.Close()
			return errors.New("router: nats connection closed")
		case now := <-t.C:
			r.sweep(now)
			r.store.Sweep(now.UnixNano(), r.reg.Held)
		}
	}
}

// subscriberPresence notes that id got its first conn or lost its last,
// for its presence in the topics it is subscribed to that have watchers:
// the registry calls it from under other locks (a resume holds the id's
// history lock), so the id only goes into a set here, which
// syncSubscribers works through before each round of presence events.
func (r *Router) subscriberPresence(id int64) {
	if r.stored == nil || !r.topics.AnyWatched() {
		return
	}
	r.subPending.mu.Lock()
	if r.subPending.ids == nil {
		r.subPending.ids = make(map[int64]struct{})
	}
	r.subPending.ids[id] = struct{}{}
	r.subPending.mu.Unlock()
}

// syncSubscribers brings the presence of the ids subscriberPresence
// noted up to date with whether they have a conn now (a set: at most one
// entry per id, however often it came and went).
func (r *Router) syncSubscribers() {
	r.subPending.mu.Lock()
	ids := r.subPending.ids
	r.subPending.ids = nil
	r.subPending.mu.Unlock()
	var buf [8]string
	for id := range ids {
		if ts := r.stored.Topics(id, buf[:0]); len(ts) > 0 {
			r.topics.SyncSub(id, ts, true)
		}
	}
}

// PresenceEvery is how often the join and leave events of topics are
// sent to the connections that asked for them (?presence=1): every change
// within it is in one event.
const PresenceEvery = time.Second

// presenceLoop sends the topics' presence events every PresenceEvery.
func (r *Router) presenceLoop(done <-chan struct{}) {
	t := time.NewTicker(PresenceEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if r.part != nil {
				r.topics.ExpireRemote(time.Now().UnixNano())
				r.sendWatchList()
			}
			r.syncSubscribers()
			r.sendPresence()
		}
	}
}

// sendPresence routes the presence events gathered since the last call:
// each one to its topic's watchers, the message once per gateway, with no
// position (like a broadcast).
func (r *Router) sendPresence() {
	evs := r.topics.PresenceEvents()
	if len(evs) == 0 || r.standby() {
		return // a standby: the leader sends them
	}
	b := r.batches.Get().(*sendBatch)
	defer r.batches.Put(b)
	b.reset(&pendingAck{waiting: 1}) // nobody waits for it
	for _, ev := range evs {
		b.fanEvent(ev.Msg, ev.Watchers)
		if ev.Remote {
			b.forwardPresence(ev.Topic, ev.Msg)
		}
	}
	// Counted before they go out: a watcher that has an event sees it
	// counted in /stats (a CI run read the count just before).
	r.presenceSent.Add(uint64(len(evs)))
	b.finish()
}

func (r *Router) closeNATS() {
	natsconn.Drain(r.nc, 5*time.Second)
	r.ns.Shutdown()
}

// Close stops the router (Run calls it when done closes). Sends waiting
// for a window give up; their copies are counted lost with the gateway.
func (r *Router) Close() error {
	start := time.Now()
	step := func(what string, f func()) { // a slow step is said
		at := time.Now()
		f()
		if d := time.Since(at); d > time.Second {
			r.log.Info("stopping took a while", zap.String("step", what), zap.Duration("took", d))
		}
	}
	r.flow.mu.Lock()
	r.flow.closing = true
	r.flow.room.Broadcast()
	r.flow.mu.Unlock()
	if r.lead != nil {
		step("lead handed over", r.lead.release)
	}
	var err error
	if r.admin != nil {
		step("admin server", func() { err = r.admin.Shutdown() })
		r.admin = nil
	}
	if r.subFollow != nil {
		r.subFollow.Stop()
	}
	step("NATS drained and its embedded server stopped", r.closeNATS)
	r.removeTmpStore()
	r.log.Info("router stopped", zap.Duration("took", time.Since(start)))
	return err
}

// compactSubs gives back what growing the index's lists left unused, to
// the operating system too: after a load the index is most of the
// router's memory.
func compactSubs(x *subs.Index) {
	x.Compact()
	debug.FreeOSMemory()
}

// compactor compacts the stored subscriptions after they grew by a tenth
// (a bulk load through another router or `router subscribe -file`), once
// no batch has come for a second.
func (r *Router) compactor() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, applied := r.stored.Stats().Subscriptions, r.subFollow.Applied()
	for tick := 1; ; tick++ {
		<-t.C
		if r.flowClosing() {
			return
		}
		if tick%60 == 0 {
			r.compactStream()
		}
		n, a := r.stored.Stats().Subscriptions, r.subFollow.Applied()
		if a != applied { // still coming
			applied = a
			continue
		}
		if n > last+last/10+100_000 {
			compactSubs(r.stored)
			r.log.Info("stored subscriptions compacted", zap.Int("subscriptions", n))
			last = n
		}
	}
}

// compactStreamOver is the least size of the subscriptions' stream that
// a router compacts (when it is 4 times its snapshot's).
var compactStreamOver uint64 = 64 << 20

// compactStream rewrites the subscriptions' stream when unsubscribes and
// repeats make it 4 times what it nets to (subs.Stream.Compact). Only a
// router that holds every id's subscriptions and routes (not a
// partition's, not a standby) does it; two at once are safe (the
// snapshot's writes are fenced), only wasteful.
func (r *Router) compactStream() {
	if r.part != nil || r.standby() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	size, err := r.subStream.Size(ctx)
	if err != nil || size < compactStreamOver || size < 4*r.stored.SnapshotBytes() {
		return
	}
	r.log.Info("compacting the stored subscriptions' stream", zap.Uint64("bytes", size))
	c, err := r.subStream.CompactWith(ctx, r.stored, r.subFollow, nil)
	if err != nil {
		r.log.Warn("compaction of the stored subscriptions failed", zap.Error(err))
		return
	}
	r.subsCompactions.Add(1)
	r.log.Info("stored subscriptions' stream compacted", zap.Int("subscriptions", c.Subscriptions), zap.Uint64("purged_batches", c.Purged),
		zap.Uint64("bytes_before", c.BytesBefore), zap.Uint64("bytes_after", c.BytesAfter))
}

// flowClosing reports whether Close has begun.
func (r *Router) flowClosing() bool {
	r.flow.mu.Lock()
	defer r.flow.mu.Unlock()
	return r.flow.closing
}

func (r *Router) removeTmpStore() {
	if r.tmpStore != "" {
		os.RemoveAll(r.tmpStore)
		r.tmpStore = ""
	}
}

// openSubscriptions opens the stored subscriptions' stream and applies it
// before the router routes anything (a publish must reach every stored
// subscriber). A NATS without JetStream (an external server) leaves the
// router without stored subscriptions, said in the log.
func (r *Router) openSubscriptions() error {
	// A JetStream cluster forming with its routers takes a moment.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := subs.Open(ctx, r.nc, r.cfg.StoreReplicas)
	cancel()
	if err != nil {
		if r.ns != nil {
			return fmt.Errorf("router: %w", err)
		}
		r.log.Warn("no stored subscriptions: the NATS server has no JetStream", zap.Error(err))
		return nil
	}
	x := subs.NewIndex()
	if r.part != nil {
		x.Only(r.mine)
	}
	// Subscribed ids are in their topics' presence while they have a
	// conn: their subscribing and unsubscribing are joins and leaves.
	x.Watch(r.topics.IsWatched, func(op byte, id int64, topic string) {
		r.topics.SyncSub(id, []string{topic}, op == subs.OpSubscribe)
	})
	r.topics.SetSubscribers(func(topic string) (ids []int64) {
		x.Subscribers([]byte(topic), func(_ string, s []int64) { ids = slices.Clone(s) })
		return ids
	})
	f, err := st.Follow(context.Background(), x, func(err error) {
		r.log.Warn("malformed subscriptions batch", zap.Error(err))
	})
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	limit := time.After(10 * time.Minute)
	for loading := true; loading; {
		select {
		case <-f.Ready():
			loading = false
		case <-tick.C:
			r.log.Info("loading stored subscriptions", zap.Int("subscriptions", x.Stats().Subscriptions))
		case <-limit:
			f.Stop()
			return fmt.Errorf("router: stored subscriptions not loaded after 10 minutes (%d so far)", x.Stats().Subscriptions)
		}
	}
	compactSubs(x)
	r.stored, r.subStream, r.subFollow = x, st, f
	go r.compactor()
	r.log.Info("stored subscriptions loaded", zap.Int("subscriptions", x.Stats().Subscriptions), zap.Duration("took", time.Since(start)))
	return nil
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
	// Frames a live gateway never confirmed (lost on the way, say, while
	// its NATS connection was down): their copies are counted lost.
	// The gateway is asked for its sessions: a resuming client whose
	// copy was lost gets it from the catch-up of its resume.
	stale := now.Add(-r.cfg.DeliverTimeout).UnixNano()
	for _, gw := range r.peers() {
		if r.failFlights(gw, stale) > 0 && gw.resyncAt.IsZero() {
			r.log.Warn("down frames unconfirmed past the deliver timeout; asking the gateway for its sessions", zap.String("gateway", gw.name))
			r.askResync(gw)
		}
	}
}

// peers returns the gateways the router knows now.
func (r *Router) peers() []*peer {
	r.gwMu.RLock()
	defer r.gwMu.RUnlock()
	gws := make([]*peer, 0, len(r.gwByIdx))
	for _, gw := range r.gwByIdx {
		gws = append(gws, gw)
	}
	return gws
}

// forget purges gw's logins and drops it. upMu must be held.
func (r *Router) forget(gw *peer) int {
	n := r.reg.LogoutGateway(gw.idx)
	r.topics.LeaveGateway(gw.idx, r.store.Has)
	r.purges.Add(1)
	r.gwMu.Lock()
	if r.gwByName[gw.name] == gw {
		delete(r.gwByName, gw.name)
	}
	delete(r.gwByIdx, gw.idx)
	r.gwMu.Unlock()
	r.flow.mu.Lock()
	gw.gone = true
	r.flow.mu.Unlock()
	r.failFlights(gw, 0)
	return n
}

// askResync asks gw to send every live login again. upMu must be held.
func (r *Router) askResync(gw *peer) {
	gw.resyncAt = time.Now()
	gw.mismatches = 0
	r.resyncs.Add(1)
	frame := wire.AppendDownHeader(make([]byte, 0, 8), 0)
	if p := r.part; p != nil {
		frame = wire.AppendResyncPart(frame, p.k) // this partition's logins only
	} else {
		frame = wire.AppendResync(frame)
	}
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
			if !fresh || gw.conns.Load() != 0 {
				gw.conns.Store(0)
				r.reg.LogoutGateway(gw.idx)
				r.topics.LeaveGateway(gw.idx, r.store.Has)
			}
			gw.resyncAt = time.Time{}
			gw.mismatches = 0
			r.log.Info("gateway hello", zap.String("gateway", gw.name), zap.Uint64("conns", rec.Count))
		case wire.OpServer:
			if gw.server != string(rec.Server) {
				gw.server = string(rec.Server)
				r.log.Info("gateway's NATS server", zap.String("gateway", gw.name), zap.String("server", gw.server))
			}
		case wire.OpLogin:
			r.login(gw, rec.ID, rec.Conn)
		case wire.OpLoginTopics:
			r.topics.Join(registry.Conn{GW: gw.idx, Conn: rec.Conn}, rec.ID, false, rec.Presence, rec.Topics)
			r.login(gw, rec.ID, rec.Conn)
		case wire.OpJoin:
			r.topics.Join(registry.Conn{GW: gw.idx, Conn: rec.Conn}, rec.ID, rec.Resumable, rec.Presence, rec.Topics)
		case wire.OpPart:
			r.topics.Part(registry.Conn{GW: gw.idx, Conn: rec.Conn}, rec.Topics)
		case wire.OpResume:
			r.resume(gw, rec.Conn, rec.ID, cursor.Cursor{Epoch: rec.Epoch, Seq: rec.Seq})
		case wire.OpResumeTopics:
			// Joined first: the resume's catch-up is what was kept for
			// these topics (and sent to the id).
			r.topics.Join(registry.Conn{GW: gw.idx, Conn: rec.Conn}, rec.ID, true, rec.Presence, rec.Topics)
			r.resume(gw, rec.Conn, rec.ID, cursor.Cursor{Epoch: rec.Epoch, Seq: rec.Seq})
		case wire.OpLogout:
			c := registry.Conn{GW: gw.idx, Conn: rec.Conn}
			r.topics.Leave(c, r.store.Has)
			if r.reg.Logout(c) > 0 {
				gw.conns.Add(-1)
				r.logouts.Add(1)
			}
		case wire.OpHeartbeat:
			if int64(rec.Count) != gw.conns.Load() && gw.resyncAt.IsZero() {
				// Frames are applied in the order the gateway wrote
				// them, so a mismatch means a frame was lost.
				gw.mismatches++
				r.log.Warn("gateway login count mismatch", zap.String("gateway", gw.name),
					zap.Uint64("gateway_says", rec.Count), zap.Int64("router_has", gw.conns.Load()))
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
//
// The catch-up holds what was sent to id and what was published to the
// topics conn joined; a message of another topic is left out (its
// position is a gap the client skips), and the answer's head is the last
// position the catch-up carries.
func (r *Router) resume(gw *peer, conn uint64, id int64, cur cursor.Cursor) {
	if l := r.lead; l != nil {
		if !l.answers() {
			// A standby: the leader answers. The login is all it
			// needs. (A leader whose lease is in doubt answers once
			// it is renewed, by a resync.)
			r.login(gw, id, conn)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	topics := r.topics.TopicsOf(registry.Conn{GW: gw.idx, Conn: conn})
	if r.stored != nil {
		topics = r.stored.Topics(id, topics)
	}
	r.store.Resume(id, cur, func(res retention.Resumed, kept []retention.Entry) {
		kept = r.filterKept(kept, topics)
		if len(kept) > 0 {
			res.Head = kept[len(kept)-1].Seq
		} else if res.Head >= res.From {
			res.Head = res.From - 1
		}
		if res.Opened && r.lead != nil {
			r.lead.enqueue(retention.AppendOpen(nil, id, res.Epoch), nil)
		}
		r.login(gw, id, conn)
		r.resumes.Add(1)
		if res.Missed {
			r.missed.Add(1)
		}
		seq := gw.nextSeq.Add(1)
		f := wire.AppendResumed(wire.AppendDownHeader(r.upBuf[:0], seq), conn, res.Epoch, res.From, res.Head, res.Missed)
		r.one[0] = conn
		copies := uint64(0)
		for _, e := range kept {
			if len(f) >= maxDownFrame {
				r.send(gw, seq, f, copies, nil, false)
				seq, copies = gw.nextSeq.Add(1), 0
				f = wire.AppendDownHeader(f[:0], seq)
			}
			f = wire.AppendDeliverAt(f, res.Epoch, e.Seq, e.Msg, r.one)
			copies++
		}
		r.caughtUp.Add(uint64(len(kept)))
		// The catch-up is published now, under the id's lock, whatever
		// the window: it is ordered before any later send to the conn,
		// and bounded by what the router keeps for the id.
		r.send(gw, seq, f, copies, nil, false)
		if cap(f) <= 4*maxDownFrame {
			r.upBuf = f[:0]
		}
	})
}

// filterKept returns the entries of kept a client in topics gets: those
// sent to its id and those published to one of its topics. It filters
// into r.keptBuf (upMu is held) when something is left out.
func (r *Router) filterKept(kept []retention.Entry, topics []string) []retention.Entry {
	all := true
	for i := range kept {
		if kept[i].Topic != "" && !slices.Contains(topics, kept[i].Topic) {
			all = false
			break
		}
	}
	if all {
		return kept
	}
	out := r.keptBuf[:0]
	for _, e := range kept {
		if e.Topic == "" || slices.Contains(topics, e.Topic) {
			out = append(out, e)
		}
	}
	r.keptBuf = out
	return out
}

// login logs gw's conn in as id. upMu must be held.
func (r *Router) login(gw *peer, id int64, conn uint64) {
	if newConn, newPair := r.reg.Login(id, registry.Conn{GW: gw.idx, Conn: conn}); newPair {
		r.logins.Add(1)
		if newConn {
			gw.conns.Add(1)
		}
	}
}

func (r *Router) addGateway(name string, instance uint64) *peer {
	r.gwMu.Lock()
	defer r.gwMu.Unlock()
	r.nextIdx++
	gw := &peer{name: name, subject: wire.DownSubject(name), idx: r.nextIdx, instance: instance, flights: make(map[uint64]flight)}
	r.gwByName[name] = gw
	r.gwByIdx[gw.idx] = gw
	r.log.Info("gateway joined", zap.String("gateway", name), zap.Uint64("instance", instance))
	return gw
}
