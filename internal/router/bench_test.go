package router

import (
	"fmt"
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/wire"
)

// benchRouter is a router without NATS: a registry of conns logged in on
// gateways, the retention store, and a send batch whose frames are
// dropped when full instead of published.
func benchRouter(b testing.TB, conns, gateways int) (*Router, *sendBatch) {
	b.Helper()
	store, err := retention.NewStore(retention.Config{})
	if err != nil {
		b.Fatal(err)
	}
	r := &Router{log: zap.NewNop(), reg: registry.New(), store: store, gws: newGateways()}
	for g := 1; g <= gateways; g++ {
		r.gws.add("gw"+strconv.Itoa(g), 1)
	}
	for c := 0; c < conns; c++ {
		r.reg.Login(int64(c+1), registry.Conn{GW: uint32(1 + c%gateways), Conn: uint64(c)})
	}
	sb := newSendBatch(r)
	sb.begin(&pendingAck{waiting: 1})
	return r, sb
}

// BenchmarkRoute: what the router does per send, on one core: give it its
// position (none: no resumable client), look its id up, and write it into
// the down frame of its gateway. b.N sends to random ids among conns.
func BenchmarkRoute(b *testing.B) {
	for _, conns := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			_, sb := benchRouter(b, conns, 6)
			msg := []byte("Fake message Num = 123456 seq=42")
			ids := make([]int64, 4096)
			for i := range ids {
				ids[i] = int64(1 + (i*7919)%conns)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sb.send(ids[i%len(ids)], msg)
				if i%256 == 255 { // a send frame's worth: drop the frames
					for idx, f := range sb.frames {
						f.b = wire.AppendDownHeader(f.b[:0], 1)
						delete(sb.frames, idx)
						sb.free = append(sb.free, f)
					}
					sb.ready = sb.ready[:0]
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
		})
	}
}
