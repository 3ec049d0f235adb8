package routertest

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cometgw/comet/internal/router"
)

// Start runs a router with cfg, defaulting to an embedded NATS server and
// an admin server on free loopback ports. The returned stop function (also
// run at cleanup) stops it and checks that Run returned no error.
func Start(t testing.TB, cfg router.Config) (*router.Router, func()) {
	t.Helper()
	if cfg.Embedded.Addr == "" {
		cfg.Embedded.Addr = "127.0.0.1:0"
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t).Named("router")
	}
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("router run: %v", err)
		}
	}
	t.Cleanup(stop)
	return r, stop
}
