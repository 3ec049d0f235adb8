package msggen

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/router/routertest"
	"github.com/cometgw/comet/internal/wire"
)

func startRouter(t *testing.T) *nats.Conn {
	t.Helper()
	r, _ := routertest.Start(t, router.Config{AdminAddr: "off"})
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestModes(t *testing.T) {
	nc := startRouter(t)
	tests := []struct {
		name    string
		cfg     Config
		sent    uint64
		minTime time.Duration
	}{
		{"interval", Config{Num: 20, Interval: 10 * time.Millisecond, Max: 5, Procs: 2}, 40, 150 * time.Millisecond},
		{"flat out", Config{Num: 5000, Max: 100, Procs: 3, Batch: 100}, 15000, 0},
		{"rate", Config{Num: 100, Rate: 400, Max: 5, Procs: 2, Batch: 10}, 200, 400 * time.Millisecond},
		{"nothing", Config{Num: 0, Max: 1, Procs: 1}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Batch == 0 {
				cfg.Batch = 256
			}
			cfg.AckTimeout = 5 * time.Second
			var progress bytes.Buffer
			cfg.Progress, cfg.Every = &progress, 100*time.Millisecond
			res, err := Run(context.Background(), nc, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != tt.sent || res.Void != tt.sent || res.Errors != 0 || res.Lost != 0 {
				t.Fatalf("result %+v", res)
			}
			if res.Elapsed < tt.minTime {
				t.Fatalf("took %s, pacing wants at least %s", res.Elapsed, tt.minTime)
			}
			if !strings.Contains(res.String(), "sent ") {
				t.Fatalf("summary %q", res)
			}
		})
	}
}

func TestCancelStops(t *testing.T) {
	nc := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, nc, Config{Num: 1000000, Interval: 10 * time.Millisecond, Max: 5, Procs: 2, Batch: 1, AckTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Sent > 100 {
		t.Fatalf("sent %d in 200ms at 2x100/s", res.Sent)
	}
}

func TestNoRouter(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t, false)) // no router
	_, err := Run(context.Background(), nc, Config{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: time.Second})
	if !errors.Is(err, ErrNoRouter) {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Num: -1, Max: 1, Procs: 1, Batch: 1, AckTimeout: 1},
		{Num: 1, Max: 0, Procs: 1, Batch: 1, AckTimeout: 1},
		{Num: 1, Max: 1, Procs: 0, Batch: 1, AckTimeout: 1},
		{Num: 1, Max: 1, Procs: 1, Batch: 0, AckTimeout: 1},
		{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: 0},
		{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: 1, Rate: -1},
		{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: 1, Interval: -1},
		{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: 1, Resends: -1},
		{Num: 1, Max: 1, Procs: 1, Batch: 1, AckTimeout: time.Minute, Resends: 2}, // past the routers' window
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestResends: a frame with no ack within AckTimeout is sent again, the
// same bytes (its frame-id first), up to Resends times. The "router"
// here drops every frame's first copy, as a NATS server that stops with
// it would, and answers the second (once with a retaken ack, as a
// router that took over does); with Resends 0 the frames count
// unacknowledged.
func TestResends(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t, false))
	seen := map[[2]uint64][]byte{}
	var mu sync.Mutex
	answered, plain := 0, 0
	nc.Subscribe(wire.SubjectSend, func(m *nats.Msg) {
		sender, n, ok := wire.FrameID(m.Data)
		if !ok {
			if len(m.Data) == 2 { // the ping
				m.Respond(wire.AppendAck(wire.AppendHeader(nil, wire.KindAck), 0, 0, 0, wire.Tally{}))
			} else if cfg := m.Data; len(cfg) > 2 {
				mu.Lock()
				plain++ // without -resends: no frame-id; lost
				mu.Unlock()
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		first, again := seen[[2]uint64{sender, n}]
		if !again {
			seen[[2]uint64{sender, n}] = bytes.Clone(m.Data)
			return // lost
		}
		if !bytes.Equal(first, m.Data) {
			t.Errorf("the copy differs: % x, first % x", m.Data, first)
		}
		var d wire.Decoder
		d.Reset(m.Data)
		var rec wire.Record
		sends := uint64(0)
		for d.Next(&rec) {
			if rec.Op == wire.OpSend {
				sends++
			}
		}
		a := wire.AppendAck(wire.AppendHeader(nil, wire.KindAck), sends, 0, 0, wire.Tally{Delivered: sends})
		if answered == 0 {
			a = wire.AppendRetaken(wire.AppendAck(wire.AppendHeader(nil, wire.KindAck), sends, 0, 0, wire.Tally{}))
		}
		answered++
		m.Respond(a)
	})
	nc.Flush()
	cfg := Config{Num: 30, Interval: 10 * time.Millisecond, Max: 5, Procs: 1, Batch: 10, AckTimeout: 200 * time.Millisecond, Resends: 2, InFlight: 1}
	res, err := Run(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if res.Sent != 30 || res.Lost != 0 || res.Resent != uint64(len(seen)) || res.Retaken == 0 || res.Delivered != 30-res.Retaken {
		t.Errorf("result %+v (%d frames)", res, len(seen))
	}
	mu.Unlock()
	if !strings.Contains(res.String(), "frames sent again (no ack") {
		t.Errorf("summary %q", res)
	}
	cfg.Resends = 0
	res, err = Run(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if res.Sent != 0 || res.Lost != 30 || res.Resent != 0 || uint64(plain) != res.Errors {
		t.Errorf("without resends: %+v, %d frames without a frame-id (want one per frame)", res, plain)
	}
}
