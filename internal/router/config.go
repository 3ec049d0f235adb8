package router

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	embeddednats "github.com/cometgw/comet/embedded-nats"
	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/webhook"
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
	// TopicHistory keeps each topic's last messages for clients that
	// join with rewind and for GET /topics/{topic}/history
	// (topichist.Config; default off).
	TopicHistory topichist.Config
	// Webhook sends the application's backend events about its ids and
	// topics (WebhookConfig; default none).
	Webhook WebhookConfig
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
		TopicHistory:   topichist.DefaultConfig(),
		Webhook:        WebhookConfig{Timeout: 5 * time.Second, QueueBytes: 64 << 20},
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.GatewayTimeout < 100*time.Millisecond {
		return fmt.Errorf("router: gateway timeout %s is below 100ms", c.GatewayTimeout)
	}
	if err := c.TopicHistory.Validate(); err != nil {
		return fmt.Errorf("router: %w", err)
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
	if w := c.Webhook; w.URL != "" {
		if err := webhook.CheckURL(w.URL); err != nil {
			return fmt.Errorf("router: -webhook: %w", err)
		}
		if w.SecretFile == "" {
			return errors.New("router: -webhook needs -webhook-secret-file: the receiver checks each POST's signature with it")
		}
		if w.QueueBytes != 0 && w.QueueBytes < 1<<20 {
			return fmt.Errorf("router: -webhook-queue %d is below 1 MiB", w.QueueBytes)
		}
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
	if c.TopicHistory.MaxAge == 0 {
		c.TopicHistory.MaxAge = def.TopicHistory.MaxAge
	}
	if c.TopicHistory.MaxBytes == 0 {
		c.TopicHistory.MaxBytes = def.TopicHistory.MaxBytes
	}
	if c.Webhook.Timeout <= 0 {
		c.Webhook.Timeout = def.Webhook.Timeout
	}
	if c.Webhook.QueueBytes == 0 {
		c.Webhook.QueueBytes = def.Webhook.QueueBytes
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}
