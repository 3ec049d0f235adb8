//go:build linux && !race

package chunked_test

import (
	"io"
	"testing"

	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/cursor"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/hub/hubtest"
)

// TestDeliveryAllocatesNothing: a batch of deliveries to streams, applied
// by the hub's writers and written to the sockets, allocates nothing per
// message once the pools are warm.
func TestDeliveryAllocatesNothing(t *testing.T) {
	h := hubtest.Start(t, hub.Config{Workers: 2}, chunked.Stream{})
	const sessions = 50
	var conns []uint64
	for id := int64(1); id <= sessions; id++ {
		c := h.Open(hub.Request{ID: id})
		conns = append(conns, c.Key)
		go io.Copy(io.Discard, c.Conn)
	}
	done := make(chan struct{}, 1)
	var b hub.Batch
	b.Done = func(*hub.Batch) { done <- struct{}{} }
	msg := []byte("Fake message Num = 123456 seq=42 <escaped & all>")
	round := func() {
		b.Reset()
		for i, c := range conns {
			b.Deliver(msg, cursor.Cursor{}, conns[i:i+1])
			b.Deliver(msg, cursor.Cursor{}, []uint64{c})
		}
		h.Hub.Submit(&b)
		<-done
	}
	for i := 0; i < 20; i++ {
		round() // warm the pools and buffers
	}
	allocs := testing.AllocsPerRun(200, round)
	// 100 messages per round: anything under one allocation per round is
	// the runtime's own (a pool refilled after a GC), not per message.
	if allocs >= 1 {
		t.Fatalf("%.2f allocations per round of %d messages", allocs, 2*sessions)
	}
	if st := h.Hub.Stats(); st.Copies.Queued != (20+1+200)*2*sessions || st.Copies.Gone+st.Copies.Slow != 0 {
		t.Fatalf("copies %+v", st.Copies)
	}
}
