// Package latency is a lock-free histogram of durations with fixed
// buckets, cheap enough for the hot paths (one atomic add per bucket and
// two for the count and sum), read as a Prometheus histogram when
// scraped (see obs.Metrics.Latency) and as quantiles by the benchmarks.
package latency

import (
	"sort"
	"sync/atomic"
	"time"
)

// Bounds are the buckets' upper bounds: 100 µs to 10 s in 1-2.5-5 steps.
var Bounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations into Bounds (and one bucket past the last).
// The zero value is ready; a nil *Histogram ignores what it is given.
type Histogram struct {
	counts [len(Bounds) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe counts d.
func (h *Histogram) Observe(d time.Duration) {
	if h == nil {
		return
	}
	i := sort.Search(len(Bounds), func(i int) bool { return d <= Bounds[i] })
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Since counts the time since start.
func (h *Histogram) Since(start time.Time) {
	if h != nil {
		h.Observe(time.Since(start))
	}
}

// Snapshot is a histogram's counts at one moment.
type Snapshot struct {
	// Counts[i] is the durations at most Bounds[i] and above the bound
	// before; the last, those above every bound.
	Counts [len(Bounds) + 1]uint64
	Sum    time.Duration
}

// Snapshot returns h's counts (a zero Snapshot for nil).
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	if h == nil {
		return s
	}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Count is the number of durations counted.
func (s Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Add adds o's counts to s (the histograms of several processes).
func (s *Snapshot) Add(o Snapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Sum += o.Sum
}

// Quantile returns the upper bound of the bucket that holds quantile q
// (0 < q <= 1): the q-th duration is at most that. Past the last bound
// it returns -1 (more than 10 s); with nothing counted, 0.
func (s Snapshot) Quantile(q float64) time.Duration {
	n := s.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.Counts {
		if seen += c; seen >= rank {
			if i == len(Bounds) {
				return -1
			}
			return Bounds[i]
		}
	}
	return -1
}
