package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/retention"
	"github.com/cometgw/comet/internal/subs"
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
	WindowWaits       uint64          `json:"window_waits"`
	Refused           uint64          `json:"refused"`
	SendFramesDropped uint64          `json:"send_frames_dropped"`
	UnknownDone       uint64          `json:"unknown_done"`
	LoginsTotal       uint64          `json:"logins_total"`
	Logouts           uint64          `json:"logouts_total"`
	Resyncs           uint64          `json:"resyncs"`
	Purges            uint64          `json:"gateway_purges"`
	BadFrames         uint64          `json:"bad_frames"`
	Resumes           uint64          `json:"resumes"`
	Missed            uint64          `json:"resumes_missed"`
	CaughtUp          uint64          `json:"caught_up"`
	KeptOnly          uint64          `json:"kept_only"`
	Retention         retention.Stats `json:"retention"`
	// Lead: a redundant router's role and history log (absent alone).
	Lead *LeadStats `json:"lead,omitempty"`
	// Partition: a partitioned router's share and what it handed to
	// the other partitions (absent unpartitioned).
	Partition *PartitionStats `json:"partition,omitempty"`
	// Frames: send frames with a frame-id, and copies sent again.
	Frames      FrameStats     `json:"frames"`
	GatewayList []GatewayStats `json:"gateway_list"`
}

// Stats returns the router's counters and gateways.
func (r *Router) Stats() Stats {
	rs := r.reg.Stats()
	st := Stats{
		Conns: rs.Conns, IDs: rs.IDs, Logins: rs.Pairs,
		Sent: r.sent.Load(), Void: r.void.Load(),
		Published: r.published.Load(), PresenceEvents: r.presenceSent.Load(), Broadcasts: r.broadcasts.Load(), TopicVoid: r.topicVoid.Load(), Topics: r.topics.Stats(),
		Subscriptions: r.subStats(), SubscriptionsCompacted: r.subsCompactions.Load(), StrayUp: r.strayUp.Load(),
		Routed: r.routed.Load(), Delivered: r.delivered.Load(), Dup: r.dups.Load(), Late: r.late.Load(),
		Dropped:     Dropped{Gone: r.droppedGone.Load(), Slow: r.droppedSlow.Load(), Gateway: r.droppedGateway.Load()},
		WindowWaits: r.waits.Load(), Refused: r.refused.Load(), SendFramesDropped: r.sendDropped(), UnknownDone: r.unknownDone.Load(),
		LoginsTotal: r.logins.Load(), Logouts: r.logouts.Load(),
		Resyncs: r.resyncs.Load(), Purges: r.purges.Load(), BadFrames: r.badFrames.Load(),
		Resumes: r.resumes.Load(), Missed: r.missed.Load(), CaughtUp: r.caughtUp.Load(), KeptOnly: r.kept.Load(),
		Retention:   r.store.Stats(),
		Lead:        r.leadStats(),
		Partition:   r.partitionStats(),
		Frames:      r.frames.stats(),
		GatewayList: []GatewayStats{},
	}
	r.upMu.Lock()
	r.flow.mu.Lock()
	r.gwMu.RLock()
	for _, gw := range r.gwByIdx {
		st.GatewayList = append(st.GatewayList, GatewayStats{
			Name: gw.name, Instance: gw.instance, Conns: gw.conns.Load(),
			LastSeen: time.Unix(0, gw.lastSeen.Load()).UTC().Format(time.RFC3339Nano), NATSServer: gw.server,
			InflightBytes: gw.inflight, InflightFrames: len(gw.flights),
		})
	}
	r.gwMu.RUnlock()
	r.flow.mu.Unlock()
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
		r.serveRoute(w, req, map[string]any{"id": id}, func(msg []byte) (SendResult, error) { return r.Send(id, msg) })
	})
	mux.HandleFunc("POST /publish/{topic}", func(w http.ResponseWriter, req *http.Request) {
		topic, ok := pathTopic(w, req)
		if !ok {
			return
		}
		r.serveRoute(w, req, map[string]any{"topic": topic}, func(msg []byte) (SendResult, error) { return r.Publish(topic, msg) })
	})
	mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, req *http.Request) {
		r.serveRoute(w, req, map[string]any{"broadcast": true}, r.Broadcast)
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
	return mux
}

// ownID reports whether this router serves id; if not (a partitioned
// router asked about another partition's id) it answers 421 naming the
// partition to ask.
func (r *Router) ownID(w http.ResponseWriter, id int64) bool {
	if r.mine(id) {
		return true
	}
	p := r.part
	writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("id %d is in partition %d of %d; this router serves partition %d: ask a router of partition %d", id, p.of(id), p.n, p.k, p.of(id)))
	return false
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
func (r *Router) serveRoute(w http.ResponseWriter, req *http.Request, head map[string]any, route func([]byte) (SendResult, error)) {
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

func (r *Router) subStats() *subs.Stats {
	if r.stored == nil {
		return nil
	}
	st := r.stored.Stats()
	return &st
}

// Presence is who is in a topic: GET /topics/{topic}.
type Presence struct {
	Topic string `json:"topic"`
	// IDs maps each id with connections in the topic to their number.
	IDs   map[int64]int `json:"ids"`
	Conns int           `json:"conns"`
	// Partitions, on a partitioned router: the answer merges every
	// partition's share, but those in Unanswered (their routers did not
	// answer in time: their ids are missing from it).
	Partitions int   `json:"partitions,omitempty"`
	Unanswered []int `json:"unanswered_partitions,omitempty"`
}

// ErrNoStore: the router has no stored subscriptions (no JetStream).
var ErrNoStore = errors.New("stored subscriptions need JetStream on the router's NATS server")

// Subscription stores a subscribe (op subs.OpSubscribe) or unsubscribe of
// id to topic, and returns once this router applies it (every router
// follows the same stream).
func (r *Router) Subscription(ctx context.Context, op byte, id int64, topic string) error {
	if r.stored == nil {
		return ErrNoStore
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, err := r.subStream.Publish(ctx, subs.AppendRecord([]byte{subs.Version}, op, id, topic))
	if err != nil {
		return err
	}
	return r.subFollow.WaitApplied(ctx, seq)
}

// SubscriptionsOf lists the topics id is subscribed to.
func (r *Router) SubscriptionsOf(id int64) []string {
	out := []string{}
	if r.stored != nil {
		out = r.stored.Topics(id, out)
	}
	return out
}

// Presence returns who is in topic now, across every gateway: the ids
// whose connections joined it and the subscribed ids with connections.
func (r *Router) Presence(topic string) Presence {
	p := Presence{Topic: topic, IDs: r.localPresence(topic)}
	if q := r.part; q != nil {
		p.Partitions = q.n
		for k := 0; k < q.n; k++ {
			if k == q.k {
				continue
			}
			var share presenceShare
			m, err := r.nc.Request(wire.PartSubject(wire.SubjectPresence, q.n, k), []byte(topic), 2*time.Second)
			if err == nil {
				err = json.Unmarshal(m.Data, &share)
			}
			if err != nil {
				p.Unanswered = append(p.Unanswered, k)
				continue
			}
			maps.Copy(p.IDs, share.IDs) // each id is in one partition
		}
	}
	for _, n := range p.IDs {
		p.Conns += n
	}
	return p
}

// presenceShare is a partition's answer on wire.SubjectPresence.
type presenceShare struct {
	IDs map[int64]int `json:"ids"`
}

// localPresence is the ids with conns in topic that this router holds,
// and their conns.
func (r *Router) localPresence(topic string) map[int64]int {
	ids := r.topics.Presence(topic)
	if ids == nil {
		ids = map[int64]int{}
	}
	if r.stored != nil {
		var conns []registry.Conn
		r.stored.Subscribers([]byte(topic), func(_ string, subs []int64) {
			for _, id := range subs {
				conns = r.reg.Lookup(id, conns[:0])
				if len(conns) > 0 {
					ids[id] = max(ids[id], len(conns))
				}
			}
		})
	}
	return ids
}

// handlePresence answers another partition's router with this
// partition's share of a topic's presence.
func (r *Router) handlePresence(m *nats.Msg) {
	if !wire.ValidTopic(m.Data) {
		r.badFrames.Add(1)
		return
	}
	b, err := json.Marshal(presenceShare{IDs: r.localPresence(string(m.Data))})
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		r.log.Warn("presence answer failed", zap.Error(err))
	}
}

func newMetrics(r *Router) *obs.Metrics {
	m := obs.NewMetrics("comet_router")
	m.Counter("sent_total", "Sends routed.", nil, r.sent.Load)
	m.Counter("routed_total", "Copies of messages handed to gateways.", nil, r.routed.Load)
	m.Counter("delivered_total", "Copies the gateways confirmed queued to a live connection.", nil, r.delivered.Load)
	for reason, c := range map[string]*atomic.Uint64{"gone": &r.droppedGone, "slow": &r.droppedSlow, "gateway": &r.droppedGateway} {
		m.Counter("dropped_total", "Copies not delivered, by reason: the client had left, was evicted as too slow, or its gateway went away or never confirmed them.",
			prometheus.Labels{"reason": reason}, c.Load)
	}
	m.Counter("window_waits_total", "Sends that waited for room in a gateway's window.", nil, r.waits.Load)
	m.Counter("refused_total", "HTTP sends refused (503) because the gateways' windows stayed full.", nil, r.refused.Load)
	m.Counter("send_frames_dropped_total", "Send frames NATS dropped because the router could not take them.", nil, r.sendDropped)
	m.Gauge("inflight_bytes", "Bytes of down frames in flight to every gateway.", nil, func() float64 { return float64(r.inflightBytes()) })
	m.Counter("void_total", "Sends to ids nobody holds (and publishes and broadcasts that reached nobody).", nil, r.void.Load)
	m.Counter("kicked_total", "Sessions asked to end by router kick.", nil, r.kicks.Load)
	m.Counter("published_total", "Publishes to topics routed.", nil, r.published.Load)
	m.Counter("broadcasts_total", "Broadcasts routed.", nil, r.broadcasts.Load)
	m.Counter("topic_void_total", "Publishes to topics nobody was in.", nil, r.topicVoid.Load)
	m.Gauge("topics", "Topics with a member or an id kept in them for its resume.", nil, func() float64 { return float64(r.topics.Stats().Topics) })
	m.Gauge("topic_members", "Conns in topics, counted once per topic.", nil, func() float64 { return float64(r.topics.Stats().Members) })
	m.Counter("logins_total", "Logins applied.", nil, r.logins.Load)
	m.Counter("logouts_total", "Logouts applied.", nil, r.logouts.Load)
	m.Counter("resyncs_total", "Login resyncs asked of gateways.", nil, r.resyncs.Load)
	m.Counter("gateway_purges_total", "Gateways forgotten (bye, restart or silence).", nil, r.purges.Load)
	m.Counter("bad_frames_total", "Malformed NATS frames received.", nil, r.badFrames.Load)
	m.Counter("resumes_total", "Resumes of long-poll and SSE clients.", nil, r.resumes.Load)
	m.Counter("resumes_missed_total", "Resumes whose cursor was past the retention window or from another epoch.", nil, r.missed.Load)
	m.Counter("kept_only_total", "Sends to ids with no client at that moment, kept for a resuming one.", nil, r.kept.Load)
	m.Counter("caught_up_total", "Kept messages sent to resuming clients.", nil, r.caughtUp.Load)
	m.Counter("retention_evicted_total", "Kept messages dropped early for the retention byte cap.", nil, func() uint64 { return r.store.Stats().Evicted })
	m.Gauge("retention_messages", "Messages kept for resumable clients.", nil, func() float64 { return float64(r.store.Stats().Messages) })
	m.Gauge("retention_bytes", "Accounted memory of the kept messages.", nil, func() float64 { return float64(r.store.Stats().Bytes) })
	m.Gauge("retention_ids", "Ids with a kept history.", nil, func() float64 { return float64(r.store.Stats().IDs) })
	stats := func() registry.Stats { return r.reg.Stats() }
	m.Gauge("conns", "Conns holding at least one id.", nil, func() float64 { return float64(stats().Conns) })
	m.Gauge("ids", "Ids held by at least one conn.", nil, func() float64 { return float64(stats().IDs) })
	m.Gauge("gateways", "Gateways known.", nil, func() float64 {
		r.gwMu.RLock()
		defer r.gwMu.RUnlock()
		return float64(len(r.gwByIdx))
	})
	return m
}
