// Command gateway is the edge process: GET /test/{id} opens a chunked HTML
// stream that receives every message the router sends to id.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/obs"
)

func main() { cli.Main("gateway", run) }

func run(ctx context.Context, args []string) error {
	verb, args := cli.Verb(args)
	cfg := gateway.DefaultConfig()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: gateway [flags]
       gateway config [flags]     print the effective configuration (TOML, for -config)
       gateway version

Serves, for every integer id the router sends messages to:

%s
Clients hold no goroutine and no buffer while idle.

On an address beyond loopback, clients must present a token (JWT, "sub":
their id) with -auth-secret-file or -auth-keys, unless -insecure-open.

Every flag may also come from the environment, COMET_GATEWAY_<FLAG> (the
name upper-cased, - as _: COMET_GATEWAY_WRITE_TIMEOUT=10s), or from the
TOML file -config names (write-timeout = "10s"); a flag wins over the
environment, which wins over the file.

Flags:
`, gateway.Usage())
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "HTTP listen address")
	fs.StringVar(&cfg.AdminAddr, "admin", cfg.AdminAddr, `admin HTTP address (/stats, /metrics, /debug/pprof/); "off" disables`)
	fs.StringVar(&cfg.NATSURL, "nats", cfg.NATSURL, "NATS server the router listens on")
	fs.StringVar(&cfg.Name, "name", "", "this gateway's identity to the router ([A-Za-z0-9_-], at most 64; default gw-<host>-<pid>)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long to retry connecting to NATS at start")
	fs.IntVar(&cfg.Hub.MaxPending, "max-pending", cfg.Hub.MaxPending, "bytes of output kept for a client that does not read; past it the client is disconnected")
	fs.DurationVar(&cfg.Hub.WriteTimeout, "write-timeout", cfg.Hub.WriteTimeout, "disconnect a client whose pending output makes no progress for this long")
	fs.IntVar(&cfg.Hub.Workers, "writers", 0, "goroutines writing messages to streams (0: one per core)")
	fs.IntVar(&cfg.Hub.SendBuffer, "sndbuf", 0, "SO_SNDBUF for stream sockets in bytes (0: kernel default)")
	fs.DurationVar(&cfg.Hub.WriteDelay, "write-delay", cfg.Hub.WriteDelay, "the most a writer that falls behind may hold a busy client's output to gather it into fewer writes (adapts: 0 while the gateway keeps up; negative: never)")
	fs.IntVar(&cfg.Hub.MaxSessions, "max-streams", 0, "most client sessions (streams, SSE streams, waiting long-polls) at once (0: the open-files limit, the most it can be)")
	fs.BoolVar(&cfg.NoDirect, "no-direct", false, "serve /test/ stream requests through fasthttp too, not read from the accepted socket directly")
	fs.IntVar(&cfg.Partitions, "partitions", 1, "the routers split ids into this many partitions (router -partitions): each id's logins go to its partition's routers; must match the routers")
	fs.DurationVar(&cfg.TCPKeepAlive, "tcp-keepalive", cfg.TCPKeepAlive, "TCP keep-alive probes after this long idle, to find vanished clients (negative: none)")
	fs.DurationVar(&cfg.TCPUserTimeout, "tcp-user-timeout", cfg.TCPUserTimeout, "abort a client connection whose sent data is not acknowledged for this long: a client that stopped reading or vanished (negative: the kernel's default)")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", cfg.PollTimeout, "how long a long-poll waits for a message when it gives no ?timeout=")
	fs.DurationVar(&cfg.MaxPollTimeout, "poll-max-timeout", cfg.MaxPollTimeout, "the longest ?timeout= a long-poll may ask (longer ones are cut to it)")
	fs.DurationVar(&cfg.SSEHeartbeat, "sse-heartbeat", cfg.SSEHeartbeat, "write an SSE comment on a stream quiet this long (negative: never)")
	fs.DurationVar(&cfg.StreamHeartbeat, "stream-heartbeat", cfg.StreamHeartbeat, "write a newline chunk on a /test stream quiet this long (0: never)")
	fs.DurationVar(&cfg.SSERetry, "sse-retry", cfg.SSERetry, "reconnection delay EventSource clients are told")
	fs.DurationVar(&cfg.DrainPeriod, "drain-period", cfg.DrainPeriod, "on SIGTERM: turn not ready, stop accepting, and end the sessions spread over this long (WebSockets close 1012, SSE streams get a jittered retry:, long-polls are answered), so clients do not all reconnect in one second (0: all at once)")
	fs.IntVar(&cfg.DrainMinRate, "drain-min-rate", cfg.DrainMinRate, "while draining, end at least this many sessions a second (a few sessions end at once)")
	fs.DurationVar(&cfg.ReadyWithin, "ready-within", cfg.ReadyWithin, "GET /readyz on the admin port says ready while a router answered the gateway's ping (every second) within this long, NATS is up and the gateway is not draining")
	fs.IntVar(&cfg.WSMaxMessage, "ws-max-message", cfg.WSMaxMessage, "bytes of the longest WebSocket client message, at most 1 MiB (past it the socket closes with 1009)")
	fs.IntVar(&cfg.WSControlRate, "ws-control-rate", cfg.WSControlRate, "pings, pongs and empty frames a WebSocket client may send per second (at most 250); past it the socket closes with 1008")
	fs.IntVar(&cfg.WSRequestRate, "ws-request-rate", cfg.WSRequestRate, "messages (requests) a WebSocket client may send per second; past it the client is not read until the next second")
	fs.DurationVar(&cfg.Hub.InputTimeout, "ws-message-timeout", cfg.Hub.InputTimeout, "close a WebSocket client whose frame or fragmented message stays incomplete this long (1008; negative: never)")
	fs.Int64Var(&cfg.Hub.InputBudget, "input-budget", cfg.Hub.InputBudget, "bytes of incomplete client input (WebSocket frames and messages) this process holds in all; past it the largest holders are closed (1009)")
	fs.DurationVar(&cfg.WSPing, "ws-ping", cfg.WSPing, "ping a WebSocket client after this long without a write (negative: never)")
	fs.DurationVar(&cfg.WSPongWait, "ws-pong-wait", cfg.WSPongWait, "close a WebSocket client whose pong has not come this long after the ping")
	wsPublish := fs.Bool("ws-publish", true, "let WebSocket clients publish to the topics they are in")
	fs.BoolVar(&cfg.WSSend, "ws-send", false, "let WebSocket clients send to ids (with tokens: those whose token says \"send\": true)")
	fs.IntVar(&cfg.InboundLimit, "inbound-limit", cfg.InboundLimit, "bytes of frames from the routers NATS may hold for this gateway (the routers' windows keep it far below)")
	fs.StringVar(&cfg.Auth.SecretFile, "auth-secret-file", "", "ask clients for tokens (JWT) signed HS256 with the secret in this file (at least 32 bytes)")
	fs.StringVar(&cfg.Auth.KeysFile, "auth-keys", "", "ask clients for tokens (JWT) signed by these public keys: PEM or JWKS (RS256, ES256, EdDSA; kid honoured)")
	fs.DurationVar(&cfg.Auth.Leeway, "auth-leeway", 0, "clock skew allowed on a token's exp, nbf and iat")
	fs.BoolVar(&cfg.Auth.AllowNoExp, "auth-allow-no-exp", false, "accept tokens without an exp claim (they never expire)")
	fs.StringVar(&cfg.Auth.Audience, "auth-audience", "", "ask every token's aud claim to include this audience")
	fs.StringVar(&cfg.Auth.Issuer, "auth-issuer", "", "ask every token's iss claim to be this issuer")
	fs.DurationVar(&cfg.Auth.MaxLifetime, "auth-max-lifetime", auth.DefaultMaxLifetime, "refuse tokens that expire further than this from now (negative: no bound)")
	fs.StringVar(&cfg.AuthCookie, "auth-cookie", cfg.AuthCookie, "the cookie a token may come in (besides Authorization: Bearer and ?token=)")
	fs.BoolVar(&cfg.InsecureOpen, "insecure-open", false, "serve clients without tokens, and the admin API without a token, on addresses beyond loopback")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "ask admin requests for this bearer token (needed for an -admin beyond loopback)")
	fs.StringVar(&cfg.AllowOrigin, "allow-origin", cfg.AllowOrigin, `web origin whose pages may read SSE streams and long-polls: "*", "none" or one origin (https://app.example.com); browser requests from others get 403`)
	fs.DurationVar(&cfg.HeadTimeout, "head-timeout", cfg.HeadTimeout, "close a connection that has not sent its whole request head this long after it began (slowloris)")
	fs.IntVar(&cfg.PerAddr.Conns, "max-conns-per-addr", 0, "most connections one client address (an IPv6 /64) may hold open; past it 429 (0: no limit; behind a proxy, limit in the proxy)")
	fs.IntVar(&cfg.PerAddr.Rate, "max-conn-rate-per-addr", 0, "most new connections one client address may open per second; past it 429 (0: no limit)")
	fs.StringVar(&cfg.Hooks.Connect, "connect-hook", "", "ask this URL (a JSON POST) whether each client may connect; it answers {\"allow\": true} (optionally with \"topics\" and \"expires\") or {\"allow\": false, \"reason\": ...} (docs/API.md, Hooks)")
	fs.StringVar(&cfg.Hooks.Join, "join-hook", "", "ask this URL (a JSON POST) whether a client may join the topics it asks for (?topics=, a WebSocket join)")
	fs.DurationVar(&cfg.Hooks.Client.Timeout, "hook-timeout", cfg.Hooks.Client.Timeout, "with a hook: how long a client waits for its answer (a free slot included)")
	fs.IntVar(&cfg.Hooks.Client.Concurrency, "hook-concurrency", cfg.Hooks.Client.Concurrency, "with a hook: requests to it in flight at once")
	fs.IntVar(&cfg.Hooks.Client.Queue, "hook-queue", cfg.Hooks.Client.Queue, "with a hook: clients waiting for a slot; past it a client is answered 503 (or, with -hook-down token, let in on its token)")
	fs.DurationVar(&cfg.Hooks.Client.CacheTTL, "hook-cache", 0, "with a hook: remember an answer this long for the same request (id, topics, headers, cookies); 0: ask every time")
	fs.IntVar(&cfg.Hooks.Client.BreakerFailures, "hook-breaker", cfg.Hooks.Client.BreakerFailures, "with a hook: after this many failures in a row, stop asking it for -hook-breaker-open (its clients get -hook-down)")
	fs.DurationVar(&cfg.Hooks.Client.BreakerOpen, "hook-breaker-open", cfg.Hooks.Client.BreakerOpen, "with a hook: how long it is not asked after -hook-breaker failures; then one request tries it")
	fs.StringVar(&cfg.Hooks.Down, "hook-down", cfg.Hooks.Down, "with a hook that cannot answer: refuse (503), or token: let in, on what its token grants, a client with a valid token")
	fs.BoolVar(&cfg.Hooks.AskWithToken, "hook-with-token", false, "ask the hooks about clients with a valid token too (default: a valid token skips them)")
	fs.Func("hook-headers", "with a hook: request headers to pass it, comma-separated (e.g. User-Agent,X-Request-Id)", func(v string) error {
		cfg.Hooks.Headers = gateway.Names(v)
		return nil
	})
	fs.Func("hook-cookies", "with a hook: cookies to pass it, comma-separated (e.g. session)", func(v string) error {
		cfg.Hooks.Cookies = gateway.Names(v)
		return nil
	})
	cfg.NATSAuth.AddFlags(fs)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	procsFlag := fs.String("procs", "1", `gateway processes sharing -addr (SO_REUSEPORT): a number, or "auto" (enough for -expect streams, at least one per core)`)
	expect := fs.Int("expect", 0, "with -procs auto: the number of streams to hold")
	fs.BoolVar(&cfg.ReusePort, "reuseport", false, "set SO_REUSEPORT on the listener (set by -procs for its processes)")
	settings := cli.NewSettings(fs, "COMET_GATEWAY")
	if err := settings.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg.WSNoPublish = !*wsPublish
	if cfg.Name == "" {
		cfg.Name = gateway.DefaultName()
	}
	if cfg.DrainPeriod == 0 {
		cfg.DrainPeriod = -1 // the flag's 0: no spread (Config's 0 is the default)
	}
	procs, err := parseProcs(*procsFlag, *expect)
	if err != nil {
		return err
	}
	if done, err := settings.Done(verb, cfg.Validate, os.Stdout); done {
		return err
	}
	log, err := obs.NewLogger(*level)
	if err != nil {
		return err
	}
	defer log.Sync()
	if procs > 1 {
		return superviseProcs(ctx, fs, cfg, procs, log)
	}
	cfg.Logger = log
	g, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}
