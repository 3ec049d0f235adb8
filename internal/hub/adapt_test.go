package hub

import (
	"testing"
	"time"
)

// The write delay doubles while the writer is behind (busy most of the
// time, or its batches waiting) or the machine is busy, up to the limit;
// holds in between; once the writer keeps up on a machine with CPU to
// spare it halves, or falls to 0 at once if no batch waited a
// millisecond; it halves too while the writer holds its budget.
func TestAdaptWriteDelay(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: 100 * time.Millisecond}}
	var sc scratch
	var got []time.Duration
	for i := 0; i < 9; i++ {
		switch i % 3 {
		case 0:
			h.adapt(&sc, 0.8, 0, 0.5) // busy
		case 1:
			h.adapt(&sc, 0.1, 12*time.Millisecond, 0.5) // a batch waited
		default:
			h.adapt(&sc, 0.1, 0, 0.05) // the machine busy
		}
		got = append(got, sc.delay)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 100, 100}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("behind or busy: delays %v", got)
		}
	}
	h.adapt(&sc, 0.1, 0, 0.2) // neither busy nor free: hold
	if sc.delay != 100*time.Millisecond {
		t.Fatalf("in between: %s", sc.delay)
	}
	h.adapt(&sc, 0.1, 1500*time.Microsecond, 0.5) // keeping up, a little waiting
	if sc.delay != 50*time.Millisecond {
		t.Fatalf("keeping up: %s", sc.delay)
	}
	sc.lingering = lingerBudget
	h.adapt(&sc, 0.9, 0, 0)
	if sc.delay != 25*time.Millisecond {
		t.Fatalf("over budget: %s", sc.delay)
	}
	sc.lingering = 0
	h.adapt(&sc, 0.1, 100*time.Microsecond, 0.5) // nothing owed
	if sc.delay != 0 {
		t.Fatalf("nothing owed: %s", sc.delay)
	}
	for range 5 { // batches now and then, never waiting: no delay
		h.adapt(&sc, 0.3, 200*time.Microsecond, 0.6)
	}
	if sc.delay != 0 {
		t.Fatalf("a moderate rate: %s", sc.delay)
	}
	h.cfg.WriteDelay = -1 // never
	h.adapt(&sc, 1, time.Second, 0)
	if sc.delay != 0 {
		t.Fatalf("disabled: %s", sc.delay)
	}
}

// A writer's rounds count as busy time and its batches' waits as owed:
// a sweep spent writing gathers, a sweep spent waiting for work does not.
func TestAfterRoundMeasuresBusy(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: time.Second}}
	h.idle.Store(0x3fe0000000000000) // 0.5
	var sc scratch
	start := time.Now()
	h.afterRound(&sc, start, 0) // the first round
	time.Sleep(10 * time.Millisecond)
	h.sweeps.Add(1)
	h.afterRound(&sc, start, 0) // busy since the first round began: all of it
	if sc.delay != time.Millisecond {
		t.Fatalf("a sweep spent busy: %s", sc.delay)
	}
	time.Sleep(20 * time.Millisecond)
	h.sweeps.Add(1)
	h.afterRound(&sc, time.Now(), 0) // a round of no time after 20 ms idle
	if sc.delay != 0 {
		t.Fatalf("a sweep spent waiting: %s", sc.delay)
	}
	now := time.Now()
	h.sweeps.Add(1)
	h.afterRound(&sc, now, now.Add(-15*time.Millisecond).UnixNano()) // a batch that waited 15 ms
	if sc.delay != time.Millisecond {
		t.Fatalf("a batch waited: %s", sc.delay)
	}
}
