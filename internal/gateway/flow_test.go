package gateway_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/msggen"
	"github.com/cometgw/comet/internal/router"
)

var seqRe = regexp.MustCompile(`seq=(\d+)'`)

// TestSlowGatewaySlowsSender: a gateway with one writer and a one-batch
// queue cannot write as fast as msggen sends flat out; the router's
// window (64 KiB here) makes the sender wait instead of anything being
// lost. Every client gets every message of its id once, in order; what
// NATS holds for the gateway and what is in flight stay within the window
// and one frame the whole time.
func TestSlowGatewaySlowsSender(t *testing.T) {
	const window = 64 << 10
	r, stopRouter := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second, Window: window})
	defer stopRouter()
	g := startGateway(t, r.NATSURL(), gateway.Config{Hub: hub.Config{Workers: 1, QueueLen: 1}})
	defer g.Close()
	waitFor(t, "gateway known", 5*time.Second, func() bool { return r.Stats().Gateways == 1 })

	const ids, procs, per = 20, 2, 10000
	// Each client checks that its id's numbered seqs come 1, 2, 3...
	var received atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, ids)
	for id := int64(1); id <= ids; id++ {
		s := openStream(t, g, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := 1; ; {
				select {
				case <-done:
					return
				default:
				}
				got := s.TryNext(100 * time.Millisecond)
				if got == "" {
					continue
				}
				m := seqRe.FindStringSubmatch(got)
				if m == nil || m[1] != strconv.Itoa(want) {
					errs <- fmt.Errorf("id %d: message %d is %.60q", id, want, got)
					return
				}
				want++
				received.Add(1)
			}
		}()
	}
	waitFor(t, "logins", 5*time.Second, func() bool { return r.Stats().Conns == ids })

	// Watch the bounds while msggen runs.
	stop := make(chan struct{})
	var peakInflight atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for _, gw := range r.Stats().GatewayList {
				if gw.InflightBytes > peakInflight.Load() {
					peakInflight.Store(gw.InflightBytes)
				}
			}
		}
	}()
	nc, err := nats.Connect(r.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := msggen.Run(context.Background(), nc, msggen.Config{Num: per, Interval: 0, Max: ids, Procs: procs,
		Batch: 1000, InFlight: 8, AckTimeout: 30 * time.Second, Numbered: true})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every message received", 30*time.Second, func() bool { return received.Load() == procs*per || len(errs) > 0 })
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if res.Sent != procs*per || res.Delivered != procs*per || res.Dropped() != 0 || res.Errors != 0 {
		t.Fatalf("msggen: %s", res)
	}
	st, gs := r.Stats(), g.Stats()
	if st.WindowWaits == 0 {
		t.Fatalf("the window never filled: %+v", st)
	}
	// One frame of 1,000 messages is about 45 KB: the window plus the one
	// frame that may go beyond it.
	const bound = window + 64<<10
	if peakInflight.Load() > bound || gs.InboundPeak > bound || gs.InboundDropped != 0 || st.SendFramesDropped != 0 {
		t.Fatalf("in flight peaked at %d, NATS held up to %d for the gateway (dropped %d), %d send frames dropped; bound %d",
			peakInflight.Load(), gs.InboundPeak, gs.InboundDropped, st.SendFramesDropped, bound)
	}
	t.Logf("%s; window waits %d, in flight peak %d B, gateway inbound peak %d B", res, st.WindowWaits, peakInflight.Load(), gs.InboundPeak)
}
