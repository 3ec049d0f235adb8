package request_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/request"
	"github.com/cometgw/comet/internal/wire"
)

type outcome struct {
	answer []byte
	err    error
}

// send sends frame and returns where its outcome comes.
func send(t *testing.T, c *request.Client, subject string, frame string) <-chan outcome {
	t.Helper()
	ch := make(chan outcome, 1)
	if err := c.Send(subject, []byte(frame), func(a []byte, err error) { ch <- outcome{a, err} }); err != nil {
		t.Fatal(err)
	}
	return ch
}

func wait(t *testing.T, ch <-chan outcome, within time.Duration) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(within):
		t.Fatalf("no outcome within %s", within)
		return outcome{}
	}
}

func newClient(t *testing.T, nc *nats.Conn, cfg request.Config) *request.Client {
	t.Helper()
	c, err := request.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestClient: answers reach their request; a request nobody takes is
// sent again until someone does (or fails after RetryFor); one nobody
// answers fails after Timeout, after its resends; the table is bounded;
// Close ends what waits.
func TestClient(t *testing.T) {
	ns := natstest.Start(t, false)
	nc := natstest.Connect(t, ns)
	echo := natstest.Connect(t, ns)
	if _, err := echo.Subscribe("echo", func(m *nats.Msg) { m.Respond(append([]byte("re:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	// A receiver that does not take frames, as a router that does not lead.
	refuse := natstest.Connect(t, ns)
	if _, err := refuse.Subscribe("refuse", func(m *nats.Msg) {
		refuse.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{wire.StatusHeader: []string{wire.StatusNotTaken}}})
	}); err != nil {
		t.Fatal(err)
	}
	var silent atomic.Int64
	if _, err := echo.Subscribe("silent", func(*nats.Msg) { silent.Add(1) }); err != nil {
		t.Fatal(err)
	}
	echo.Flush()
	refuse.Flush()

	t.Run("answered", func(t *testing.T) {
		c := newClient(t, nc, request.Config{})
		o := wait(t, send(t, c, "echo", "a"), 5*time.Second)
		if o.err != nil || string(o.answer) != "re:a" {
			t.Fatalf("got %q, %v", o.answer, o.err)
		}
		if a, err := c.Request("echo", []byte("b")); err != nil || string(a) != "re:b" {
			t.Fatalf("Request: %q, %v", a, err)
		}
	})
	t.Run("sent again until taken", func(t *testing.T) {
		c := newClient(t, nc, request.Config{Timeout: 5 * time.Second, RetryEvery: 20 * time.Millisecond})
		ch := send(t, c, "later", "x") // nobody subscribes yet
		time.Sleep(200 * time.Millisecond)
		late := natstest.Connect(t, ns)
		late.Subscribe("later", func(m *nats.Msg) { m.Respond([]byte("taken")) })
		late.Flush()
		if o := wait(t, ch, 5*time.Second); o.err != nil || string(o.answer) != "taken" {
			t.Fatalf("got %q, %v", o.answer, o.err)
		}
		if retried, _ := c.Stats(); retried == 0 {
			t.Error("no retry counted")
		}
	})
	t.Run("not taken", func(t *testing.T) {
		c := newClient(t, nc, request.Config{Timeout: 5 * time.Second, RetryFor: 300 * time.Millisecond, RetryEvery: 20 * time.Millisecond})
		start := time.Now()
		if o := wait(t, send(t, c, "refuse", "x"), 5*time.Second); !errors.Is(o.err, request.ErrNotTaken) {
			t.Fatalf("got %q, %v; want ErrNotTaken", o.answer, o.err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("gave up after %s: before RetryFor", d)
		}
	})
	t.Run("timeout after resends", func(t *testing.T) {
		c := newClient(t, nc, request.Config{Timeout: 100 * time.Millisecond, Resends: 2})
		before := silent.Load()
		if o := wait(t, send(t, c, "silent", "x"), 5*time.Second); !errors.Is(o.err, request.ErrTimeout) {
			t.Fatalf("got %q, %v; want ErrTimeout", o.answer, o.err)
		}
		if got := silent.Load() - before; got != 3 {
			t.Errorf("the silent receiver got %d copies, want 3 (the first and 2 resends)", got)
		}
		if _, resent := c.Stats(); resent != 2 {
			t.Errorf("resent %d, want 2", resent)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		c := newClient(t, nc, request.Config{Max: 2, Timeout: time.Minute})
		send(t, c, "silent", "1")
		send(t, c, "silent", "2")
		if err := c.Send("silent", []byte("3"), func([]byte, error) {}); !errors.Is(err, request.ErrFull) {
			t.Fatalf("third of Max 2: %v, want ErrFull", err)
		}
		if c.Waiting() != 2 {
			t.Errorf("waiting %d", c.Waiting())
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, err := request.New(nc, request.Config{Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ch := send(t, c, "silent", "x")
		c.Close()
		if o := wait(t, ch, time.Second); !errors.Is(o.err, request.ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", o.err)
		}
		if err := c.Send("echo", nil, func([]byte, error) {}); !errors.Is(err, request.ErrClosed) {
			t.Fatalf("send after close: %v", err)
		}
	})
}
