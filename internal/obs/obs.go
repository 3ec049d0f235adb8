package obs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/netutil"
)

// NewLogger returns a production zap logger (JSON to stderr) at level, one
// of debug, info, warn, error.
func NewLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors and comet_build_info.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector())
	return reg
}

// AdminMux returns a mux serving /metrics from reg and /debug/pprof/.
func AdminMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Admin is a running admin HTTP server.
type Admin struct {
	srv *http.Server
	ln  net.Listener
	err chan error
}

// MaxAdminConns bounds the connections an admin server holds at once;
// past it further connections wait in the listen queue until one ends
// (no goroutine, no buffer for them).
const MaxAdminConns = 64

// AdminIdleTimeout closes an admin connection idle this long.
var AdminIdleTimeout = 30 * time.Second

// ListenAdmin binds addr and serves h there in the background: requests
// must arrive within 10 s, answers go within 2 min (a CPU profile takes
// its ?seconds=, at most 60), idle connections close after 30 s, and at
// most MaxAdminConns are held at once.
func ListenAdmin(addr string, h http.Handler, log *zap.Logger) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	ln = netutil.LimitListener(ln, MaxAdminConns)
	a := &Admin{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       AdminIdleTimeout,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          zap.NewStdLog(log.Named("admin")),
		},
		ln:  ln,
		err: make(chan error, 1),
	}
	go func() {
		err := a.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.err <- err
	}()
	return a, nil
}

// Addr is the bound address.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Shutdown stops the server, waiting up to 5s for requests in flight.
func (a *Admin) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	return <-a.err
}

// WriteJSON writes v as indented JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WithHealth serves GET /healthz (the process answers: 200 "ok") and GET
// /readyz (200 "ready", or 503 with the one-line reason ready gives) to
// anyone, for load balancers and orchestrators that send no token, and
// every other request through h. They tell nothing but that line.
func WithHealth(h http.Handler, ready func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		case "/readyz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, "not ready:", err)
				return
			}
			fmt.Fprintln(w, "ready")
		default:
			h.ServeHTTP(w, r)
		}
	})
}
