package hub

import (
	"testing"
	"time"
)

// The write delay doubles while the writer is behind (busy most of the
// time with batches queued, or its batches waiting long) or the machine
// has been saturated for saturatedIn sweeps, up to the limit; holds in
// between; once the writer keeps up on a machine with CPU to spare it
// halves, or falls to 0 at once if no batch waited a millisecond; it
// halves too while the writer holds its budget.
func TestAdaptWriteDelay(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: 100 * time.Millisecond}}
	var sc scratch
	var got []time.Duration
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			h.adapt(&sc, 0.8, 2*time.Millisecond, 0.5) // busy, batches queued
		} else {
			h.adapt(&sc, 0.1, 12*time.Millisecond, 0.5) // a batch waited
		}
		got = append(got, sc.delay)
	}
	for i := 0; i < saturatedIn+1; i++ {
		h.adapt(&sc, 0.1, 0, 0.05) // the machine busy, nothing owed
		got = append(got, sc.delay)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32, 32, 32, 32, 32, 32, 64, 100}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("behind or saturated: delays %v", got)
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
	// One long round with nothing queued behind it (a broadcast to
	// every stream) is not a backlog: no delay.
	h.adapt(&sc, 1, 0, 0.5)
	if sc.delay != 0 {
		t.Fatalf("one long round: %s", sc.delay)
	}
	// A neighbour's burst: the machine saturated for less than
	// saturatedIn sweeps, then not: the count starts again.
	for range saturatedIn - 1 {
		h.adapt(&sc, 0.1, 0, 0.05)
	}
	h.adapt(&sc, 0.1, 0, 0.2)
	h.adapt(&sc, 0.1, 0, 0.05)
	if sc.delay != 0 || sc.saturated != 1 {
		t.Fatalf("a burst: %s, %d sweeps saturated", sc.delay, sc.saturated)
	}
	h.cfg.WriteDelay = -1 // never
	h.adapt(&sc, 1, time.Second, 0)
	if sc.delay != 0 {
		t.Fatalf("disabled: %s", sc.delay)
	}
}

// A writer's rounds count as busy time and what its batches waited for
// its previous round as owed: a sweep spent writing with batches queued
// gathers; a sweep spent waiting for work does not, nor a batch that
// waited for a CPU rather than for the writer.
// Saturation counts sweeps in a row: rounds whose sweeps are apart (a
// writer idle between bursts) start the count again.
func TestSaturationNeedsSweepsInARow(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: 4 * time.Second}}
	h.idle.Store(0x3fa999999999999a) // 0.05: saturated
	var sc scratch
	for range 2 * saturatedIn { // a burst each second sweep, idle between
		h.sweeps.Add(2)
		h.afterRound(&sc, time.Now(), 0, 1)
	}
	if sc.delay != 0 || sc.saturated != 1 {
		t.Fatalf("bursts apart: %s, %d sweeps saturated", sc.delay, sc.saturated)
	}
	for range saturatedIn - 1 { // rounds in every sweep: the count goes on to saturatedIn
		h.sweeps.Add(1)
		h.afterRound(&sc, time.Now(), 0, 1)
	}
	if sc.delay != time.Millisecond {
		t.Fatalf("sustained: %s, %d sweeps saturated", sc.delay, sc.saturated)
	}
}

func TestAfterRoundMeasuresBusy(t *testing.T) {
	h := &Hub{cfg: Config{WriteDelay: time.Second}}
	h.idle.Store(0x3fe0000000000000) // 0.5
	var sc scratch
	start := time.Now()
	h.afterRound(&sc, start, 0, 1) // the first round
	end := sc.lastEnd
	time.Sleep(10 * time.Millisecond)
	h.sweeps.Add(1)
	// Busy since the first round began (all of the sweep), its batch
	// queued 2 ms before the first round ended.
	h.afterRound(&sc, start, end-int64(2*time.Millisecond), 1)
	if sc.delay != time.Millisecond {
		t.Fatalf("a sweep spent busy with batches queued: %s", sc.delay)
	}
	time.Sleep(20 * time.Millisecond)
	h.sweeps.Add(1)
	h.afterRound(&sc, time.Now(), 0, 1) // a round of no time after 20 ms idle
	if sc.delay != 0 {
		t.Fatalf("a sweep spent waiting: %s", sc.delay)
	}
	now := time.Now()
	h.sweeps.Add(1)
	h.afterRound(&sc, now, sc.lastEnd-int64(15*time.Millisecond), 1) // a batch that waited 15 ms for the last round
	if sc.delay != time.Millisecond {
		t.Fatalf("a batch waited: %s", sc.delay)
	}
	time.Sleep(20 * time.Millisecond)
	now = time.Now()
	h.sweeps.Add(1)
	h.afterRound(&sc, now, now.Add(-15*time.Millisecond).UnixNano(), 1) // queued after the last round ended
	if sc.delay != 0 {
		t.Fatalf("a lone batch that waited for a CPU: %s", sc.delay)
	}
	now = time.Now()
	h.sweeps.Add(1)
	h.afterRound(&sc, now, now.Add(-15*time.Millisecond).UnixNano(), 3) // a queue of three waited 15 ms
	if sc.delay != time.Millisecond {
		t.Fatalf("a queue that waited: %s", sc.delay)
	}
}
