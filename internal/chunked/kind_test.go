//go:build linux

package chunked_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/hub/hubtest"
)

const wait = 5 * time.Second

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

func TestStreamKind(t *testing.T) {
	h := hubtest.Start(t, hub.Config{WriteTimeout: 200 * time.Millisecond}, chunked.Stream{Heartbeat: 100 * time.Millisecond})
	c := h.Open(hub.Request{ID: 42})
	c.Until(chunked.StreamHeader+chunk("Comet gateway welcomes you! Your Id: 42<br/>\n"), wait)
	old := h.Open(hub.Request{ID: 42, HTTP10: true})
	old.Until(chunked.StreamHeader10+"Comet gateway welcomes you! Your Id: 42<br/>\n", wait)

	h.Hub.Deliver([]byte("<b>&'hi'"), []uint64{c.Key, old.Key})
	h.Hub.Deliver([]byte("two"), []uint64{c.Key, old.Key})
	c.Until(chunk("Recvd msg #1: '&lt;b&gt;&amp;&#39;hi&#39;'<br/>\n")+chunk("Recvd msg #2: 'two'<br/>\n"), wait)
	old.Until("Recvd msg #1: '&lt;b&gt;&amp;&#39;hi&#39;'<br/>\nRecvd msg #2: 'two'<br/>\n", wait)

	c.Until(chunk("\n"), wait) // the heartbeat chunk
	old.Until("\n", wait)

	h.Hub.Close()
	if out, eof := c.Rest(time.Second); !eof || len(out) < 5 || out[len(out)-5:] != chunked.LastChunk {
		t.Fatalf("after shutdown: %q (closed %t)", out, eof)
	}
	if out, eof := old.Rest(time.Second); !eof || len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatalf("HTTP/1.0 after shutdown: %q (closed %t)", out, eof)
	}
}
