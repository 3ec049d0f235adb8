package embeddednats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Config configures the embedded server.
type Config struct {
	// Addr is the client listen address. Default "127.0.0.1:4222"; port 0
	// (or -1) picks a free port.
	Addr string
	// MonitorAddr, if set, serves nats-server's HTTP monitoring
	// (/varz, /connz, ...) there. Default "": off.
	MonitorAddr string
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Default 10s.
	ReadyTimeout time.Duration
	// MaxPayload is the largest message the server accepts. Default 8 MiB
	// (nats-server's own default is 1 MiB; batched frames need more).
	MaxPayload int32
	// Logger receives the server's logs. Default: zap.NewNop().
	Logger *zap.Logger
	// Debug turns on the server's debug logs.
	Debug bool
	// Token, if set, is asked of every client (the router's own
	// connection too): without it no one can publish or subscribe.
	Token string
	// ConfigFile, if set, is a nats-server configuration file read
	// first: its authorization (users, NKeys and their permissions, as
	// `router nats-auth` writes) and any other setting. Addr, MonitorAddr
	// and the fields above are set over it.
	ConfigFile string
	// ClusterAddr, if set, is where this server listens for the other
	// servers of its NATS cluster (nats-server's cluster port), so that
	// several routers' embedded servers form one NATS.
	ClusterAddr string
	// Routes are the cluster addresses of other servers of the cluster
	// (nats://host:port); one is enough, the servers tell one another
	// the rest. This server's own address may be among them.
	Routes []string
	// ClusterName names the cluster. Default "comet".
	ClusterName string
	// StoreDir, if set, turns JetStream on with its files there (the
	// stored subscriptions live in it).
	StoreDir string
	// RequireAuth refuses to start a server that asks clients for no
	// credentials (no Token, and no users in ConfigFile).
	RequireAuth bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:4222", ReadyTimeout: 10 * time.Second, MaxPayload: 8 << 20}
}

// ClusterAuthorized reports whether the nats-server configuration file
// path (nats-server's own parser reads it) makes servers that join the
// cluster authenticate: a cluster authorization block (a user and
// password, or a token), or TLS that verifies their certificates.
func ClusterAuthorized(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return false, fmt.Errorf("embeddednats: %w", err)
	}
	c := opts.Cluster
	if c.Username != "" && c.Password != "" {
		return true, nil
	}
	return c.TLSConfig != nil && c.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert, nil
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("embeddednats: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("embeddednats: address %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Addr == "" {
		cfg.Addr = def.Addr
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = def.ReadyTimeout
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = def.MaxPayload
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	host, port, err := splitHostPort(cfg.Addr)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("embeddednats: %w", err)
		}
	}
	if opts.ServerName == "" {
		opts.ServerName = "comet-embedded"
		if cfg.ClusterAddr != "" {
			// Unique within the cluster, and the same when the router
			// restarts: JetStream knows its peers by name, and a node
			// that came back under another would leave the streams it
			// kept one replica short (two such restarts: no quorum).
			host, _ := os.Hostname()
			opts.ServerName = fmt.Sprintf("comet-%s-%s", host, strings.ReplaceAll(cfg.ClusterAddr, ":", "-"))
		}
	}
	if cfg.ClusterAddr != "" {
		ch, cp, err := splitHostPort(cfg.ClusterAddr)
		if err != nil {
			return nil, err
		}
		opts.Cluster.Host, opts.Cluster.Port = ch, cp
		opts.Cluster.Name = cfg.ClusterName
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "comet"
		}
		if len(cfg.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
			// Routes given without credentials log in with this
			// server's own cluster authorization: every server of the
			// cluster shares it (router nats-auth writes it once).
			if opts.Cluster.Username != "" {
				for _, u := range opts.Routes {
					if u.User == nil {
						u.User = url.UserPassword(opts.Cluster.Username, opts.Cluster.Password)
					}
				}
			}
		}
	} else if len(cfg.Routes) > 0 {
		return nil, fmt.Errorf("embeddednats: routes %v without a cluster address to listen on", cfg.Routes)
	}
	opts.Host, opts.Port = host, port
	opts.MaxPayload = cfg.MaxPayload
	opts.MaxPending = 256 << 20
	opts.NoSigs = true
	// A clustered JetStream talks through the system account.
	opts.NoSystemAccount = (opts.NoSystemAccount || len(opts.Accounts) == 0) && cfg.ClusterAddr == ""
	opts.Debug = opts.Debug || cfg.Debug
	if cfg.StoreDir != "" {
		opts.JetStream, opts.StoreDir = true, cfg.StoreDir
	}
	if cfg.Token != "" {
		opts.Authorization = cfg.Token
	}
	if cfg.RequireAuth && opts.Authorization == "" && len(opts.Users) == 0 && len(opts.Nkeys) == 0 && len(opts.TrustedOperators) == 0 && opts.AuthCallout == nil {
		return nil, fmt.Errorf("embeddednats: %s asks clients for no credentials: give a token, or users in a configuration file", cfg.Addr)
	}
	if cfg.MonitorAddr != "" {
		mh, mp, err := splitHostPort(cfg.MonitorAddr)
		if err != nil {
			return nil, err
		}
		opts.HTTPHost, opts.HTTPPort = mh, mp
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embeddednats: %w", err)
	}
	ns.SetLoggerV2(&zapLogger{l: cfg.Logger.Named("nats").WithOptions(zap.AddCallerSkip(1)).Sugar()}, cfg.Debug, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embeddednats: not ready to accept connections on %s within %s", cfg.Addr, cfg.ReadyTimeout)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Addr is the client listen address actually bound.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// InProcess returns a nats.Option that connects a client in-process, with
// no TCP hop. Clients in other processes use ClientURL.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	if s == nil || s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// ErrNotRunning is returned by Running when the server has stopped.
var ErrNotRunning = errors.New("embeddednats: server not running")

// Running reports ErrNotRunning once the server has stopped.
func (s *Server) Running() error {
	if s.ns.Running() {
		return nil
	}
	return ErrNotRunning
}

// zapLogger adapts zap to nats-server's Logger interface.
type zapLogger struct{ l *zap.SugaredLogger }

func (z *zapLogger) Noticef(format string, v ...any) { z.l.Infof(format, v...) }
func (z *zapLogger) Warnf(format string, v ...any)   { z.l.Warnf(format, v...) }

// Fatalf logs at error level: an embedded server must not exit the process.
func (z *zapLogger) Fatalf(format string, v ...any) { z.l.Errorf(format, v...) }
func (z *zapLogger) Errorf(format string, v ...any) { z.l.Errorf(format, v...) }
func (z *zapLogger) Debugf(format string, v ...any) { z.l.Debugf(format, v...) }
func (z *zapLogger) Tracef(format string, v ...any) { z.l.Debugf(format, v...) }
