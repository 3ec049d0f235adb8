//go:build linux

package flood

import (
	"sync/atomic"

	"github.com/cometgw/comet/internal/memstat"
)

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Opened     int64  `json:"opened"`
	Active     int64  `json:"active"`
	Connecting int64  `json:"connecting"`
	Closed     int64  `json:"closed"`
	Chunks     uint64 `json:"chunks"`
	Messages   uint64 `json:"messages"`
	Bytes      uint64 `json:"bytes"`
	// Published: publish requests WebSocket clients sent (WSPublish).
	Published uint64 `json:"published,omitempty"`
	// Retried: dials of clients that had failed (Config.Retry).
	Retried uint64 `json:"retried,omitempty"`
	// Resumed: streams dialed again with their cursor after they ended
	// (Config.Resume).
	Resumed uint64            `json:"resumed,omitempty"`
	Errors  map[string]uint64 `json:"errors"`
	RSSKB   int64             `json:"rss_kb"`
	// Set on run totals: the most clients streaming at once, and
	// floodtest's memory (all its processes) when last holding that many.
	PeakActive int64 `json:"peak_active,omitempty"`
	PeakRSSKB  int64 `json:"peak_rss_kb,omitempty"`
	BaseRSSKB  int64 `json:"base_rss_kb,omitempty"` // before any client, all processes
	// RampSeconds is how long it took until every client was streaming;
	// WindowSeconds the time from the first client streaming to the last
	// (the ramp without the start of floodtest's processes).
	RampSeconds   float64 `json:"ramp_seconds,omitempty"`
	WindowSeconds float64 `json:"window_seconds,omitempty"`
	// FirstStream and LastStream are when the first and the latest client
	// started streaming (unix nanoseconds; 0: none yet).
	FirstStream int64 `json:"first_stream_ns,omitempty"`
	LastStream  int64 `json:"last_stream_ns,omitempty"`
	// What stamped messages (msggen -stamp) took: a histogram (see
	// latency.go), and per broadcast number the latest arrival's delay
	// in nanoseconds.
	LatencyBuckets []uint64         `json:"latency_buckets,omitempty"`
	Broadcasts     map[string]int64 `json:"broadcast_last_ns,omitempty"`
}

// Add sums s and o (for the parent over its workers).
func (s Stats) Add(o Stats) Stats {
	s.Opened += o.Opened
	s.Active += o.Active
	s.Connecting += o.Connecting
	s.Closed += o.Closed
	s.Chunks += o.Chunks
	s.Messages += o.Messages
	s.Bytes += o.Bytes
	s.Published += o.Published
	s.Retried += o.Retried
	s.Resumed += o.Resumed
	s.RSSKB += o.RSSKB
	s.BaseRSSKB += o.BaseRSSKB
	if o.FirstStream != 0 && (s.FirstStream == 0 || o.FirstStream < s.FirstStream) {
		s.FirstStream = o.FirstStream
	}
	s.LastStream = max(s.LastStream, o.LastStream)
	if len(o.Errors) > 0 && s.Errors == nil {
		s.Errors = map[string]uint64{}
	}
	for k, v := range o.Errors {
		s.Errors[k] += v
	}
	if len(o.LatencyBuckets) > 0 {
		if s.LatencyBuckets == nil {
			s.LatencyBuckets = make([]uint64, len(o.LatencyBuckets))
		}
		for i, v := range o.LatencyBuckets {
			s.LatencyBuckets[i] += v
		}
	}
	if len(o.Broadcasts) > 0 && s.Broadcasts == nil {
		s.Broadcasts = map[string]int64{}
	}
	for k, v := range o.Broadcasts {
		s.Broadcasts[k] = max(s.Broadcasts[k], v)
	}
	return s
}

// Stats returns the counters now.
func (e *Engine) Stats() Stats {
	s := Stats{
		Opened: e.opened.Load(), Active: e.active.Load(), Connecting: e.connecting.Load(),
		Closed: e.closed.Load(), Chunks: e.chunks.Load(), Messages: e.messages.Load(),
		Bytes: e.bytes.Load(), Published: e.published.Load(), Retried: e.redialed.Load(), Resumed: e.resumed.Load(), Errors: map[string]uint64{}, RSSKB: memstat.SelfRSSKB(),
		BaseRSSKB: e.baseRSS.Load(), FirstStream: e.firstAt.Load(), LastStream: e.lastAt.Load(),
	}
	e.errs.Range(func(k, v any) bool {
		s.Errors[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	s.LatencyBuckets, s.Broadcasts = e.lat.snapshot()
	return s
}

func (e *Engine) count(kind string, n uint64) {
	if n == 0 {
		return
	}
	v, ok := e.errs.Load(kind)
	if !ok {
		v, _ = e.errs.LoadOrStore(kind, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(n)
}
