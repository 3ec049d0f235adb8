package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/hook"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/peerlimit"
	"github.com/cometgw/comet/internal/wire"
	"github.com/cometgw/comet/internal/ws"
)

// Config configures a Gateway.
type Config struct {
	// Addr is the HTTP listen address. Default "127.0.0.1:8000".
	Addr string
	// AdminAddr serves /stats, /metrics and /debug/pprof/. Default
	// "127.0.0.1:8002"; "off" disables it.
	AdminAddr string
	// NATSURL is the router's NATS server. Default "nats://127.0.0.1:4222".
	NATSURL string
	// Name is the gateway's identity to the router: 1 to 64 of
	// [A-Za-z0-9_-]. Default "gw-<host>-<pid>".
	Name string
	// ConnectTimeout bounds the wait for NATS at start. Default 10s.
	ConnectTimeout time.Duration
	// Hub configures the session table (pending bound, write timeout,
	// writers, most sessions).
	Hub hub.Config
	// StreamHeartbeat writes a chunk holding one newline on a /test/{id}
	// stream quiet this long. Default 0: never.
	StreamHeartbeat time.Duration
	// SSEHeartbeat writes a comment on an EventSource stream quiet this
	// long, so proxies keep it. Default 15s; negative: never.
	SSEHeartbeat time.Duration
	// SSERetry is the reconnection delay EventSource clients are told.
	// Default 2s.
	SSERetry time.Duration
	// DrainPeriod spreads the end of the sessions when the gateway stops
	// (Run's ctx ends, SIGTERM): it turns not ready, stops accepting and
	// ends its sessions evenly over the period (hub.Drain), but at least
	// DrainMinRate a second. Default 30s; negative: all at once.
	DrainPeriod time.Duration
	// DrainMinRate: sessions ended a second at least while draining
	// (fewer end at once). Default 200.
	DrainMinRate int
	// ReadyWithin: the gateway is ready (GET /readyz) while a router
	// answered its ping (sent every second) within this long. Default 3s.
	ReadyWithin time.Duration
	// InboundLimit bounds, in bytes, the frames from the routers that NATS
	// holds for this gateway while its writers are busy (the routers'
	// windows keep what is in flight far below it). Default 64 MiB.
	InboundLimit int
	// PollResumeWait is how long past its timeout a long-poll waits for
	// the router's answer to its resume before it is answered 503.
	// Default 5s.
	PollResumeWait time.Duration
	// TCPKeepAlive starts TCP keep-alive probes on a client connection
	// after this long without traffic (then every 30 s; 4 unanswered
	// probes close it), so clients that vanish without a FIN are found.
	// Default 2m; negative disables. (Go's own default, 15 s, would cost
	// a million idle streams 66,000 probes a second.)
	TCPKeepAlive time.Duration
	// TCPUserTimeout aborts a client connection whose sent data the
	// client has not acknowledged for this long (TCP_USER_TIMEOUT): a
	// client that stops reading (its receive window stays closed) or
	// vanishes. Without it the kernel probes a closed window for ever,
	// holding the socket's send buffer (up to 4 MB). Counted as a
	// timeout close. Default 30s; negative: the kernel's behaviour.
	TCPUserTimeout time.Duration
	// NoDirect sends every request through fasthttp. Default false: a
	// chunked stream request (GET /test/{id}) is read from the accepted
	// socket and handed to the hub directly (see direct.go).
	NoDirect bool
	// Partitions is how many partitions the routers split ids into
	// (router -partitions): the gateway sends each id's logins to its
	// partition's routers. It must be the routers' count. Default 1 (one
	// router, or redundant routers that each hold every id).
	Partitions int
	// PollTimeout is how long a long-poll waits when it does not say.
	// Default 30s.
	PollTimeout time.Duration
	// MaxPollTimeout bounds the ?timeout= a long-poll may ask. Default 2m.
	MaxPollTimeout time.Duration
	// ReusePort sets SO_REUSEPORT on the listener, so several gateway
	// processes share one port; a full process then leaves the port's
	// group until it has room again. Default false.
	ReusePort bool
	// Auth is where the keys of client tokens are. With none, clients
	// open any id without a token: allowed only while Addr is a loopback
	// address, or with InsecureOpen.
	Auth auth.Config
	// AuthCookie is the cookie a token may come in. Default
	// "comet_token".
	AuthCookie string
	// InsecureOpen serves clients without tokens, and the admin API
	// without AdminTokenFile, on addresses beyond loopback.
	InsecureOpen bool
	// AdminTokenFile holds the bearer token the admin API asks for;
	// needed when AdminAddr is beyond loopback.
	AdminTokenFile string
	// AllowOrigin is the web origin whose pages may read SSE streams and
	// long-polls (CORS): "*" (default: any page; a token is then only
	// sent explicitly, never as a cookie), "none", or one origin such as
	// https://app.example.com (cookies allowed). A browser request from
	// another origin is refused 403.
	AllowOrigin string
	// HeadTimeout bounds the time a client takes to send a request head
	// (slowloris); past it the connection is closed. Default 10s.
	HeadTimeout time.Duration
	// PerAddr limits what one client address may hold: connections open
	// at once (streams, long-polls, requests being read) and new
	// connections per second; past either the connection is answered 429
	// and closed, counted in "refused". IPv6 addresses count by /64.
	// Default zero: no limit (behind a reverse proxy every client has
	// the proxy's address; limit there, deploy/nginx/comet.conf).
	PerAddr peerlimit.Limits
	// WSMaxMessage bounds a WebSocket client's message (all its
	// fragments); past it the socket closes with 1009. Default 16 KiB;
	// at most MaxWSMessage.
	WSMaxMessage int
	// WSControlRate is how many cheap frames (pings, pongs, empty
	// frames) a WebSocket client may send per second; past it the
	// socket closes with 1008 (closed "rate"). Default 50; at most 250.
	WSControlRate int
	// WSRequestRate is how many messages (requests) a WebSocket client
	// may send per second; past it the gateway reads it no more until
	// the next second (TCP slows it; counted "throttled"). Default 100.
	WSRequestRate int
	// WSPing pings a WebSocket client after this long without a write,
	// and WSPongWait closes it if its pong has not come that long after.
	// Defaults 30s and 10s; negative WSPing: never.
	WSPing, WSPongWait time.Duration
	// WSNoPublish refuses WebSocket clients' publish requests. Default
	// false: a client may publish to the topics it is in.
	WSNoPublish bool
	// WSSend lets WebSocket clients send to ids (with tokens, only a
	// client whose token says "send": true). Default false.
	WSSend bool
	// NATSAuth are this gateway's NATS credentials (also possible in
	// NATSURL as user:password@ or token@).
	NATSAuth natsconn.Credentials
	// Hooks let the application's backend decide who connects and
	// joins (HookConfig; default none).
	Hooks HookConfig
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// MaxWSMessage is the largest -ws-max-message: what the hub holds of one
// client's input (hub.MaxHeldInput) bounds it.
const MaxWSMessage = 1 << 20

// DefaultName is the default gateway name for this process.
func DefaultName() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, c := range host {
		if c < 128 && wire.ValidGatewayName(string(c)) {
			b.WriteRune(c)
		}
	}
	h := b.String()
	if len(h) > 40 {
		h = h[:40]
	}
	if h == "" {
		h = "host"
	}
	return fmt.Sprintf("gw-%s-%d", h, os.Getpid())
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:8000",
		AdminAddr:      "127.0.0.1:8002",
		NATSURL:        nats.DefaultURL,
		Name:           DefaultName(),
		ConnectTimeout: 10 * time.Second,
		Hub:            hub.DefaultConfig(),
		SSEHeartbeat:   15 * time.Second,
		SSERetry:       2 * time.Second,
		DrainPeriod:    30 * time.Second,
		DrainMinRate:   200,
		ReadyWithin:    3 * time.Second,
		PollResumeWait: 5 * time.Second,
		InboundLimit:   64 << 20,
		PollTimeout:    30 * time.Second,
		MaxPollTimeout: 2 * time.Minute,
		TCPKeepAlive:   2 * time.Minute,
		TCPUserTimeout: 30 * time.Second,
		AuthCookie:     "comet_token",
		AllowOrigin:    "*",
		HeadTimeout:    10 * time.Second,
		WSMaxMessage:   16 << 10,
		WSControlRate:  50,
		WSRequestRate:  100,
		WSPing:         30 * time.Second,
		WSPongWait:     10 * time.Second,
		Hooks:          HookConfig{Client: hook.DefaultConfig(), Down: "refuse"},
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if err := c.Hub.Validate(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if !wire.ValidGatewayName(c.Name) {
		return fmt.Errorf("gateway: name %q: want 1 to 64 of A-Z a-z 0-9 - _", c.Name)
	}
	if c.Partitions < 0 || c.Partitions > wire.MaxPartitions {
		return fmt.Errorf("gateway: -partitions %d: want 1 to %d (the routers' -partitions)", c.Partitions, wire.MaxPartitions)
	}
	if err := c.Hooks.validate(); err != nil {
		return err
	}
	if !c.Auth.Enabled() && c.Hooks.Connect == "" && !c.InsecureOpen && !auth.IsLoopback(c.Addr) {
		return fmt.Errorf("gateway: %s is not a loopback address and no token keys are given: anyone could read any id's messages; give -auth-secret-file or -auth-keys, or -connect-hook, or -insecure-open to serve without tokens", c.Addr)
	}
	if c.AdminAddr != "off" && c.AdminTokenFile == "" && !c.InsecureOpen && !auth.IsLoopback(c.AdminAddr) {
		return fmt.Errorf("gateway: admin address %s is not a loopback address: give -admin-token-file, or -insecure-open", c.AdminAddr)
	}
	if err := validOrigin(c.AllowOrigin); err != nil {
		return err
	}
	if c.WSMaxMessage > MaxWSMessage {
		return fmt.Errorf("gateway: -ws-max-message %d: at most %d (1 MiB)", c.WSMaxMessage, MaxWSMessage)
	}
	if c.WSRequestRate < 0 || c.WSRequestRate > 65535 {
		return fmt.Errorf("gateway: -ws-request-rate %d: want 1 to 65535", c.WSRequestRate)
	}
	if c.WSControlRate < 0 || c.WSControlRate > ws.MaxControlRate {
		return fmt.Errorf("gateway: -ws-control-rate %d: want 1 to %d", c.WSControlRate, ws.MaxControlRate)
	}
	if c.PerAddr.Conns < 0 || c.PerAddr.Rate < 0 {
		return fmt.Errorf("gateway: per-address limits %d connections, %d a second: want 0 (none) or more", c.PerAddr.Conns, c.PerAddr.Rate)
	}
	return validPollTimeouts(c.PollTimeout, c.MaxPollTimeout)
}

// Gateway is a running edge process.
type Gateway struct {
	cfg  Config
	log  *zap.Logger
	ln   *capListener
	srv  *fasthttp.Server
	hub  *hub.Hub
	link *link
	// linkReady is link once it has started (NATS's reconnect callback
	// reads it).
	linkReady atomic.Pointer[link]
	clients   *clients
	access    *access
	hooks     *hooks           // nil: no hook
	peers     *peerlimit.Table // nil: no per-address limits
	admin     *obs.Admin
	serve     chan error
	// draining: Run's ctx ended; the sessions are being ended.
	draining  atomic.Bool
	stopOnce  sync.Once     // the listener stops accepting (Drain, Close)
	stopped   chan struct{} // closed when the HTTP server has shut down
	stopErr   error
	closeOnce sync.Once // Close may be called more than once
	closeErr  error
}

// withDefaults is c with every zero field that has a default given it
// (DefaultConfig), and no logger a no-op one.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.Addr == "" {
		c.Addr = def.Addr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = def.AdminAddr
	}
	if c.NATSURL == "" {
		c.NATSURL = def.NATSURL
	}
	if c.Name == "" {
		c.Name = def.Name
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = def.ConnectTimeout
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = def.PollTimeout
	}
	if c.TCPKeepAlive == 0 {
		c.TCPKeepAlive = def.TCPKeepAlive
	}
	if c.TCPUserTimeout == 0 {
		c.TCPUserTimeout = def.TCPUserTimeout
	}
	if c.MaxPollTimeout == 0 {
		c.MaxPollTimeout = def.MaxPollTimeout
	}
	if c.SSEHeartbeat == 0 {
		c.SSEHeartbeat = def.SSEHeartbeat
	}
	if c.SSERetry <= 0 {
		c.SSERetry = def.SSERetry
	}
	if c.DrainPeriod == 0 {
		c.DrainPeriod = def.DrainPeriod
	}
	if c.DrainMinRate <= 0 {
		c.DrainMinRate = def.DrainMinRate
	}
	if c.ReadyWithin <= 0 {
		c.ReadyWithin = def.ReadyWithin
	}
	if c.PollResumeWait <= 0 {
		c.PollResumeWait = def.PollResumeWait
	}
	if c.InboundLimit <= 0 {
		c.InboundLimit = def.InboundLimit
	}
	if c.AuthCookie == "" {
		c.AuthCookie = def.AuthCookie
	}
	if c.AllowOrigin == "" {
		c.AllowOrigin = def.AllowOrigin
	}
	if c.HeadTimeout <= 0 {
		c.HeadTimeout = def.HeadTimeout
	}
	if c.WSMaxMessage <= 0 {
		c.WSMaxMessage = def.WSMaxMessage
	}
	if c.WSRequestRate == 0 {
		c.WSRequestRate = def.WSRequestRate
	}
	if c.WSControlRate == 0 {
		c.WSControlRate = def.WSControlRate
	}
	if c.WSPing == 0 {
		c.WSPing = def.WSPing
	}
	if c.WSPongWait <= 0 {
		c.WSPongWait = def.WSPongWait
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// New connects to NATS, binds the listeners and starts serving.
func New(cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger.With(zap.String("gateway", cfg.Name)), serve: make(chan error, 1)}
	var err error
	if g.access, err = newAccess(&cfg); err != nil {
		return nil, err
	}
	if g.hooks, err = newHooks(cfg.Hooks); err != nil {
		return nil, err
	}
	adminToken, err := obs.ReadToken(cfg.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	natsAuth, err := cfg.NATSAuth.Options()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	nc, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{
		Name: "comet-gateway " + cfg.Name, Retry: cfg.ConnectTimeout, Reconnect: true, Log: g.log, More: natsAuth,
		OnReconnect: func(nc *nats.Conn) {
			if l := g.linkReady.Load(); l != nil {
				l.server(nc.ConnectedServerName())
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	var inst [8]byte
	rand.Read(inst[:])
	g.link = newLink(nc, cfg.Name, binary.LittleEndian.Uint64(inst[:])>>11, cfg.InboundLimit, cfg.Partitions, g.log)

	hubCfg := cfg.Hub
	hubCfg.Handback = g.handback
	if cfg.PerAddr.Enabled() {
		g.peers = peerlimit.New(cfg.PerAddr)
		hubCfg.Release = func(p uint32) { g.peers.Release(peerlimit.Ref(p)) }
	}
	g.clients = newClients(nil, g.link, cfg.Name, g.log)
	g.clients.hooks = g.hooks
	if g.access.verifier != nil {
		g.clients.verify = g.access.verifyFor
	}
	g.hub, err = hub.New(hubCfg, cfg.kinds(g.clients), g.link, g.log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	g.clients.hub = g.hub
	g.srv = &fasthttp.Server{
		Handler:                      g.handle,
		Name:                         "comet-gateway",
		ReduceMemoryUsage:            true,
		KeepHijackedConns:            true,
		ReadTimeout:                  cfg.HeadTimeout, // from the first byte of a request: the head, and a body no one sends
		IdleTimeout:                  60 * time.Second,
		WriteTimeout:                 30 * time.Second,
		MaxRequestBodySize:           64 << 10,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       obs.RedactingLogger{Log: g.log.Named("fasthttp")},
		SecureErrorLogMessage:        true, // a head it could not parse is not logged (it holds tokens)
		Concurrency:                  1 << 20,
		DisablePreParseMultipartForm: true,
	}
	// Descriptors beyond the streams: request parsing, the dup of a stream
	// being opened, NATS, epoll, logs.
	capacity := max(g.hub.Config().MaxSessions-64, 1)
	full := func(frac float64) bool {
		return float64(g.hub.Len()+int(g.srv.GetOpenConnectionsCount())) >= frac*float64(capacity)
	}
	if cfg.ReusePort {
		if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req"); err == nil && strings.TrimSpace(string(b)) == "0" {
			g.log.Warn("net.ipv4.tcp_migrate_req is 0: connections queued on a gateway process that fills up or stops are reset instead of moving to the others; sysctl -w net.ipv4.tcp_migrate_req=1 fixes it")
		}
	}
	g.ln, err = newCapListener(cfg.Addr, cfg.ReusePort, cfg.TCPKeepAlive, cfg.TCPUserTimeout, full, g.log)
	if err != nil {
		g.hub.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Addr, err)
	}
	// The link says hello once the address is bound: a gateway the
	// routers know takes connections (they wait in the backlog until
	// Serve, just below).
	if err := g.link.start(g.hub); err != nil {
		g.ln.Close()
		g.hub.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: subscribe: %w", err)
	}
	g.linkReady.Store(g.link)
	if err := g.clients.start(); err != nil {
		g.ln.Close()
		g.hub.Close()
		g.link.stop()
		return nil, fmt.Errorf("gateway: subscribe: %w", err)
	}
	if g.peers != nil {
		g.ln.peers, g.ln.refused = g.peers, g.access.count
	}
	if !cfg.NoDirect && cfg.Hooks.Connect == "" { // the connect hook is asked from fasthttp's handler
		g.ln.direct, g.ln.buf = g.direct, make([]byte, 4096)
	}
	go func() { g.serve <- g.srv.Serve(g.ln) }()

	if cfg.AdminAddr != "off" {
		g.admin, err = obs.ListenAdmin(cfg.AdminAddr, obs.WithHealth(obs.RequireBearer(adminToken, g.adminMux()), g.Ready), g.log)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	g.log.Info("gateway listening", zap.Stringer("addr", g.ln.Addr()), zap.String("nats", nc.ConnectedUrlRedacted()),
		zap.Int("max_sessions", g.hub.Config().MaxSessions))
	return g, nil
}

// Addr is the bound HTTP address.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// AdminAddr is the admin address, or "" if disabled.
func (g *Gateway) AdminAddr() string {
	if g.admin == nil {
		return ""
	}
	return g.admin.Addr().String()
}

// Hub exposes the session hub (for stats and tests).
func (g *Gateway) Hub() *hub.Hub { return g.hub }

// Run serves until ctx ends or the listener fails on its own (an accept
// error), then stops the gateway: when ctx ends, with a drain (Drain),
// then Close. New has started serving: Run is where a caller waits, and
// learns why it ended.
func (g *Gateway) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		g.log.Info("shutting down", zap.Int("streams", g.hub.Len()))
		g.Drain()
		return g.Close()
	case err := <-g.serve:
		g.Close()
		return fmt.Errorf("gateway: http server stopped: %w", err)
	}
}

// Drain makes the gateway not ready (GET /readyz 503), stops accepting,
// and ends its sessions spread over Config.DrainPeriod (hub.Drain): their
// clients reconnect spread out, to the other processes or to this one
// restarted, and resumable ones with their cursor lose nothing.
func (g *Gateway) Drain() {
	g.draining.Store(true)
	g.stopAccepting()
	if g.cfg.DrainPeriod >= 0 {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainPeriod+10*time.Second)
		defer cancel()
		g.hub.Drain(ctx, g.cfg.DrainPeriod, g.cfg.DrainMinRate)
	}
}

// stopAccepting closes the listener (once) and lets the HTTP server
// shut down behind it: fasthttp's Shutdown returns only once every
// connection it serves is idle, and a long-poll waiting on a kept-alive
// connection is not until the hub answers it (Drain, Close), so it is
// not waited for here; serverStopped waits for it.
func (g *Gateway) stopAccepting() {
	g.stopOnce.Do(func() {
		g.stopped = make(chan struct{})
		go func() {
			g.stopErr = g.srv.Shutdown()
			close(g.stopped)
		}()
	})
}

// serverStopped waits for the HTTP server's shutdown, once the hub has
// answered every session, for at most 5 s (a connection it still holds
// then is closed with the process).
func (g *Gateway) serverStopped() error {
	select {
	case <-g.stopped:
		return g.stopErr
	case <-time.After(5 * time.Second):
		return errors.New("gateway: http server: connections still open 5s after shutdown")
	}
}

// Ready says why the gateway should get no new clients, or nil (GET
// /readyz): it is draining, its NATS connection is down, or no router
// answered its ping within Config.ReadyWithin.
func (g *Gateway) Ready() error {
	switch {
	case g.draining.Load():
		return errors.New("gateway: draining")
	case !g.link.nc.IsConnected():
		return fmt.Errorf("gateway: NATS connection %s", g.link.nc.Status())
	}
	if seen := g.clients.routerSeen.Load(); seen == 0 || time.Since(time.Unix(0, seen)) > g.cfg.ReadyWithin {
		return fmt.Errorf("gateway: no router answered within %s", g.cfg.ReadyWithin)
	}
	return nil
}

// Close shuts down: no new connections; queued messages are written; every
// stream ends with the terminating chunk and is logged out; the router is
// told goodbye and the NATS connection drained.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() { g.closeErr = g.close() })
	return g.closeErr
}

func (g *Gateway) close() error {
	g.stopAccepting()
	g.hub.Close()
	err := g.serverStopped()
	g.clients.close()
	g.link.stop()
	if g.admin != nil {
		if aerr := g.admin.Shutdown(); err == nil {
			err = aerr
		}
	}
	g.log.Info("gateway stopped", zap.Uint64("sessions_closed", g.hub.Closes(hub.ReasonShutdown)))
	return err
}
