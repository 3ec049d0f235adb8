package natsconn

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/obs"
)

// Options configures Connect.
type Options struct {
	// Name is the connection's name on the server (its monitoring shows
	// it).
	Name string
	// Retry keeps trying to connect for this long, so a process started
	// just before its NATS server still comes up. Zero: one try.
	Retry time.Duration
	// Reconnect keeps reconnecting forever after a lost connection, every
	// 250 ms, buffering up to 64 MiB of publishes meanwhile. Daemons set
	// it; one-shot tools leave it off and fail instead.
	Reconnect bool
	// Log gets disconnects, reconnects and asynchronous errors (such as
	// a slow consumer). Default: none.
	Log *zap.Logger
	// More are further options (an in-process connection, ...).
	More []nats.Option
	// OnReconnect, if set, is called after each reconnection (with
	// Reconnect), from NATS's callback goroutine.
	OnReconnect func(nc *nats.Conn)
}

// Redact returns NATS URLs (one, or a comma-separated list) fit for a
// log: a user, password or token in them is replaced by "redacted"
// (obs.Redact; a URL without a scheme is read as nats://).
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if strings.Contains(p, "@") {
			if p = strings.TrimSpace(p); !strings.Contains(p, "://") {
				p = "nats://" + p
			}
		}
		parts[i] = obs.Redact(p)
	}
	return strings.Join(parts, ",")
}

// Connect dials url with o.
func Connect(url string, o Options) (*nats.Conn, error) {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("nats error", zap.String("subject", subj), zap.Error(err))
		}),
	}
	if o.Reconnect {
		opts = append(opts,
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250*time.Millisecond),
			nats.ReconnectBufSize(64<<20),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("nats disconnected", zap.Error(err))
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("server", nc.ConnectedServerName()))
				if o.OnReconnect != nil {
					o.OnReconnect(nc)
				}
			}),
		)
	} else {
		opts = append(opts, nats.NoReconnect())
	}
	opts = append(opts, o.More...)
	deadline := time.Now().Add(o.Retry)
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("connect to nats %s: %w (is the router running?)", Redact(url), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Drain lets nc deliver what its subscriptions hold and publish what it
// buffered, then closes it; after timeout it closes it anyway.
func Drain(nc *nats.Conn, timeout time.Duration) {
	if nc == nil {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	nc.Close()
}
