//go:build linux

package sse_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/hub/hubtest"
	"github.com/cometgw/comet/internal/sse"
)

const wait = 5 * time.Second

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

func TestStreamKind(t *testing.T) {
	h := hubtest.Start(t, hub.Config{WriteTimeout: 200 * time.Millisecond},
		sse.Stream{Retry: 1500 * time.Millisecond, Heartbeat: 100 * time.Millisecond, CORS: "Access-Control-Allow-Origin: *\r\n"})
	c := h.Open(hub.Request{ID: 7, Cursor: cursor.Cursor{Epoch: 0xab, Seq: 2}})
	c.Until("HTTP/1.1 200 OK\r\nServer: comet-gateway\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache, no-store\r\n"+
		"Access-Control-Allow-Origin: *\r\nTransfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n\r\n"+chunk("retry: 1500\n\n"), wait)
	if !h.L.Has(fmt.Sprintf("resume %d 7 ab-2", c.Key)) {
		t.Fatalf("events %v", h.L.Events())
	}
	h.Hub.Resumed(c.Key, 0xab, 3, 4, false)
	c.Until(chunk("id: ab-2\n\n"), wait)
	h.Hub.DeliverAt(0xab, 3, []byte("three"), []uint64{c.Key})
	h.Hub.DeliverAt(0xab, 3, []byte("three again"), []uint64{c.Key})
	h.Hub.DeliverAt(0xab, 4, []byte("four\nlines"), []uint64{c.Key})
	c.Until(chunk("id: ab-3\ndata: three\n\n")+chunk("id: ab-4\ndata: four\ndata: lines\n\n"), wait)

	// The router lost the history: a new epoch, said with a missed event.
	h.Hub.Resumed(c.Key, 0xcd, 1, 0, true)
	c.Until(chunk("event: missed\nid: cd-0\ndata: {\"missed\":true,\"cursor\":\"cd-0\"}\n\n"), wait)

	c.Until(chunk(": \n\n"), wait) // heartbeat
	if st := h.Hub.Stats(); st.Duplicates != 1 || st.Messages != 2 {
		t.Fatalf("stats %+v", st)
	}
}
