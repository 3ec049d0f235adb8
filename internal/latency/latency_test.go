package latency

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 0; i < 98; i++ {
		h.Observe(300 * time.Microsecond) // the 500 µs bucket
	}
	h.Observe(40 * time.Millisecond) // 50 ms
	h.Observe(20 * time.Second)      // past every bound
	s := h.Snapshot()
	cases := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.98, 500 * time.Microsecond}, {0.99, 50 * time.Millisecond}, {1, -1}}
	for _, c := range cases {
		if got := s.Quantile(c.q); got != c.want {
			t.Errorf("quantile %v: %v, want %v", c.q, got, c.want)
		}
	}
	if s.Count() != 100 || s.Sum != 98*300*time.Microsecond+40*time.Millisecond+20*time.Second {
		t.Fatalf("count %d sum %v", s.Count(), s.Sum)
	}
	var both Snapshot
	both.Add(s)
	both.Add(s)
	if both.Count() != 200 || both.Quantile(0.5) != 500*time.Microsecond {
		t.Fatalf("added: %+v", both)
	}
	// Exactly on a bound counts in that bound's bucket.
	var e Histogram
	e.Observe(time.Millisecond)
	if q := e.Snapshot().Quantile(1); q != time.Millisecond {
		t.Fatalf("on the bound: %v", q)
	}
	var nilh *Histogram
	nilh.Observe(time.Second)
	nilh.Since(time.Now())
	if nilh.Snapshot().Count() != 0 || (Snapshot{}).Quantile(0.5) != 0 {
		t.Fatal("nil histogram counted")
	}
}
