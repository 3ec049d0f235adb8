// Package obs holds what every daemon shares for being observed: the zap
// logger built from -log-level, and the admin HTTP server with Prometheus
// metrics and pprof.
package obs
