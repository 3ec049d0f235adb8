package publish_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/router/routertest"
	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/wire"
	"github.com/cometgw/comet/publish"
)

// TestAgainstARouter: sends, publishes, broadcasts and batches through a
// real router and gateway, each answered with what became of it.
func TestAgainstARouter(t *testing.T) {
	r, _ := routertest.Start(t, router.Config{})
	g, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", AdminAddr: "off", NATSURL: r.NATSURL(), Name: "pub-gw",
		Logger: zaptest.NewLogger(t).Named("gateway")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	testclient.WaitFor(t, "the gateway known", 5*time.Second, func() bool { return r.Stats().Gateways == 1 })

	p, err := publish.Connect(publish.Config{URL: r.NATSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()

	res, err := p.Send(ctx, 7, []byte("to nobody"))
	if err != nil || res.Accepted != 1 || res.Void != 1 || res.Delivered != 0 {
		t.Fatalf("send to nobody: %+v %v", res, err)
	}
	s := testclient.Open(t, g.Addr().String(), 5)
	testclient.WaitFor(t, "the stream logged in", 5*time.Second, func() bool { return r.Stats().Conns == 1 })
	if res, err = p.Send(ctx, 5, []byte("hello")); err != nil || res.Delivered != 1 || res.Void != 0 {
		t.Fatalf("send to a stream: %+v %v", res, err)
	}
	if got := s.Next(5 * time.Second); got != testclient.Msg(1, "hello") {
		t.Fatalf("the stream got %q", got)
	}
	if res, err = p.Publish(ctx, "empty-room", []byte("anyone?")); err != nil || res.Void != 1 {
		t.Fatalf("publish to an empty topic: %+v %v", res, err)
	}
	if res, err = p.Broadcast(ctx, []byte("all")); err != nil || res.Delivered != 1 {
		t.Fatalf("broadcast: %+v %v", res, err)
	}
	s.Next(5 * time.Second)

	b := p.Batch()
	for _, m := range []string{"a", "b", "c"} {
		if err := b.Send(5, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	b.Send(8, []byte("nobody"))
	if res, err = p.Flush(ctx, b); err != nil || res.Accepted != 4 || res.Delivered != 3 || res.Void != 1 || b.Len() != 0 {
		t.Fatalf("batch: %+v %v (len after %d)", res, err, b.Len())
	}
	for i, m := range []string{"a", "b", "c"} {
		if got := s.Next(5 * time.Second); got != testclient.Msg(3+i, m) {
			t.Fatalf("batch message %d: %q", i, got)
		}
	}

	// Refused before anything is sent.
	if err := b.Publish("bad topic!", []byte("x")); err == nil || !strings.Contains(err.Error(), "topic") {
		t.Errorf("bad topic: %v", err)
	}
	if _, err := p.Send(ctx, 5, make([]byte, wire.MaxMessage+1)); err == nil {
		t.Error("an oversized message was taken")
	}
	p.Close()
	if _, err := p.Send(ctx, 5, []byte("late")); !errors.Is(err, publish.ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
}

// TestHonestErrors: no router is ErrNoRouter (nothing sent); a router
// that takes the frame and never answers is ErrTimeout (may or may not),
// after the resends, each a copy with the same frame-id; a context that
// ends first says so.
func TestHonestErrors(t *testing.T) {
	ns := natstest.Start(t, false)
	nc := natstest.Connect(t, ns)

	p, err := publish.New(nc, publish.Config{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	if _, err := p.Send(t.Context(), 1, []byte("x")); !errors.Is(err, publish.ErrNoRouter) {
		t.Fatalf("no router: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("no router took %s to say so", d)
	}

	// A "router" that takes frames and never answers.
	silent := natstest.Connect(t, ns)
	var copies atomic.Int64
	ids := make(chan uint64, 8)
	silent.QueueSubscribe(wire.SubjectSend, wire.QueueRouters, func(m *nats.Msg) {
		copies.Add(1)
		if _, n, ok := wire.FrameID(m.Data); ok {
			ids <- n
		}
	})
	silent.Flush()
	q, err := publish.New(nc, publish.Config{Timeout: 200 * time.Millisecond, Resends: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, err = q.Send(t.Context(), 1, []byte("x"))
	if !errors.Is(err, publish.ErrTimeout) || !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("silent router: %v", err)
	}
	if copies.Load() != 3 {
		t.Errorf("the silent router got %d copies, want 3 (the frame and 2 resends)", copies.Load())
	}
	first := <-ids
	for range 2 {
		if n := <-ids; n != first {
			t.Errorf("a copy had frame number %d, the first %d", n, first)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.Send(ctx, 1, []byte("x")); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("context ended: %v", err)
	}
}

// TestPartitions: with Config.Partitions, a batch's sends go to their
// id's partition's subject and its publishes to any router; the results
// of the frames sum to one, FlushAsync calls done once per frame, and a
// client told of partitions the routers do not have says so.
func TestPartitions(t *testing.T) {
	a, _ := routertest.Start(t, router.Config{Partitions: 2, Partition: 0})
	b, _ := routertest.Start(t, router.Config{NATSURL: a.NATSURL(), Partitions: 2, Partition: 1})
	g, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", AdminAddr: "off", NATSURL: a.NATSURL(), Name: "part-gw", Partitions: 2,
		Logger: zaptest.NewLogger(t).Named("gateway")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	testclient.WaitFor(t, "the gateway known to both", 5*time.Second, func() bool { return a.Stats().Gateways == 1 && b.Stats().Gateways == 1 })
	// ids 2 and 3 are in different partitions.
	if wire.Partition(2, 2) == wire.Partition(3, 2) {
		t.Fatal("ids 2 and 3 share a partition: pick others")
	}
	s2 := testclient.Open(t, g.Addr().String(), 2)
	s3 := testclient.Open(t, g.Addr().String(), 3)
	testclient.WaitFor(t, "each router holds its login", 5*time.Second, func() bool { return a.Stats().Conns == 1 && b.Stats().Conns == 1 })

	p, err := publish.Connect(publish.Config{URL: a.NATSURL(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	batch := p.Batch()
	batch.Send(2, []byte("to 2"))
	batch.Send(3, []byte("to 3"))
	batch.Broadcast([]byte("to all"))
	res, err := p.Flush(t.Context(), batch)
	if err != nil || res.Accepted != 3 || res.Messages != 3 || res.Delivered != 4 {
		t.Fatalf("a batch over two partitions: %+v %v", res, err)
	}
	for _, s := range []*testclient.Stream{s2, s3} {
		got := []string{s.Next(5 * time.Second), s.Next(5 * time.Second)}
		if !strings.Contains(strings.Join(got, ""), "to all") {
			t.Errorf("a stream got %q", got)
		}
	}

	var frames, messages, delivered atomic.Int64
	for i := range 50 {
		batch.Send(2, []byte("async"))
		batch.Send(3, []byte("async"))
		batch.Send(int64(100+i), []byte("to nobody"))
		p.FlushAsync(t.Context(), batch, func(res publish.Result, err error) {
			if err != nil {
				t.Errorf("async frame: %v", err)
			}
			frames.Add(1)
			messages.Add(int64(res.Messages))
			delivered.Add(int64(res.Delivered))
		})
	}
	p.Wait()
	if frames.Load() != 100 || messages.Load() != 150 || delivered.Load() != 100 {
		t.Errorf("async: %d frames, %d messages, %d delivered; want 100, 150, 100", frames.Load(), messages.Load(), delivered.Load())
	}
	if retried, resent := p.Stats(); retried != 0 || resent != 0 {
		t.Errorf("stats: %d retried, %d resent", retried, resent)
	}

	// Routers of 2 partitions do not serve a client told of 4.
	_, err = publish.Connect(publish.Config{URL: a.NATSURL(), Partitions: 4, Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "-partitions 4") {
		t.Errorf("a client of 4 partitions: %v", err)
	}
}
