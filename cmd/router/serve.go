package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/natsconn"

	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/router"
)

func runServe(ctx context.Context, args []string) error {
	verb, args := cli.Verb(args)
	cfg := router.DefaultConfig()
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: router [flags]
       router send [-admin ADDR] ID MESSAGE
       router stats [-admin ADDR]
       router whois [-admin ADDR] ID
       router publish [-admin ADDR] TOPIC MESSAGE
       router broadcast [-admin ADDR] MESSAGE
       router presence [-admin ADDR] TOPIC
       router subscribe [-admin ADDR] ID TOPIC | router unsubscribe [-admin ADDR] ID TOPIC
       router subscribe -file subs.csv [-nats URL]
       router subscriptions [-admin ADDR] ID
       router kick [-admin ADDR] ID
       router gateways [-admin ADDR]
       router nats-auth -dir DIR
       router config [flags]      print the effective configuration (TOML, for -config)
       router version

Runs the message router: login(id, conn), logout(conn), send(id, msg) over
NATS, with an embedded nats-server unless -nats is given.

Every flag may also come from the environment, COMET_ROUTER_<FLAG> (the
name upper-cased, - as _: COMET_ROUTER_RETAIN_AGE=10m), or from the TOML
file -config names (retain-age = "10m"); a flag wins over the
environment, which wins over the file.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.NATSURL, "nats", "", "join this NATS server or cluster (nats://host:port,...) instead of starting an embedded one")
	fs.StringVar(&cfg.Embedded.Addr, "nats-addr", cfg.Embedded.Addr, "listen address of the embedded nats-server")
	fs.StringVar(&cfg.StoreDir, "store", "", "directory where the embedded nats-server keeps the stored subscriptions (JetStream); default: a temporary one, removed when the router stops")
	fs.IntVar(&cfg.StoreReplicas, "store-replicas", 1, "servers of the NATS cluster that keep the stored subscriptions (and, with -redundant, the lease and the history log; 3 in a cluster of three routers survives losing one)")
	fs.BoolVar(&cfg.Redundant, "redundant", false, "run as one of several routers on one NATS: one leads (routes sends, numbers positions, logs them to JetStream), the others follow and take over when its lease ends")
	fs.DurationVar(&cfg.Lease, "lease", cfg.Lease, "with -redundant: how long the leader's lease lasts unrenewed (how soon a standby takes over from a dead leader)")
	fs.IntVar(&cfg.Partitions, "partitions", 1, "split ids into this many partitions (the id modulo the count), each served by its own router (or redundant routers); gateways get the same -partitions")
	fs.IntVar(&cfg.Partition, "partition", 0, "with -partitions: the partition this router serves (0 to partitions-1)")
	fs.StringVar(&cfg.Embedded.ConfigFile, "nats-config", "", "nats-server configuration file for the embedded server: its users and their permissions (router nats-auth writes one)")
	fs.StringVar(&cfg.Embedded.ClusterAddr, "nats-cluster", "", "let the embedded nats-server join a NATS cluster: listen for the other servers here (e.g. 127.0.0.1:6222)")
	fs.Func("nats-routes", "with -nats-cluster: other servers' cluster addresses, comma-separated (nats://host:6222,...; one is enough)", func(v string) error {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				u, err := url.Parse(r)
				if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-route") {
					return fmt.Errorf("route %q: want nats://host:port", r)
				}
				cfg.Embedded.Routes = append(cfg.Embedded.Routes, r)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.Embedded.ClusterName, "nats-cluster-name", "comet", "the NATS cluster's name (the same on every server of it)")
	fs.StringVar(&cfg.Embedded.MonitorAddr, "nats-monitor", "", "serve the embedded nats-server's monitoring endpoints here (e.g. 127.0.0.1:8222)")
	fs.StringVar(&cfg.AdminAddr, "admin", cfg.AdminAddr, `admin HTTP address (/stats, /ids/{id}, /send/{id}, /metrics, /debug/pprof/); "off" disables`)
	fs.DurationVar(&cfg.GatewayTimeout, "gateway-timeout", cfg.GatewayTimeout, "forget a gateway and its logins after this long without a heartbeat")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long to retry connecting to -nats at start")
	fs.IntVar(&cfg.Retention.MaxMessages, "retain-messages", cfg.Retention.MaxMessages, "messages kept per id for resuming long-poll and SSE clients")
	fs.DurationVar(&cfg.Retention.MaxAge, "retain-age", cfg.Retention.MaxAge, "how long a message is kept for resuming clients")
	fs.Int64Var(&cfg.Retention.MaxBytes, "retain-bytes", cfg.Retention.MaxBytes, "memory cap of all kept messages; past it the oldest go first")
	fs.DurationVar(&cfg.Retention.Grace, "resume-grace", cfg.Retention.Grace, "keep an id's history this long after its last long-poll or SSE client left")
	fs.Int64Var(&cfg.Window, "window", cfg.Window, "bytes of deliveries in flight to one gateway before sends to it wait for its done records")
	fs.DurationVar(&cfg.DeliverTimeout, "deliver-timeout", cfg.DeliverTimeout, "count a gateway's copies lost if it has not confirmed them after this long")
	fs.DurationVar(&cfg.OverloadWait, "overload-wait", cfg.OverloadWait, "how long an HTTP send waits for room in the gateways' windows before answering 503")
	fs.IntVar(&cfg.SendLimit, "send-limit", cfg.SendLimit, "bytes of send frames NATS may hold for this router; past it NATS drops them (counted) and their senders get no ack")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "ask admin requests (sends included) for this bearer token (needed for an -admin beyond loopback)")
	fs.BoolVar(&cfg.InsecureOpen, "insecure-open", false, "serve the admin API and the embedded NATS server without tokens on addresses beyond loopback")
	fs.IntVar(&cfg.TopicHistory.MaxMessages, "topic-history", 0, "keep each topic's last N messages, for clients that join with ?rewind=K (or a WebSocket join's \"rewind\") and GET /topics/{topic}/history; 0: none")
	fs.DurationVar(&cfg.TopicHistory.MaxAge, "topic-history-age", cfg.TopicHistory.MaxAge, "with -topic-history: how long a topic's message is kept")
	fs.Int64Var(&cfg.TopicHistory.MaxBytes, "topic-history-bytes", cfg.TopicHistory.MaxBytes, "with -topic-history: memory cap of every topic's kept messages (each counts its length and 64 bytes); past it the oldest go first")
	fs.StringVar(&cfg.Webhook.URL, "webhook", "", "POST batches of events (ids online and offline, topics occupied and vacated, members joined and left) to this URL, signed with -webhook-secret-file (docs/API.md, Webhooks)")
	fs.StringVar(&cfg.Webhook.SecretFile, "webhook-secret-file", "", "with -webhook: file holding the secret (16 bytes or more) each POST's X-Comet-Signature is an HMAC-SHA256 under")
	fs.DurationVar(&cfg.Webhook.Timeout, "webhook-timeout", cfg.Webhook.Timeout, "with -webhook: how long one POST may take before it is tried again")
	fs.Int64Var(&cfg.Webhook.QueueBytes, "webhook-queue", cfg.Webhook.QueueBytes, "with -webhook: bytes of events kept (in JetStream) for a receiver that is slow or down; past it new events are counted lost and the receiver told")
	cfg.NATSAuth.AddFlags(fs)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	settings := cli.NewSettings(fs, "COMET_ROUTER")
	if err := settings.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	if done, err := settings.Done(verb, cfg.Validate, os.Stdout); done {
		return err
	}
	log, err := obs.NewLogger(*level)
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg.Logger = log
	r, err := router.New(cfg)
	if err != nil {
		return err
	}
	log.Info("router running", zap.String("nats", natsconn.Redact(r.NATSURL())), zap.String("admin", r.AdminAddr()), zap.Int("pid", os.Getpid()))
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	select {
	case err := <-ran:
		return err
	case <-ctx.Done():
	}
	log.Info("router stopping")
	select {
	case err := <-ran:
		return err
	case <-time.After(stopLimit):
		// Every step of a stop is bounded; one that hangs anyway is a
		// bug: say where everything is, and exit.
		log.Error("router did not stop in time; exiting (goroutines on stderr)", zap.Duration("limit", stopLimit))
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		return fmt.Errorf("router: not stopped %s after the signal", stopLimit)
	}
}

// stopLimit bounds a router's stop: a leader's handover (about 12 s at
// most), draining NATS (5 s) and its embedded server's shutdown.
const stopLimit = time.Minute
