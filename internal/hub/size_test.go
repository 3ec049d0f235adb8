package hub

import (
	"testing"
	"unsafe"
)

// An idle session is its slot and nothing else: 72 bytes per client.
func TestSessionIs72Bytes(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n != 72 {
		t.Fatalf("a session slot is %d bytes", n)
	}
}
