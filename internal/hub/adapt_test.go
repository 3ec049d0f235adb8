package hub

import (
	"testing"
	"time"
)

// The write delay doubles while the writer is behind or the machine is
// busy, up to the limit; holds in between; halves back to 0 once the
// writer keeps up on a machine with CPU to spare, or holds its budget.
func TestAdaptWriteDelay(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: 100 * time.Millisecond}}
	var sc scratch
	var got []time.Duration
	for i := 0; i < 9; i++ {
		h.adapt(&sc, i%2 == 0, 0.5-float64(i%2)*0.45) // behind, or the CPUs busy
		got = append(got, sc.delay)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 100, 100}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("behind or busy: delays %v", got)
		}
	}
	h.adapt(&sc, false, 0.2) // neither busy nor free: hold
	if sc.delay != 100*time.Millisecond {
		t.Fatalf("in between: %s", sc.delay)
	}
	sc.lingering = lingerBudget
	h.adapt(&sc, true, 0)
	if sc.delay != 50*time.Millisecond {
		t.Fatalf("over budget: %s", sc.delay)
	}
	sc.lingering = 0
	for i := 0; i < 6; i++ {
		h.adapt(&sc, false, 0.9)
	}
	if sc.delay != 0 {
		t.Fatalf("free: %s", sc.delay)
	}
	h.cfg.WriteDelay = -1 // never
	h.adapt(&sc, true, 0)
	if sc.delay != 0 {
		t.Fatalf("disabled: %s", sc.delay)
	}
}
