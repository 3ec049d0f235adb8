package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/wire"
)

// GatewayStats describes one gateway in Stats.
type GatewayStats struct {
	Name     string `json:"name"`
	Instance uint64 `json:"instance"`
	Conns    int64  `json:"conns"`
	LastSeen string `json:"last_seen"`
}

// Stats is the router's GET /stats document.
type Stats struct {
	Conns       int64          `json:"conns"`
	IDs         int64          `json:"ids"`
	Logins      int64          `json:"logins_held"`
	Gateways    int            `json:"gateways"`
	Sent        uint64         `json:"sent"`
	Delivered   uint64         `json:"delivered"`
	Void        uint64         `json:"void"`
	LoginsTotal uint64         `json:"logins_total"`
	Logouts     uint64         `json:"logouts_total"`
	Resyncs     uint64         `json:"resyncs"`
	Purges      uint64         `json:"gateway_purges"`
	BadFrames   uint64         `json:"bad_frames"`
	Resumes     uint64         `json:"resumes"`
	Missed      uint64         `json:"resumes_missed"`
	CaughtUp    uint64         `json:"caught_up"`
	KeptOnly    uint64         `json:"kept_only"`
	Retention   longpoll.Stats `json:"retention"`
	GatewayList []GatewayStats `json:"gateway_list"`
}

// Stats returns the router's counters and gateways.
func (r *Router) Stats() Stats {
	rs := r.reg.Stats()
	st := Stats{
		Conns: rs.Conns, IDs: rs.IDs, Logins: rs.Pairs,
		Sent: r.sent.Load(), Delivered: r.delivered.Load(), Void: r.void.Load(),
		LoginsTotal: r.logins.Load(), Logouts: r.logouts.Load(),
		Resyncs: r.resyncs.Load(), Purges: r.purges.Load(), BadFrames: r.badFrames.Load(),
		Resumes: r.resumes.Load(), Missed: r.missed.Load(), CaughtUp: r.caughtUp.Load(), KeptOnly: r.kept.Load(),
		Retention:   r.store.Stats(),
		GatewayList: []GatewayStats{},
	}
	r.upMu.Lock()
	r.gwMu.RLock()
	for _, gw := range r.gwByIdx {
		st.GatewayList = append(st.GatewayList, GatewayStats{
			Name: gw.name, Instance: gw.instance, Conns: gw.conns,
			LastSeen: time.Unix(0, gw.lastSeen.Load()).UTC().Format(time.RFC3339Nano),
		})
	}
	r.gwMu.RUnlock()
	r.upMu.Unlock()
	slices.SortFunc(st.GatewayList, func(a, b GatewayStats) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	st.Gateways = len(st.GatewayList)
	return st
}

// Holder is one conn in GET /ids/{id}.
type Holder struct {
	Gateway string `json:"gateway"`
	Conn    string `json:"conn"`
}

// Whois lists the conns logged in as id.
func (r *Router) Whois(id int64) []Holder {
	conns := r.reg.Lookup(id, nil)
	out := make([]Holder, 0, len(conns))
	r.gwMu.RLock()
	defer r.gwMu.RUnlock()
	for _, c := range conns {
		name := "?"
		if gw := r.gwByIdx[c.GW]; gw != nil {
			name = gw.name
		}
		out = append(out, Holder{Gateway: name, Conn: strconv.FormatUint(c.Conn, 10)})
	}
	return out
}

func writeError(w http.ResponseWriter, code int, msg string) {
	obs.WriteJSON(w, code, map[string]string{"error": msg})
}

func (r *Router) adminMux() *http.ServeMux {
	mux := obs.AdminMux(r.metrics.reg)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		obs.WriteJSON(w, http.StatusOK, r.Stats())
	})
	mux.HandleFunc("GET /ids/{id}", func(w http.ResponseWriter, req *http.Request) {
		id, err := ids.Parse(req.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad id: "+err.Error())
			return
		}
		obs.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "conns": r.Whois(id)})
	})
	mux.HandleFunc("POST /send/{id}", func(w http.ResponseWriter, req *http.Request) {
		id, err := ids.Parse(req.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad id: "+err.Error())
			return
		}
		msg, err := io.ReadAll(http.MaxBytesReader(w, req.Body, wire.MaxMessage))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("message larger than %d bytes", wire.MaxMessage))
				return
			}
			writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
			return
		}
		n, kept := r.SendKept(id, msg)
		obs.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "delivered": n, "kept": kept})
	})
	return mux
}

type metrics struct {
	reg *prometheus.Registry
}

func newMetrics(r *Router) *metrics {
	reg := obs.NewRegistry()
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "comet_router", Name: name, Help: help},
			func() float64 { return float64(f()) }))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "comet_router", Name: name, Help: help}, f))
	}
	counter("sent_total", "Sends routed.", r.sent.Load)
	counter("delivered_total", "Copies of messages handed to gateways.", r.delivered.Load)
	counter("void_total", "Sends to ids nobody holds.", r.void.Load)
	counter("logins_total", "Logins applied.", r.logins.Load)
	counter("logouts_total", "Logouts applied.", r.logouts.Load)
	counter("resyncs_total", "Login resyncs asked of gateways.", r.resyncs.Load)
	counter("gateway_purges_total", "Gateways forgotten (bye, restart or silence).", r.purges.Load)
	counter("bad_frames_total", "Malformed NATS frames received.", r.badFrames.Load)
	counter("stale_deliveries_total", "Delivery frames dropped because their gateway was forgotten.", r.stale.Load)
	counter("resumes_total", "Resumes of long-poll and SSE clients.", r.resumes.Load)
	counter("resumes_missed_total", "Resumes whose cursor was past the retention window or from another epoch.", r.missed.Load)
	counter("kept_only_total", "Sends to ids with no client at that moment, kept for a resuming one.", r.kept.Load)
	counter("caught_up_total", "Kept messages sent to resuming clients.", r.caughtUp.Load)
	counter("retention_evicted_total", "Kept messages dropped early for the retention byte cap.", func() uint64 { return r.store.Stats().Evicted })
	gauge("retention_messages", "Messages kept for resumable clients.", func() float64 { return float64(r.store.Stats().Messages) })
	gauge("retention_bytes", "Accounted memory of the kept messages.", func() float64 { return float64(r.store.Stats().Bytes) })
	gauge("retention_ids", "Ids with a kept history.", func() float64 { return float64(r.store.Stats().IDs) })
	stats := func() registry.Stats { return r.reg.Stats() }
	gauge("conns", "Conns holding at least one id.", func() float64 { return float64(stats().Conns) })
	gauge("ids", "Ids held by at least one conn.", func() float64 { return float64(stats().IDs) })
	gauge("gateways", "Gateways known.", func() float64 {
		r.gwMu.RLock()
		defer r.gwMu.RUnlock()
		return float64(len(r.gwByIdx))
	})
	return &metrics{reg: reg}
}
