package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/webhook"
	"github.com/cometgw/comet/internal/wire"
)

const hookSecret = "a-webhook-secret-for-tests"

// hookReceiver is a webhook receiver: it checks every POST's signature,
// keeps each event once (by its event id) in the order first received,
// and answers with fail's status (0: 200).
type hookReceiver struct {
	t    *testing.T
	srv  *httptest.Server
	fail atomic.Int32 // status to answer; 0: 200
	mu   sync.Mutex
	seen map[string]int // event id -> deliveries
	evs  []webhook.Event
	lost uint64
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t, seen: make(map[string]int)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !webhook.Verify([]byte(hookSecret), b, r.Header.Get(webhook.SignatureHeader)) {
			t.Errorf("bad signature on %.80s", b)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if code := h.fail.Load(); code != 0 {
			w.WriteHeader(int(code))
			return
		}
		var batch webhook.Batch
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Errorf("bad batch %.80s: %v", b, err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.lost += batch.Lost
		for _, e := range batch.Events {
			if h.seen[e.Event]++; h.seen[e.Event] == 1 {
				h.evs = append(h.evs, e)
			}
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// says lists the events received as "type id topic" lines.
func (h *hookReceiver) says() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.evs {
		s := e.Type
		if e.ID != nil {
			s += fmt.Sprintf(" %d", *e.ID)
		}
		if e.Topic != "" {
			s += " " + e.Topic
		}
		out = append(out, s)
	}
	return out
}

func (h *hookReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.evs)
}

// hookConfig is testConfig with webhooks to h.
func hookConfig(t *testing.T, h *hookReceiver) Config {
	cfg := testConfig(t)
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(hookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Webhook.URL, cfg.Webhook.SecretFile, cfg.Webhook.Timeout = h.srv.URL, f, time.Second
	cfg.GatewayTimeout = time.Minute // the fake gateways send no heartbeats
	return cfg
}

func up(gw string, recs ...func([]byte) []byte) []byte {
	b := wire.AppendUpHeader(nil, wire.KindUp, gw, 1)
	for _, r := range recs {
		b = r(b)
	}
	return b
}

func waitSays(t *testing.T, h *hookReceiver, want ...string) {
	t.Helper()
	waitFor(t, "webhook events "+strings.Join(want, ", "), func() bool { return len(h.says()) >= len(want) })
	if got := h.says(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

// TestWebhookEvents: ids coming online and going offline, a topic
// occupied and vacated, its members joining and leaving, each told once,
// signed; a login and logout within one round tells nothing.
func TestWebhookEvents(t *testing.T) {
	h := newHookReceiver(t)
	r, _ := runTestRouter(t, hookConfig(t, h))
	nc, _ := fakeGateway(t, r, "g1")
	pub := func(b []byte) { nc.Publish(wire.SubjectUp, b); nc.Flush() }
	pub(up("g1", func(b []byte) []byte { return wire.AppendHello(b, 0) },
		func(b []byte) []byte { return wire.AppendLogin(b, 1, 5) },
		func(b []byte) []byte { return wire.AppendLoginTopics(b, 2, 6, []string{"lobby"}, false) },
		func(b []byte) []byte { return wire.AppendLogin(b, 3, 6) }, // a second conn of 6: no event
		func(b []byte) []byte { return wire.AppendLogin(b, 4, 9) },
		func(b []byte) []byte { return wire.AppendLogout(b, 4) }, // within the round: nothing
	))
	waitSays(t, h, "resync", "online 5", "online 6", "occupied lobby", "joined 6 lobby")
	pub(up("g1", func(b []byte) []byte { return wire.AppendJoin(b, 1, 5, false, []string{"lobby"}, false) }))
	waitSays(t, h, "resync", "online 5", "online 6", "occupied lobby", "joined 6 lobby", "joined 5 lobby")
	pub(up("g1", func(b []byte) []byte { return wire.AppendLogout(b, 2) }))
	waitSays(t, h, "resync", "online 5", "online 6", "occupied lobby", "joined 6 lobby", "joined 5 lobby", "left 6 lobby")
	pub(up("g1", func(b []byte) []byte { return wire.AppendLogout(b, 1) }, func(b []byte) []byte { return wire.AppendLogout(b, 3) }))
	waitSays(t, h, "resync", "online 5", "online 6", "occupied lobby", "joined 6 lobby", "joined 5 lobby", "left 6 lobby",
		"offline 5", "offline 6", "left 5 lobby", "vacated lobby")
	// The receiver has a batch before the router has its answer: the
	// router counts it delivered a moment later (a CI run read 7).
	waitFor(t, "the router counts the batches the receiver took", func() bool {
		st := r.Stats().Webhooks
		return st != nil && st.Delivered >= 10
	})
	if st := r.Stats().Webhooks; st.Made != 11 || st.Queued != 11 || st.LostFull+st.LostStore != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWebhookReceiverDown: events made while the receiver fails wait in
// the queue and reach it, each once in its list, when it is back; a
// router stopped meanwhile leaves them to the next one on the same
// store.
func TestWebhookReceiverDown(t *testing.T) {
	h := newHookReceiver(t)
	h.fail.Store(http.StatusServiceUnavailable)
	cfg := hookConfig(t, h)
	cfg.StoreDir = t.TempDir()
	r, stop := runTestRouter(t, cfg)
	nc, _ := fakeGateway(t, r, "g1")
	for i := range 5 {
		nc.Publish(wire.SubjectUp, up("g1", func(b []byte) []byte { return wire.AppendLogin(b, uint64(i+1), int64(100+i)) }))
	}
	nc.Flush()
	waitFor(t, "6 events queued", func() bool { return r.Stats().Webhooks.Queued == 6 }) // resync and 5 online
	waitFor(t, "a failed POST", func() bool { return r.Stats().Webhooks.Failed > 0 })
	stop()
	nc.Close()

	// The next router on the same store: the receiver is back.
	h.fail.Store(0)
	cfg.Logger = cfg.Logger.Named("second")
	r2, _ := runTestRouter(t, cfg)
	// The batch the first router was trying is JetStream's to give again
	// after its ack wait (6 s) when the server restarted with it.
	testclient.WaitFor(t, "the second router delivers", 15*time.Second, func() bool { return h.count() == 7 })
	// The first router's batch was given back after the second's resync
	// was queued: across routers, order is by time_ms, not arrival.
	got := h.says()
	slices.Sort(got)
	if want := []string{"online 100", "online 101", "online 102", "online 103", "online 104", "resync", "resync"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q in any order", got, want)
	}
	if n := r2.Stats().Webhooks.Delivered; n != 7 {
		t.Fatalf("the second router delivered %d events", n)
	}
}

// TestWebhookQueueFull: past -webhook-queue, events are counted lost and
// the receiver is told how many in the next batch.
func TestWebhookQueueFull(t *testing.T) {
	h := newHookReceiver(t)
	h.fail.Store(http.StatusInternalServerError)
	cfg := hookConfig(t, h)
	cfg.Webhook.QueueBytes = 1 << 20
	r, _ := runTestRouter(t, cfg)
	nc, _ := fakeGateway(t, r, "g1")
	// 20,000 ids online: ~1.5 MB of events, more than the queue holds.
	b := wire.AppendUpHeader(nil, wire.KindUp, "g1", 1)
	for i := range 20000 {
		b = wire.AppendLogin(b, uint64(i+1), int64(i+1))
	}
	nc.Publish(wire.SubjectUp, b)
	nc.Flush()
	waitFor(t, "events lost", func() bool { st := r.Stats().Webhooks; return st.Made == 20001 && st.LostFull > 0 }) // and the resync
	st := r.Stats().Webhooks
	if st.Queued+st.LostFull != 20001 || st.LostStore != 0 {
		t.Fatalf("stats %+v", st)
	}
	h.fail.Store(0)
	// One more event makes a batch that tells the loss.
	nc.Publish(wire.SubjectUp, up("g1", func(b []byte) []byte { return wire.AppendLogin(b, 1<<20, -1) }))
	nc.Flush()
	waitFor(t, "every queued event and the loss told", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return uint64(len(h.evs)) == st.Queued+1 && h.lost == st.LostFull
	})
}

// TestWebhookTakeover: a redundant pair queues once (the leader's
// events), and the standby that takes over delivers what the old leader
// left and tells what happens next.
func TestWebhookTakeover(t *testing.T) {
	h := newHookReceiver(t)
	ns := startTestNATS(t)
	start := func(name string) (*Router, func()) {
		cfg := hookConfig(t, h)
		cfg.NATSURL, cfg.AdminAddr, cfg.Redundant, cfg.Lease = ns.ClientURL(), "off", true, 400*time.Millisecond
		cfg.Logger = cfg.Logger.Named(name)
		return runTestRouter(t, cfg)
	}
	a, stopA := start("a")
	waitFor(t, "a leads", func() bool { return leads(a) })
	b, _ := start("b")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	gw := func(recs ...func([]byte) []byte) {
		nc.Publish(wire.SubjectUp, up("g1", recs...))
		nc.Flush()
	}
	gw(func(b []byte) []byte { return wire.AppendLogin(b, 1, 7) })
	waitSays(t, h, "resync", "online 7")
	h.fail.Store(http.StatusBadGateway)
	gw(func(b []byte) []byte { return wire.AppendLogin(b, 2, 8) })
	waitFor(t, "a queued online 8", func() bool { return a.Stats().Webhooks.Queued == 3 })
	stopA()
	waitFor(t, "b leads", func() bool { return leads(b) })
	h.fail.Store(0)
	gw(func(b []byte) []byte { return wire.AppendLogout(b, 1) })
	// b queues its resync, the rounds it kept as a standby (online 7
	// and 8 again: the same ids when it made them in the leader's round,
	// which the receiver drops), then offline 7.
	waitFor(t, "offline 7", func() bool { return slices.Contains(h.says(), "offline 7") })
	told := map[string]int{}
	for _, e := range h.says() {
		told[e]++
	}
	if told["resync"] != 2 || told["online 7"] == 0 || told["online 8"] == 0 || told["offline 7"] != 1 || len(told) != 4 {
		t.Fatalf("the receiver was told %v", told)
	}
	if st := b.Stats().Webhooks; st.Made != 4 {
		t.Fatalf("the standby made %d events, want 4 (resync, online 7 and 8 again, offline 7)", st.Made)
	}
}

func TestWebhookConfigRefused(t *testing.T) {
	h := newHookReceiver(t)
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no secret file", func(c *Config) { c.Webhook.SecretFile = "" }, "-webhook-secret-file"},
		{"bad url", func(c *Config) { c.Webhook.URL = "localhost:80/x" }, "want an http"},
		{"small queue", func(c *Config) { c.Webhook.QueueBytes = 1000 }, "below 1 MiB"},
		{"short secret", func(c *Config) {
			f := filepath.Join(t.TempDir(), "s")
			os.WriteFile(f, []byte("short"), 0o600)
			c.Webhook.SecretFile = f
		}, "at least 16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := hookConfig(t, h)
			c.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want %q", err, c.want)
			}
		})
	}
}

// TestWebhooksPartitioned: each partition's router sends its own ids'
// events, each saying its partition, from its own subject of the one
// queue; a topic with members in both is occupied in each.
func TestWebhooksPartitioned(t *testing.T) {
	h := newHookReceiver(t)
	ns := startTestNATS(t)
	start := func(k int) *Router {
		cfg := hookConfig(t, h)
		cfg.NATSURL, cfg.AdminAddr, cfg.Partitions, cfg.Partition = ns.ClientURL(), "off", 2, k
		cfg.Logger = cfg.Logger.Named(fmt.Sprint("p", k))
		r, _ := runTestRouter(t, cfg)
		return r
	}
	a, b := start(0), start(1)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// id 2 is partition 0's, id 3 partition 1's; both in "room".
	nc.Publish(wire.PartSubject(wire.SubjectUp, 2, 0), up("gw", func(b []byte) []byte { return wire.AppendLoginTopics(b, 1, 2, []string{"room"}, false) }))
	nc.Publish(wire.PartSubject(wire.SubjectUp, 2, 1), up("gw", func(b []byte) []byte { return wire.AppendLoginTopics(b, 2, 3, []string{"room"}, false) }))
	nc.Flush()
	waitFor(t, "8 events", func() bool { return h.count() == 8 })
	h.mu.Lock()
	defer h.mu.Unlock()
	got := map[string]bool{}
	for _, e := range h.evs {
		if e.Partition == nil || e.Partitions != 2 {
			t.Fatalf("event without its partition: %+v", e)
		}
		s := fmt.Sprintf("p%d %s", *e.Partition, e.Type)
		if e.ID != nil {
			s += fmt.Sprint(" ", *e.ID)
		}
		got[s] = true
	}
	for _, want := range []string{"p0 resync", "p0 online 2", "p0 occupied", "p0 joined 2", "p1 resync", "p1 online 3", "p1 occupied", "p1 joined 3"} {
		if !got[want] {
			t.Errorf("no %q in %v", want, got)
		}
	}
	if a.Stats().Webhooks.Made != 4 || b.Stats().Webhooks.Made != 4 {
		t.Fatalf("made %d and %d, want 4 each", a.Stats().Webhooks.Made, b.Stats().Webhooks.Made)
	}
}
