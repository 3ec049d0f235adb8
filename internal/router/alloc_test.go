//go:build !race

package router

import (
	"testing"

	"github.com/cometgw/comet/internal/wire"
)

// TestRouteAllocatesNothing: routing a send into a down frame allocates
// nothing once the frame buffers are warm.
func TestRouteAllocatesNothing(t *testing.T) {
	_, sb := benchRouter(t, 1000, 3)
	msg := []byte("Fake message Num = 1 seq=1")
	id := int64(0)
	send := func() {
		id = id%1000 + 1
		sb.send(id, msg)
		if id%100 == 0 {
			for idx, f := range sb.frames {
				f.b = wire.AppendDownHeader(f.b[:0], 1)
				delete(sb.frames, idx)
				sb.free = append(sb.free, f)
			}
		}
	}
	for i := 0; i < 2000; i++ {
		send()
	}
	if n := testing.AllocsPerRun(10000, send); n != 0 {
		t.Fatalf("%v allocations per send", n)
	}
}
