package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/topichist"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// GatewayStats describes one gateway in Stats.
type GatewayStats struct {
	Name     string `json:"name"`
	Instance uint64 `json:"instance"`
	Conns    int64  `json:"conns"`
	LastSeen string `json:"last_seen"`
	// NATSServer is the NATS server the gateway said it is connected to
	// (its name; in a cluster, which node it is on).
	NATSServer string `json:"nats_server"`
	// Bytes of down frames in flight to it (its window in use), and how
	// many frames.
	InflightBytes  int64 `json:"inflight_bytes"`
	InflightFrames int   `json:"inflight_frames"`
}

// Dropped counts copies not delivered, by reason.
type Dropped struct {
	Gone    uint64 `json:"gone"`    // the client had left
	Slow    uint64 `json:"slow"`    // the client was evicted as too slow to take them
	Gateway uint64 `json:"gateway"` // the gateway went away or never confirmed them
}

// Stats is the router's GET /stats document.
type Stats struct {
	Conns    int64  `json:"conns"`
	IDs      int64  `json:"ids"`
	Logins   int64  `json:"logins_held"`
	Gateways int    `json:"gateways"`
	Sent     uint64 `json:"sent"`
	Void     uint64 `json:"void"`
	// Publishes to topics and broadcasts routed (each also counted in
	// sent's acks' way: void when it reached nobody, of which
	// topic_void for a topic nobody is in).
	Published uint64 `json:"published"`
	// PresenceEvents: join and leave events sent (one per topic per
	// PresenceEvery at most).
	PresenceEvents uint64       `json:"presence_events"`
	Broadcasts     uint64       `json:"broadcasts"`
	TopicVoid      uint64       `json:"topic_void"`
	Topics         topics.Stats `json:"topics"`
	// Stored subscriptions (absent without JetStream).
	Subscriptions *subs.Stats `json:"subscriptions,omitempty"`
	// SubscriptionsCompacted: compactions of their stream this router
	// made.
	SubscriptionsCompacted uint64 `json:"subscriptions_compacted"`
	// StrayUp: up frames from gateways given other -partitions than
	// this router's (ignored; each such gateway is named in the log).
	StrayUp uint64 `json:"stray_up_frames"`
	// Copies of messages: handed to gateways (routed), then delivered
	// (queued to a live connection, as the gateways confirmed; dup and
	// late included) or dropped, by reason.
	Routed    uint64  `json:"routed"`
	Delivered uint64  `json:"delivered"`
	Dropped   Dropped `json:"dropped"`
	Dup       uint64  `json:"dup"`
	Late      uint64  `json:"late"`
	// Flow control: sends that waited for a gateway's window, HTTP sends
	// refused for overload, send frames NATS dropped because the router
	// could not take them (their senders got no ack), done records for
	// frames no longer tracked.
	WindowWaits       uint64 `json:"window_waits"`
	Refused           uint64 `json:"refused"`
	SendFramesDropped uint64 `json:"send_frames_dropped"`
	UnknownDone       uint64 `json:"unknown_done"`
	LoginsTotal       uint64 `json:"logins_total"`
	Logouts           uint64 `json:"logouts_total"`
	Resyncs           uint64 `json:"resyncs"`
	// Unconfirmed is the down frames a live gateway had not confirmed
	// at the deliver timeout (their copies are counted lost; a slow
	// gateway's come late, a lost one's make it resync).
	Unconfirmed uint64 `json:"unconfirmed_frames"`
	// Unheard is the down frames NATS answered nobody was subscribed
	// to: the gateway's connection was gone (their copies are counted
	// with the gateway when it is forgotten or at the deliver timeout).
	Unheard   uint64          `json:"unheard_frames"`
	Purges    uint64          `json:"gateway_purges"`
	BadFrames uint64          `json:"bad_frames"`
	Resumes   uint64          `json:"resumes"`
	Missed    uint64          `json:"resumes_missed"`
	CaughtUp  uint64          `json:"caught_up"`
	KeptOnly  uint64          `json:"kept_only"`
	Retention retention.Stats `json:"retention"`
	// Lead: a redundant router's role and history log (absent alone).
	Lead *LeadStats `json:"lead,omitempty"`
	// Partition: a partitioned router's share and what it handed to
	// the other partitions (absent unpartitioned).
	Partition *PartitionStats `json:"partition,omitempty"`
	// TopicHistory: the topics' kept messages (absent without
	// -topic-history), those kept in all and the copies given to joining
	// clients (rewind).
	TopicHistory *topichist.Stats `json:"topic_history,omitempty"`
	TopicKept    uint64           `json:"topic_kept"`
	Rewound      uint64           `json:"rewound"`
	// Webhooks: the events made, queued, lost and delivered (absent
	// without -webhook).
	Webhooks *WebhookStats `json:"webhooks,omitempty"`
	// Frames: send frames with a frame-id, and copies sent again.
	Frames      FrameStats     `json:"frames"`
	GatewayList []GatewayStats `json:"gateway_list"`
}

// Stats returns the router's counters and gateways.
func (r *Router) Stats() Stats {
	rs := r.reg.Stats()
	c := &r.c
	st := Stats{
		Conns: rs.Conns, IDs: rs.IDs, Logins: rs.Pairs,
		Sent: c.sent.Load(), Void: c.void.Load(),
		Published: c.published.Load(), PresenceEvents: c.presenceSent.Load(), Broadcasts: c.broadcasts.Load(), TopicVoid: c.topicVoid.Load(), Topics: r.topics.Stats(),
		Subscriptions: r.stored.stats(), StrayUp: c.strayUp.Load(),
		Routed: c.routed.Load(), Delivered: c.delivered.Load(), Dup: c.dups.Load(), Late: c.late.Load(),
		Dropped:     Dropped{Gone: c.droppedGone.Load(), Slow: c.droppedSlow.Load(), Gateway: c.droppedGateway.Load()},
		WindowWaits: c.waits.Load(), Refused: c.refused.Load(), SendFramesDropped: r.senders.dropped(), UnknownDone: c.unknownDone.Load(),
		LoginsTotal: c.logins.Load(), Logouts: c.logouts.Load(),
		Resyncs: c.resyncs.Load(), Unconfirmed: c.unconfirmed.Load(), Unheard: c.unheard.Load(), Purges: c.purges.Load(), BadFrames: c.badFrames.Load(),
		Resumes: c.resumes.Load(), Missed: c.missed.Load(), CaughtUp: c.caughtUp.Load(), KeptOnly: c.kept.Load(),
		Retention:    r.store.Stats(),
		Lead:         r.lead.stats(),
		Webhooks:     r.hooks.stats(),
		TopicHistory: r.thist.Stats(), TopicKept: c.topicKept.Load(), Rewound: c.rewound.Load(),
		Partition:   r.part.stats(),
		Frames:      r.frames.stats(),
		GatewayList: r.up.gatewayStats(),
	}
	if r.stored != nil {
		st.SubscriptionsCompacted = r.stored.compactions.Load()
	}
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
	for _, c := range conns {
		name := "?"
		if gw := r.gws.at(c.GW); gw != nil {
			name = gw.name
		}
		out = append(out, Holder{Gateway: name, Conn: strconv.FormatUint(c.Conn, 10)})
	}
	return out
}

// pathID reads the {id} of req's path, or answers 400 and returns false.
func pathID(w http.ResponseWriter, req *http.Request) (int64, bool) {
	id, err := ids.Parse(req.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad id: "+err.Error())
		return 0, false
	}
	return id, true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	obs.WriteJSON(w, code, map[string]string{"error": msg})
}

func (r *Router) adminMux() *http.ServeMux {
	mux := obs.AdminMux(r.metrics.Registry)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		obs.WriteJSON(w, http.StatusOK, r.Stats())
	})
	// byID answers a request on /.../{id} with what answer makes of
	// the id (400 for a bad one).
	byID := func(answer func(id int64) any) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			if id, ok := pathID(w, req); ok && r.ownID(w, id) {
				obs.WriteJSON(w, http.StatusOK, answer(id))
			}
		}
	}
	mux.HandleFunc("GET /ids/{id}", byID(func(id int64) any { return map[string]any{"id": id, "conns": r.Whois(id)} }))
	mux.HandleFunc("POST /send/{id}", func(w http.ResponseWriter, req *http.Request) {
		id, ok := pathID(w, req)
		if !ok {
			return
		}
		serveRoute(w, req, map[string]any{"id": id}, func(msg []byte) (SendResult, error) { return r.Send(id, msg) })
	})
	mux.HandleFunc("POST /publish/{topic}", func(w http.ResponseWriter, req *http.Request) {
		topic, ok := pathTopic(w, req)
		if !ok {
			return
		}
		serveRoute(w, req, map[string]any{"topic": topic}, func(msg []byte) (SendResult, error) { return r.Publish(topic, msg) })
	})
	mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, req *http.Request) {
		serveRoute(w, req, map[string]any{"broadcast": true}, r.Broadcast)
	})
	subscription := func(w http.ResponseWriter, req *http.Request, op byte) {
		id, ok := pathID(w, req)
		if !ok || !r.ownID(w, id) {
			return
		}
		topic, ok := pathTopic(w, req)
		if !ok {
			return
		}
		if err := r.Subscription(req.Context(), op, id, topic); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		obs.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "topics": r.SubscriptionsOf(id)})
	}
	mux.HandleFunc("PUT /subscriptions/{id}/{topic}", func(w http.ResponseWriter, req *http.Request) { subscription(w, req, subs.OpSubscribe) })
	mux.HandleFunc("DELETE /subscriptions/{id}/{topic}", func(w http.ResponseWriter, req *http.Request) { subscription(w, req, subs.OpUnsubscribe) })
	mux.HandleFunc("GET /subscriptions/{id}", byID(func(id int64) any { return map[string]any{"id": id, "topics": r.SubscriptionsOf(id)} }))
	mux.HandleFunc("POST /kick/{id}", byID(func(id int64) any { return map[string]any{"id": id, "kicked": r.Kick(id)} }))
	mux.HandleFunc("GET /topics/{topic}", func(w http.ResponseWriter, req *http.Request) {
		if topic, ok := pathTopic(w, req); ok {
			obs.WriteJSON(w, http.StatusOK, r.Presence(topic))
		}
	})
	mux.HandleFunc("GET /topics/{topic}/history", func(w http.ResponseWriter, req *http.Request) {
		topic, ok := pathTopic(w, req)
		if !ok {
			return
		}
		if !r.thist.Keeps() {
			writeError(w, http.StatusNotFound, "topics keep no history here: start the router with -topic-history N")
			return
		}
		q := req.URL.Query()
		after, err := strconv.ParseUint(cmp.Or(q.Get("after"), "0"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after %q: want a position (0: from the oldest kept)", clip(q.Get("after"))))
			return
		}
		limit, err := strconv.Atoi(cmp.Or(q.Get("limit"), "100"))
		if err != nil || limit < 1 || limit > topichist.MaxRewind {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", clip(q.Get("limit")), topichist.MaxRewind))
			return
		}
		obs.WriteJSON(w, http.StatusOK, r.TopicHistory(topic, after, limit))
	})
	return mux
}

// TopicHistory is GET /topics/{topic}/history: a topic's kept messages.
type TopicHistory struct {
	Topic string `json:"topic"`
	// Epoch names this life of the topic's positions (another epoch:
	// they started again, a router restarted without a standby).
	Epoch    uint64             `json:"epoch"`
	Messages []TopicHistoryItem `json:"messages"`
}

// TopicHistoryItem is one kept message, at its position in the topic.
type TopicHistoryItem struct {
	Seq    uint64 `json:"seq"`
	TimeMS int64  `json:"time_ms"`
	Msg    string `json:"msg"`
}

// TopicHistory returns topic's kept messages after position after (0:
// the oldest kept), the last limit of them.
func (r *Router) TopicHistory(topic string, after uint64, limit int) TopicHistory {
	ents, epoch := r.thist.Read([]byte(topic), after, 0, limit, time.Now().UnixNano(), nil)
	out := TopicHistory{Topic: topic, Epoch: epoch, Messages: make([]TopicHistoryItem, len(ents))}
	for i, e := range ents {
		out.Messages[i] = TopicHistoryItem{Seq: e.Seq, TimeMS: e.At / 1e6, Msg: string(e.Msg)}
	}
	return out
}

// ownID reports whether this router serves id; if not (a partitioned
// router asked about another partition's id) it answers 421 naming the
// partition to ask.
func (r *Router) ownID(w http.ResponseWriter, id int64) bool {
	if msg, other := r.part.misdirected(id); other {
		writeError(w, http.StatusMisdirectedRequest, msg)
		return false
	}
	return true
}

// pathTopic reads the {topic} of req's path, or answers 400 and returns
// false.
func pathTopic(w http.ResponseWriter, req *http.Request) (string, bool) {
	topic := req.PathValue("topic")
	if !wire.ValidTopic([]byte(topic)) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad topic %q: want 1 to %d of A-Z a-z 0-9 : . _ -", clip(topic), wire.MaxTopic))
		return "", false
	}
	return topic, true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// serveRoute reads a message from req's body, routes it with route and
// answers what became of its copies (503 when the gateways' windows
// stayed full), the answer starting with head.
func serveRoute(w http.ResponseWriter, req *http.Request, head map[string]any, route func([]byte) (SendResult, error)) {
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
	res, err := route(msg)
	if err != nil {
		// Overloaded, no leader to take it (a standby), or not logged
		// (lost the lead): nothing acked; try again.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	t := res.Tally
	head["delivered"], head["kept"] = t.Delivered, res.Kept
	head["dropped"] = Dropped{Gone: t.Gone, Slow: t.Slow, Gateway: t.Gateway}
	obs.WriteJSON(w, http.StatusOK, head)
}

// Subscription stores a subscribe (op subs.OpSubscribe) or unsubscribe of
// id to topic, and returns once this router applies it (every router
// follows the same stream).
func (r *Router) Subscription(ctx context.Context, op byte, id int64, topic string) error {
	return r.stored.store(ctx, op, id, topic)
}

// SubscriptionsOf lists the topics id is subscribed to.
func (r *Router) SubscriptionsOf(id int64) []string { return r.stored.topicsOf(id, []string{}) }

// Presence returns who is in topic now, across every gateway: the ids
// whose connections joined it and the subscribed ids with connections.
func (r *Router) Presence(topic string) Presence { return r.pres.of(topic) }

func newMetrics(r *Router) *obs.Metrics {
	m := obs.NewMetrics("comet_router")
	m.Counter("sent_total", "Sends routed.", nil, r.c.sent.Load)
	m.Counter("routed_total", "Copies of messages handed to gateways.", nil, r.c.routed.Load)
	m.Counter("delivered_total", "Copies the gateways confirmed queued to a live connection.", nil, r.c.delivered.Load)
	for reason, c := range map[string]*atomic.Uint64{"gone": &r.c.droppedGone, "slow": &r.c.droppedSlow, "gateway": &r.c.droppedGateway} {
		m.Counter("dropped_total", "Copies not delivered, by reason: the client had left, was evicted as too slow, or its gateway went away or never confirmed them.",
			prometheus.Labels{"reason": reason}, c.Load)
	}
	m.Counter("window_waits_total", "Sends that waited for room in a gateway's window.", nil, r.c.waits.Load)
	m.Counter("refused_total", "HTTP sends refused (503) because the gateways' windows stayed full.", nil, r.c.refused.Load)
	m.Counter("send_frames_dropped_total", "Send frames NATS dropped because the router could not take them.", nil, r.senders.dropped)
	m.Gauge("inflight_bytes", "Bytes of down frames in flight to every gateway.", nil, func() float64 { return float64(r.fl.inflightBytes()) })
	m.Counter("void_total", "Sends to ids nobody holds (and publishes and broadcasts that reached nobody).", nil, r.c.void.Load)
	m.Counter("kicked_total", "Sessions asked to end by router kick.", nil, r.c.kicks.Load)
	if w := r.hooks; w != nil {
		for outcome, c := range map[string]*atomic.Uint64{"queued": &w.queued, "lost_full": &w.full, "lost_store": &w.storeLost, "delivered": &w.delivered} {
			m.Counter("webhook_events_total", "Webhook events by outcome: queued (stored for the receiver), lost_full (the queue was at -webhook-queue), lost_store (JetStream did not take them), delivered (the receiver answered 2xx); the lost are told to the receiver in the next batch.",
				prometheus.Labels{"outcome": outcome}, c.Load)
		}
		m.Counter("webhook_posts_total", "Webhook POSTs the receiver took.", nil, w.posts.Load)
		m.Counter("webhook_failed_attempts_total", "Webhook POSTs that failed (no answer, or not 2xx) and were tried again.", nil, w.failed.Load)
		m.Gauge("webhook_queue_bytes", "Bytes of webhook events waiting for the receiver (sampled each second by the leader).", nil, func() float64 { return float64(w.depthBytes.Load()) })
	}
	if r.thist.Keeps() {
		m.Gauge("topic_history_bytes", "Bytes of the topics' kept messages, as counted against -topic-history-bytes.", nil, func() float64 { return float64(r.thist.Stats().Bytes) })
		m.Counter("topic_history_kept_total", "Messages kept in their topic's history.", nil, r.c.topicKept.Load)
		m.Counter("rewound_total", "Kept topic messages given to joining clients (rewind).", nil, r.c.rewound.Load)
	}
	m.Counter("published_total", "Publishes to topics routed.", nil, r.c.published.Load)
	m.Counter("broadcasts_total", "Broadcasts routed.", nil, r.c.broadcasts.Load)
	m.Counter("topic_void_total", "Publishes to topics nobody was in.", nil, r.c.topicVoid.Load)
	m.Gauge("topics", "Topics with a member or an id kept in them for its resume.", nil, func() float64 { return float64(r.topics.Stats().Topics) })
	m.Gauge("topic_members", "Conns in topics, counted once per topic.", nil, func() float64 { return float64(r.topics.Stats().Members) })
	m.Counter("logins_total", "Logins applied.", nil, r.c.logins.Load)
	m.Counter("logouts_total", "Logouts applied.", nil, r.c.logouts.Load)
	m.Counter("resyncs_total", "Login resyncs asked of gateways.", nil, r.c.resyncs.Load)
	m.Counter("unconfirmed_frames_total", "Down frames a live gateway had not confirmed at -deliver-timeout: their copies counted lost (a slow gateway's arrive late; a frame lost on the way makes the gateway resync).", nil, r.c.unconfirmed.Load)
	m.Latency("route_seconds", "Stage latency: routing one send frame, from its arrival to its down frames published (waiting for a gateway's window included).", &r.c.route)
	m.Latency("down_confirm_seconds", "Stage latency: a down frame's flight, from its publish to the gateway's done record (the gateway's queues and writes included).", &r.c.confirm)
	m.Counter("gateway_purges_total", "Gateways forgotten (bye, restart or silence).", nil, r.c.purges.Load)
	m.Counter("bad_frames_total", "Malformed NATS frames received.", nil, r.c.badFrames.Load)
	m.Counter("unheard_frames_total", "Down frames NATS answered nobody was subscribed to (the gateway's connection gone): their copies are counted lost when the gateway is forgotten or at -deliver-timeout.", nil, r.c.unheard.Load)
	m.Counter("resumes_total", "Resumes of long-poll and SSE clients.", nil, r.c.resumes.Load)
	m.Counter("resumes_missed_total", "Resumes whose cursor was past the retention window or from another epoch.", nil, r.c.missed.Load)
	m.Counter("kept_only_total", "Sends to ids with no client at that moment, kept for a resuming one.", nil, r.c.kept.Load)
	m.Counter("caught_up_total", "Kept messages sent to resuming clients.", nil, r.c.caughtUp.Load)
	m.Counter("retention_evicted_total", "Kept messages dropped early for the retention byte cap.", nil, func() uint64 { return r.store.Stats().Evicted })
	m.Gauge("retention_messages", "Messages kept for resumable clients.", nil, func() float64 { return float64(r.store.Stats().Messages) })
	m.Gauge("retention_bytes", "Accounted memory of the kept messages.", nil, func() float64 { return float64(r.store.Stats().Bytes) })
	m.Gauge("retention_ids", "Ids with a kept history.", nil, func() float64 { return float64(r.store.Stats().IDs) })
	m.Gauge("acks_pending", "Send frames routed whose ack has not gone out yet (waiting for the gateways' done records, the history log, other partitions).", nil, func() float64 { return float64(r.fl.acksPending.Load()) })
	m.Bool("ready", "1 while the router is ready (GET /readyz answers 200), else 0.", func() bool { return r.Ready() == nil })
	if l := r.lead; l != nil {
		m.Bool("leader", "1 while this redundant router leads, 0 while it stands by.", l.leading.Load)
		m.Counter("takeovers_total", "Times this router took the lead.", nil, l.takeovers.Load)
		m.Counter("not_leading_total", "Send frames that came while this router did not lead (answered \"not taken\": their senders send them again).", nil, l.notLeading.Load)
		m.Counter("history_log_failed_total", "Batches of positions the history log could not take (their sends were not acked).", nil, l.hist.failed.Load)
	}
	if p := r.part; p != nil {
		m.Counter("partition_forwarded_total", "Frames handed to other partitions' routers.", nil, p.forwarded.Load)
		m.Counter("partition_unanswered_total", "Frames handed to other partitions that got no answer (their senders got no ack).", nil, p.unanswered.Load)
	}
	stats := func() registry.Stats { return r.reg.Stats() }
	m.Gauge("conns", "Conns holding at least one id.", nil, func() float64 { return float64(stats().Conns) })
	m.Gauge("ids", "Ids held by at least one conn.", nil, func() float64 { return float64(stats().IDs) })
	m.Gauge("gateways", "Gateways known.", nil, func() float64 { return float64(r.gws.len()) })
	return m
}
