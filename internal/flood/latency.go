package flood

import (
	"bytes"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Latency: msggen -stamp appends " t=<unix nanoseconds>" to each message;
// a client that gets one records how long it took, and for a broadcast
// ("Broadcast #K ...") the latest arrival of broadcast K among all
// clients: the time to the last stream having it.

var (
	stampMark     = []byte(" t=")
	broadcastMark = []byte("Broadcast #")
)

// latBuckets: a log-linear histogram, 8 buckets per power of two (12.5%
// wide), from 1 ns to 2^64 ns.
const latBuckets = 16 + 60*8

func latBucket(ns int64) int {
	if ns < 16 {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 1
	return 16 + (e-4)*8 + int(uint64(ns)>>(e-3)&7)
}

// latLow is the smallest value of bucket i.
func latLow(i int) int64 {
	if i < 16 {
		return int64(i)
	}
	e, m := (i-16)/8+4, (i-16)%8
	return int64(8+m) << (e - 3)
}

type latencies struct {
	mu      sync.Mutex
	buckets []uint64
	bcast   map[uint64]int64
}

// record notes a stamped message arriving at now (unix ns).
func (l *latencies) record(data []byte, now int64) {
	i := lastIndex(data, stampMark)
	if i < 0 {
		return
	}
	t, n := parseUint(data[i+len(stampMark):])
	if n == 0 {
		return
	}
	d := now - int64(t)
	var k uint64
	if j := bytes.Index(data, broadcastMark); j >= 0 {
		k, _ = parseUint(data[j+len(broadcastMark):])
	}
	l.mu.Lock()
	if l.buckets == nil {
		l.buckets = make([]uint64, latBuckets)
		l.bcast = map[uint64]int64{}
	}
	l.buckets[latBucket(d)]++
	if k > 0 && d > l.bcast[k] {
		l.bcast[k] = d
	}
	l.mu.Unlock()
}

// snapshot copies the histogram and the broadcasts' latest arrivals.
func (l *latencies) snapshot() ([]uint64, map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		return nil, nil
	}
	b := slices.Clone(l.buckets)
	m := make(map[string]int64, len(l.bcast))
	for k, v := range l.bcast {
		m[strconv.FormatUint(k, 10)] = v
	}
	return b, m
}

// LatencySummary is what a run's stamped messages took.
type LatencySummary struct {
	Messages uint64        `json:"messages"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	// Broadcasts: how many broadcasts were seen, and over them the time
	// from sending each to its last arrival.
	Broadcasts   int           `json:"broadcasts"`
	BroadcastP50 time.Duration `json:"broadcast_p50_ns"`
	BroadcastP99 time.Duration `json:"broadcast_p99_ns"`
	BroadcastMax time.Duration `json:"broadcast_max_ns"`
}

// Latency summarizes s's stamped messages (nil: none).
func (s Stats) Latency() *LatencySummary {
	var n uint64
	for _, c := range s.LatencyBuckets {
		n += c
	}
	if n == 0 {
		return nil
	}
	q := func(p float64) time.Duration {
		want := uint64(p*float64(n-1)) + 1
		var seen uint64
		for i, c := range s.LatencyBuckets {
			if seen += c; seen >= want {
				return time.Duration(latLow(i))
			}
		}
		return 0
	}
	out := &LatencySummary{Messages: n, P50: q(0.50), P99: q(0.99)}
	for i := len(s.LatencyBuckets) - 1; i >= 0; i-- {
		if s.LatencyBuckets[i] > 0 {
			out.Max = time.Duration(latLow(i + 1))
			break
		}
	}
	var bs []int64
	for _, v := range s.Broadcasts {
		bs = append(bs, v)
	}
	if len(bs) > 0 {
		slices.Sort(bs)
		at := func(p float64) time.Duration { return time.Duration(bs[int(p*float64(len(bs)-1)+0.5)]) }
		out.Broadcasts, out.BroadcastP50, out.BroadcastP99, out.BroadcastMax = len(bs), at(0.5), at(0.99), time.Duration(bs[len(bs)-1])
	}
	return out
}
