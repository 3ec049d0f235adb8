package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometgw/comet/internal/hook"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/obs"
)

// SessionStats counts the gateway's client sessions (GET /stats
// "streams"): the hub's counters, and the open sessions of each kind under
// their own names.
type SessionStats struct {
	hub.Stats
	OpenHTML int64 `json:"open_html"` // chunked streams
	OpenSSE  int64 `json:"open_sse"`  // SSE streams
	OpenPoll int64 `json:"open_poll"` // waiting long-polls
	OpenWS   int64 `json:"open_ws"`   // WebSockets
}

// Stats is the gateway's GET /stats document.
type Stats struct {
	Name    string       `json:"name"`
	Streams SessionStats `json:"streams"`
	NATS    string       `json:"nats"`
	Frames  uint64       `json:"frames_published"`
	Bad     uint64       `json:"bad_frames"`
	// Times the listener stopped accepting because the process was full,
	// and accept errors (out of descriptors and the like).
	ListenPauses uint64 `json:"listen_pauses"`
	AcceptErrors uint64 `json:"accept_errors"`
	// Frames from the routers NATS holds for this gateway now (bytes),
	// the most it has held, its limit (Config.InboundLimit), and frames
	// NATS dropped past it (never, while the routers' windows hold).
	InboundBytes   int64  `json:"inbound_bytes"`
	InboundPeak    int64  `json:"inbound_peak_bytes"`
	InboundLimit   int    `json:"inbound_limit_bytes"`
	InboundDropped uint64 `json:"inbound_dropped"`
	// Clients refused by their token or origin (auth.Error codes) or by
	// the per-address limits (addr_conns, addr_rate), by reason.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// WebSocket clients' requests (publish, send) by fate.
	ClientRequests ClientStats `json:"client_requests"`
	// Client addresses the per-address limits count now (with
	// Config.PerAddr).
	PeerAddrs int `json:"peer_addrs,omitempty"`
	// Hooks: what the connect and join hooks answered, by outcome
	// (absent without hooks).
	Hooks *HookStats `json:"hooks,omitempty"`
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	h := g.hub.Stats()
	kinds := g.cfg.kinds(nil)
	st := Stats{
		Name: g.cfg.Name,
		Streams: SessionStats{
			Stats:    h,
			OpenHTML: h.OpenKind[kinds[kindStream].Traits().Name],
			OpenSSE:  h.OpenKind[kinds[kindSSE].Traits().Name],
			OpenPoll: h.OpenKind[kinds[kindPoll].Traits().Name],
			OpenWS:   h.OpenKind[kinds[kindWS].Traits().Name],
		},
		ClientRequests: g.clients.stats(),
		Hooks:          g.hooks.stats(),
		NATS:           g.link.nc.Status().String(),
		Frames:         g.link.published.Load(),
		Bad:            g.link.badFrames.Load(),

		ListenPauses: g.ln.pauses.Load(),
		AcceptErrors: g.ln.acceptErrs.Load(),
		InboundLimit: g.cfg.InboundLimit,
		Refused:      g.access.Refused(),
	}
	st.InboundBytes, st.InboundPeak, st.InboundDropped = g.link.inboundStats()
	if g.peers != nil {
		st.PeerAddrs = g.peers.Stats().Addrs
	}
	return st
}

func (g *Gateway) adminMux() *http.ServeMux {
	m := obs.NewMetrics("comet_gateway")
	h := g.hub
	for _, k := range g.cfg.kinds(nil) {
		name := k.Traits().Name
		m.Gauge("sessions_open", "Open sessions by kind: chunked streams, SSE streams, waiting long-polls.",
			prometheus.Labels{"kind": name}, func() float64 { return float64(h.Stats().OpenKind[name]) })
	}
	m.Counter("resume_duplicates_total", "Deliveries dropped because the session already had that position.", nil, func() uint64 { return h.Stats().Duplicates })
	m.Counter("poll_late_total", "Deliveries to a long-poll after its answer (kept by the router for the next poll).", nil, func() uint64 { return h.Stats().Late })
	m.Counter("heartbeats_total", "Heartbeats written to quiet SSE and chunked streams.", nil, func() uint64 { return h.Stats().Heartbeats })
	m.Bool("ready", "1 while the gateway is ready (GET /readyz answers 200: NATS up, a router answers, not draining), else 0.", func() bool { return g.Ready() == nil })
	m.Counter("sessions_opened_total", "Sessions opened, of every kind (a long-poll opens one per poll).", nil, func() uint64 { return h.Stats().Opened })
	for _, r := range hub.Reasons() {
		m.Counter("sessions_closed_total", "Sessions closed, by reason (answered: a long-poll's answer was written; timeout: no write progress for -write-timeout, or aborted by the kernel after -tcp-user-timeout; rate: too many control or empty WebSocket frames; stalled: a message incomplete past -ws-message-timeout; input_budget: the largest holders of input past -input-budget).", prometheus.Labels{"reason": r.String()},
			func() uint64 { return h.Closes(r) })
	}
	m.Counter("messages_total", "Messages written to sessions (gathered, for a long-poll).", nil, func() uint64 { return h.Stats().Messages })
	m.Counter("bytes_total", "Bytes written to sessions.", nil, func() uint64 { return h.Stats().Bytes })
	m.Counter("stale_deliveries_total", "Deliveries to sessions already closed.", nil, func() uint64 { return h.Stats().Stale })
	m.Counter("rejected_total", "Sessions refused (limit, shutdown, no descriptor).", nil, func() uint64 { return h.Stats().Rejected })
	m.Counter("throttled_total", "Times a WebSocket client was not read until the next second for passing -ws-request-rate.", nil, func() uint64 { return h.Stats().Throttled })
	m.Gauge("input_held_bytes", "Bytes held for clients' incomplete input (WebSocket frames and messages); -input-budget bounds it.", nil, func() float64 { return float64(h.Stats().InputHeld) })
	m.Counter("bad_frames_total", "Malformed frames from the router.", nil, g.link.badFrames.Load)
	m.Gauge("write_delay_seconds", "The largest write delay a writer applies now (-write-delay): at most what gathering adds to a delivery.", nil, func() float64 { return h.Stats().WriteDelay.Seconds() })
	queueWait, round, outputWait := h.Latencies()
	m.Latency("down_submit_seconds", "Stage latency: how long a frame from a router waited for the writers' queues to take it (backpressure on the router).", &g.link.submitWait)
	m.Latency("write_queue_seconds", "Stage latency: how long a batch of deliveries waited in a writer's queue before its round.", queueWait)
	m.Latency("write_round_seconds", "Stage latency: how long a writer's round took to apply its batches and write what they made (writes a -write-delay holds back go out later).", round)
	m.Latency("output_wait_seconds", "Stage latency: how long a session's output waited in the gateway, from its oldest byte gathered (in a round, or under -write-delay) or left by a full socket to its last byte written.", outputWait)
	m.Gauge("inbound_bytes", "Frames from the routers NATS holds for this gateway.", nil, func() float64 { b, _, _ := g.link.inboundStats(); return float64(b) })
	m.Counter("inbound_dropped_total", "Frames from the routers NATS dropped past the inbound limit.", nil, func() uint64 { _, _, d := g.link.inboundStats(); return d })
	for _, fate := range []string{"queued", "gone", "slow", "dup", "late"} {
		m.Counter("copies_total", "Copies of messages from the routers, by fate: queued to a live session, gone (session closed), slow (closed its session), dup (position already had), late (long-poll already answered).",
			prometheus.Labels{"fate": fate}, func() uint64 { return copiesBy(h.Stats().Copies, fate) })
	}
	for _, r := range hub.Reasons() {
		m.Counter("lost_pending_total", "Messages still pending output when their session closed, by close reason.", prometheus.Labels{"reason": r.String()},
			func() uint64 { return h.Stats().LostPending[r.String()] })
	}
	cs := g.clients
	for _, f := range []struct {
		fate string
		n    func() uint64
	}{{"sent", cs.sent.Load}, {"acked", cs.acked.Load}, {"refused", cs.refused.Load}, {"failed", cs.failed.Load}, {"orphaned", cs.orphaned.Load},
		{"retried", cs.retried}} {
		m.Counter("client_requests_total", "WebSocket clients' requests: sent to a router, acked by it, refused by the gateway, failed (no router, no answer in time), answered after the client left, sent again when no router took them.",
			prometheus.Labels{"fate": f.fate}, f.n)
	}
	m.Counter("listen_pauses_total", "Times the listener stopped accepting because the process was full.", nil, g.ln.pauses.Load)
	m.Counter("accept_errors_total", "Accept errors (out of descriptors and the like).", nil, g.ln.acceptErrs.Load)
	for _, c := range refusalCodes {
		n := g.access.refused[c]
		m.Counter("refused_total", "Clients refused: 401 or 403 by their token or origin, 429 by the per-address limits, 403 or 503 by a hook; by reason.", prometheus.Labels{"reason": c}, n.Load)
	}
	if h := g.hooks; h != nil {
		for name, c := range map[string]*hook.Client{"connect": h.connect, "join": h.join} {
			if c == nil {
				continue
			}
			for _, o := range hook.Outcomes {
				m.Counter("hook_answers_total", "What a hook said, by hook and outcome: allowed, refused, cached_allow, cached_refuse, failed (no answer in time, an error), busy (too many waiting), breaker_open (not asked).",
					prometheus.Labels{"hook": name, "outcome": o}, func() uint64 { return c.Count(o) })
			}
		}
	}
	mux := obs.AdminMux(m.Registry)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		obs.WriteJSON(w, http.StatusOK, g.Stats())
	})
	return mux
}

func copiesBy(t hub.Tally, fate string) uint64 {
	switch fate {
	case "queued":
		return t.Queued
	case "gone":
		return t.Gone
	case "slow":
		return t.Slow
	case "dup":
		return t.Dup
	}
	return t.Late
}
