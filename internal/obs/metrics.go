package obs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometgw/comet/internal/latency"
)

// Metrics is a Prometheus registry (with the Go runtime and process
// collectors) whose metrics, all in one namespace, are read from
// functions when scraped: the daemons keep their counters as atomics and
// register a reader for each.
type Metrics struct {
	Registry  *prometheus.Registry
	namespace string
}

// NewMetrics returns an empty Metrics for namespace (comet_router, ...).
func NewMetrics(namespace string) *Metrics {
	return &Metrics{Registry: NewRegistry(), namespace: namespace}
}

// Counter registers a counter read from f. labels may be nil.
func (m *Metrics) Counter(name, help string, labels prometheus.Labels, f func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: m.namespace, Name: name, Help: help, ConstLabels: labels,
	}, func() float64 { return float64(f()) }))
}

// Gauge registers a gauge read from f. labels may be nil.
func (m *Metrics) Gauge(name, help string, labels prometheus.Labels, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: m.namespace, Name: name, Help: help, ConstLabels: labels,
	}, f))
}

// Bool registers a gauge that is 1 while f is true, else 0.
func (m *Metrics) Bool(name, help string, f func() bool) {
	m.Gauge(name, help, nil, func() float64 {
		if f() {
			return 1
		}
		return 0
	})
}

// Latency registers h as a histogram in seconds, read when scraped.
func (m *Metrics) Latency(name, help string, h *latency.Histogram) {
	m.Registry.MustRegister(&latencyCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(m.namespace, "", name), help, nil, nil),
		h:    h,
	})
}

type latencyCollector struct {
	desc *prometheus.Desc
	h    *latency.Histogram
}

func (c *latencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *latencyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Snapshot()
	buckets := make(map[float64]uint64, len(latency.Bounds))
	var cum uint64
	for i, b := range latency.Bounds {
		cum += s.Counts[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, s.Count(), s.Sum.Seconds(), buckets)
}
