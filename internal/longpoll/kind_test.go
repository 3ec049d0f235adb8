//go:build linux

package longpoll_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/hub/hubtest"
	"github.com/cometgw/comet/internal/longpoll"
)

const wait = 5 * time.Second

// answer reads one answer and decodes its body.
func answer(t *testing.T, c *hubtest.Client, status string) longpoll.Answer {
	t.Helper()
	head := c.Until("\r\n\r\n", wait)
	if !strings.HasPrefix(head, status) {
		t.Fatalf("head %q", head)
	}
	body := c.Until("}\n", wait)
	var a longpoll.Answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return a
}

func TestPollKind(t *testing.T) {
	back := make(chan int, 4)
	h := hubtest.Start(t, hub.Config{Handback: func(fd int, _ uint32) { back <- fd }}, longpoll.Poll{ResumeWait: 100 * time.Millisecond})

	t.Run("answered when a message comes", func(t *testing.T) {
		c := h.Open(hub.Request{ID: 1, Cursor: cursor.Cursor{Epoch: 5, Seq: 1}, Wait: time.Minute, KeepAlive: true})
		h.Hub.Resumed(c.Key, 5, 2, 1, false)
		h.Hub.DeliverAt(5, 2, []byte("a\"b"), []uint64{c.Key})
		a := answer(t, c, "HTTP/1.1 200 OK\r\n")
		if a.Cursor != "5-2" || len(a.Messages) != 1 || a.Messages[0].Data != "a\"b" || a.Messages[0].Seq != 2 || a.Missed {
			t.Fatalf("answer %+v", a)
		}
		select {
		case <-back: // kept alive: the socket goes back for the next request
		case <-time.After(wait):
			t.Fatal("no handback")
		}
	})
	t.Run("the catch-up in one answer", func(t *testing.T) {
		c := h.Open(hub.Request{ID: 2, Cursor: cursor.Cursor{Epoch: 5, Seq: 1}, Wait: time.Minute})
		h.Hub.Resumed(c.Key, 5, 2, 3, false)
		h.Hub.DeliverAt(5, 2, []byte("two"), []uint64{c.Key})
		h.Hub.DeliverAt(5, 3, []byte("three"), []uint64{c.Key})
		a := answer(t, c, "HTTP/1.1 200 OK\r\n")
		if a.Cursor != "5-3" || len(a.Messages) != 2 {
			t.Fatalf("answer %+v", a)
		}
		if _, eof := c.Rest(time.Second); !eof {
			t.Fatal("not kept alive, but not closed")
		}
	})
	t.Run("empty at its deadline", func(t *testing.T) {
		c := h.Open(hub.Request{ID: 3, Wait: 50 * time.Millisecond})
		h.Hub.Resumed(c.Key, 6, 1, 0, false)
		if a := answer(t, c, "HTTP/1.1 200 OK\r\n"); a.Cursor != "6-0" || len(a.Messages) != 0 {
			t.Fatalf("answer %+v", a)
		}
	})
	t.Run("503 when the router never answers", func(t *testing.T) {
		c := h.Open(hub.Request{ID: 4, Wait: 50 * time.Millisecond})
		head := c.Until("\r\n\r\n", wait)
		if !strings.HasPrefix(head, "HTTP/1.1 503 ") || !strings.Contains(head, "Retry-After: 1\r\n") {
			t.Fatalf("head %q", head)
		}
	})
	t.Run("shutdown answers what it has", func(t *testing.T) {
		c := h.Open(hub.Request{ID: 5, Wait: time.Minute, KeepAlive: true})
		h.Hub.Resumed(c.Key, 7, 1, 0, false)
		h.Hub.Close() // applies the queued resume answer first
		head := c.Until("\r\n\r\n", wait)
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "Connection: close\r\n") {
			t.Fatalf("head %q", head)
		}
		if _, eof := c.Rest(time.Second); !eof {
			t.Fatal("not closed after the shutdown answer")
		}
	})
}
