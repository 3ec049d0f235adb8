//go:build !race

package retention

import (
	"runtime"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/cursor"
)

// appender returns a func that keeps msg in id 1's history (opened) in s,
// after it has run 1,000 times.
func appender(s *Store, msg string) func() {
	resume(s, 1, cursor.Cursor{})
	m := Share([]byte(msg))
	now := time.Now().UnixNano()
	appendOne := func() {
		h := s.Lock(1)
		h.Append("", &m, now)
		h.Unlock()
	}
	for range 1000 {
		appendOne()
	}
	return appendOne
}

// Keeping a shared message in a history at its bound allocates nothing
// but the eviction queue's amortized growth.
func TestAppendAllocs(t *testing.T) {
	s, _ := NewStore(Config{MaxMessages: 128})
	if n := testing.AllocsPerRun(10000, appender(s, "a message of some length")); n >= 1 {
		t.Fatalf("%v allocations per Append", n)
	}
}

// At the default bound a history's array is reused, not regrown: a
// long run of Appends allocates almost nothing per message (the
// eviction queue's amortized growth only).
func TestAppendAtBoundReuses(t *testing.T) {
	s, _ := NewStore(Config{})
	appendOne := appender(s, "x")
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	const n = 100000
	for range n {
		appendOne()
	}
	runtime.ReadMemStats(&b)
	if per := float64(b.Mallocs-a.Mallocs) / n; per > 0.01 {
		t.Fatalf("%.3f allocations per Append", per)
	}
}
