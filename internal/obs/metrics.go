package obs

import "github.com/prometheus/client_golang/prometheus"

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
