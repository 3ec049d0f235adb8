//go:build !race

package wire

import "testing"

// Encoding into a reused buffer and decoding in place allocate nothing.
func TestZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	msg := []byte("Fake message Num = 12")
	conns := []uint64{1, 2, 3 << 40}
	var d Decoder
	var r Record
	r.Conns = make([]uint64, 0, 8)
	n := testing.AllocsPerRun(200, func() {
		b := AppendDownHeader(buf[:0], 1)
		b = AppendDeliver(b, msg, conns)
		b = AppendDeliver(b, msg, conns[:1])
		if _, err := d.Reset(b); err != nil {
			t.Fatal(err)
		}
		for d.Next(&r) {
		}
		s := AppendHeader(buf[:0], KindSend)
		s = AppendSend(s, 42, msg)
		d.Reset(s)
		for d.Next(&r) {
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}
