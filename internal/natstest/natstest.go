// Package natstest starts NATS servers and connections for tests: on
// free loopback ports, gone when the test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	embeddednats "github.com/cometgw/comet/embedded-nats"
)

// Start starts a NATS server on a free loopback port, logging to the
// test, shut down when the test ends; with jetStream, JetStream is on
// with its files in a temporary directory.
func Start(t testing.TB, jetStream bool) *embeddednats.Server {
	t.Helper()
	cfg := embeddednats.Config{Addr: "127.0.0.1:0", Logger: zaptest.NewLogger(t).Named("nats")}
	if jetStream {
		cfg.StoreDir = t.TempDir()
	}
	ns, err := embeddednats.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// Connect connects to ns, closed when the test ends.
func Connect(t testing.TB, ns *embeddednats.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
