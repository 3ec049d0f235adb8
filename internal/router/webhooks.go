package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/webhook"
)

// WebhookEvery is how often the changes of ids and topics become events:
// an id that went offline and came back within one round is in no event
// (as presence events, PresenceEvery).
const WebhookEvery = PresenceEvery

// webhooks is the router's part in telling the application's backend
// what happened (package webhook): it notes the ids that got their first
// connection or lost their last (the registry's OnActive and OnIdle),
// and, every WebhookEvery, turns them and the topics' member changes into
// events, queued (webhook.Queue) by the router that leads, and delivered
// by it. Its methods are safe on a nil *webhooks (no -webhook): nothing
// is noted.
type webhooks struct {
	q      *webhook.Queue
	post   *webhook.Poster
	topics *topics.Index
	reg    *registry.Registry
	lead   *lead
	log    *zap.Logger
	// name is the router's (a resync's id names it); k its partition
	// (0 unpartitioned); part ends each event on a partitioned router.
	name, part string
	k          int

	mu  sync.Mutex
	ids map[int64]bool // ids changed this round -> held when it began

	// lost counts events not queued since the last batch queued (told
	// in the next); the rest are totals.
	lost                           atomic.Uint64
	made, queued, full, storeLost  atomic.Uint64
	delivered, posts, failed, bad  atomic.Uint64
	highBytes, depthBytes, batches atomic.Uint64

	// sending: this router queued the last round's events; kept: a
	// standby's rounds of events of the last keepFor (the rounds'
	// goroutine only).
	sending bool
	kept    []keptRound
	keepFor time.Duration
	// addWait bounds the wait for JetStream to take a batch: long enough
	// for a cluster to elect the stream's leader again (the rounds wait
	// meanwhile; their changes gather), shorter at a stop.
	addWait time.Duration

	stop context.CancelFunc
	done sync.WaitGroup
}

// WebhookConfig configures the router's webhooks (Config.Webhook).
type WebhookConfig struct {
	// URL receives the events (-webhook). Default "": no webhooks.
	URL string
	// SecretFile holds the secret that signs every POST
	// (-webhook-secret-file); needed with URL.
	SecretFile string
	// Timeout bounds one POST. Default 5s.
	Timeout time.Duration
	// QueueBytes bounds the events waiting for the receiver (stored in
	// JetStream). Default 64 MiB.
	QueueBytes int64
}

// openWebhooks opens the queue and the poster (nil without a URL).
func openWebhooks(r *Router) (*webhooks, error) {
	cfg := r.cfg.Webhook
	if cfg.URL == "" {
		return nil, nil
	}
	if r.stored == nil {
		return nil, errors.New("router: -webhook needs JetStream on the NATS server (its queue)")
	}
	secret, err := obs.ReadToken(cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("router: -webhook-secret-file: %w", err)
	}
	post, err := webhook.NewPoster(webhook.PosterConfig{URL: cfg.URL, Secret: []byte(secret), Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := 0
	if r.part != nil {
		k = r.part.k
	}
	q, err := webhook.OpenQueue(ctx, r.nc, r.cfg.StoreReplicas, k, cfg.QueueBytes)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	w := &webhooks{q: q, post: post, topics: r.topics, reg: r.reg, lead: r.lead, log: r.log, name: r.name, k: k, ids: make(map[int64]bool),
		keepFor: 5*r.cfg.Lease + 5*time.Second, addWait: 30 * time.Second}
	if p := r.part; p != nil {
		w.part = fmt.Sprintf(`,"partition":%d,"partitions":%d`, p.k, p.n)
	}
	r.topics.TrackMembers()
	return w, nil
}

// changed notes that id got its first connection (held) or lost its
// last.
func (w *webhooks) changed(id int64, held bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	if _, ok := w.ids[id]; !ok {
		w.ids[id] = !held // as it was before
	}
	w.mu.Unlock()
}

// start runs the rounds and the deliverer until close.
func (w *webhooks) start() {
	if w == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		// Rounds on the second, on every router alike (eventID).
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(time.Now().Truncate(time.Second).Add(time.Second))):
		}
		t := time.NewTicker(WebhookEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				w.addWait = 5 * time.Second // a stop waits less for JetStream
				w.round()                   // a clean stop queues what it saw
				return
			case <-t.C:
				w.round()
				w.sample()
			}
		}
	}()
	go func() {
		defer w.done.Done()
		w.q.Deliver(ctx, w.post, func() bool { return !w.lead.standby() }, w.took, w.failedPost)
	}()
}

// close stops the rounds (after a last one) and the deliverer (a POST in
// progress stays queued).
func (w *webhooks) close() {
	if w == nil || w.stop == nil {
		return
	}
	w.stop()
	w.done.Wait()
}

// keptRound is a round of events a standby keeps, to queue them again
// when it takes over: the leader may have died before it queued them.
type keptRound struct {
	r       int64 // the round (Unix second)
	batches []batch
}

// batch is events as the queue takes them, but for the closing "]" and
// lost count (queue adds them), and their number.
type batch struct {
	b []byte
	n int
}

// round turns the changes since the last round into events. The router
// that leads queues them; a standby makes the same (from the same up
// frames) and keeps those of the last keepFor. When it begins
// to lead, it queues a resync event, then what it kept, then the round:
// what the leader before it saw in its last rounds is queued again
// (events with the same ids, which a receiver drops; those made in
// another round than the leader's, as the same change told twice).
func (w *webhooks) round() {
	w.mu.Lock()
	ids := w.ids
	if len(ids) > 0 {
		w.ids = make(map[int64]bool)
	}
	w.mu.Unlock()
	changes := w.topics.TakeMemberChanges()
	standby := w.lead.standby()
	first := !standby && !w.sending // this router begins: started, or took over
	w.sending = !standby
	now := time.Now()
	r := now.Round(time.Second).Unix() // the round: the same second on every router
	var out []batch
	var cur batch
	add := func(typ string, id int64, hasID bool, topic string) {
		if cur.n == 0 {
			cur.b = append(cur.b, `{"events":[`...)
		} else {
			cur.b = append(cur.b, ',')
		}
		cur.n++
		cur.b = webhook.AppendEvent(cur.b, w.eventID(r, typ, id, hasID, topic), typ, now, id, hasID, topic, w.part)
		if len(cur.b) > webhook.MaxBatch-512 {
			out, cur = append(out, cur), batch{}
		}
	}
	if first {
		// The receiver's view may lack what the router before this one
		// saw in its last round, if it was alone (it was killed before
		// it queued it): a resync says so.
		add(webhook.Resync, 0, false, "")
		out, cur = append(out, cur), batch{}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		held := w.reg.Held(id)
		switch {
		case held && !ids[id]:
			add(webhook.Online, id, true, "")
		case !held && ids[id]:
			add(webhook.Offline, id, true, "")
		}
	}
	for _, c := range changes {
		if c.Occupied {
			add(webhook.Occupied, 0, false, c.Topic)
		}
		for _, id := range c.Joined {
			add(webhook.Joined, id, true, c.Topic)
		}
		for _, id := range c.Left {
			add(webhook.Left, id, true, c.Topic)
		}
		if c.Vacated {
			add(webhook.Vacated, 0, false, c.Topic)
		}
	}
	if cur.n > 0 {
		out = append(out, cur)
	}
	if standby {
		if len(out) > 0 {
			w.kept = append(w.kept, keptRound{r, out})
		}
		// Those the leader queued long ago go: a leader that dies is
		// replaced within its lease and the time to see it gone.
		for len(w.kept) > 0 && w.kept[0].r < r-int64(w.keepFor/time.Second) {
			w.kept[0] = keptRound{}
			w.kept = w.kept[1:]
		}
		return
	}
	if first && len(out) > 0 {
		w.queue(out[0].b, out[0].n) // the resync
		for _, kept := range w.kept {
			for _, b := range kept.batches {
				w.queue(b.b, b.n)
			}
		}
		w.kept, out = nil, out[1:]
	}
	for _, b := range out {
		w.queue(b.b, b.n)
	}
}

// eventID is an event's id: the partition, the round (a Unix second),
// the type and what it is about, so that the router that leads and its
// standby give one change made in the same round the same id
// ("p0/1796668561/joined/lobby/42"; topics have no "/"); a resync's
// names the router.
func (w *webhooks) eventID(r int64, typ string, id int64, hasID bool, topic string) string {
	b := fmt.Appendf(make([]byte, 0, 48), "p%d/%d/%s", w.k, r, typ)
	if topic != "" {
		b = append(append(b, '/'), topic...)
	}
	if hasID {
		b = strconv.AppendInt(append(b, '/'), id, 10)
	}
	if typ == webhook.Resync {
		b = append(append(b, '/'), w.name...)
	}
	return string(b)
}

// queue closes batch b of n events, with the count of those lost since
// the last one queued, and queues it; if it cannot, its events are
// lost, counted by reason and told in the next batch queued.
func (w *webhooks) queue(b []byte, n int) {
	// made is counted after the outcome: made = queued + lost whenever
	// the counts are read between two batches.
	defer w.made.Add(uint64(n))
	lost := w.lost.Swap(0)
	b = append(b, ']')
	if lost > 0 {
		b = append(b, `,"lost":`...)
		b = strconv.AppendUint(b, lost, 10)
	}
	b = append(b, '}')
	ctx, cancel := context.WithTimeout(context.Background(), w.addWait)
	err := w.q.Add(ctx, b)
	cancel()
	if err == nil {
		w.queued.Add(uint64(n))
		return
	}
	w.lost.Add(lost + uint64(n))
	if errors.Is(err, webhook.ErrFull) {
		w.full.Add(uint64(n))
		return // counted; the log would repeat it every second
	}
	w.storeLost.Add(uint64(n))
	w.log.Warn("webhook events not queued", zap.Int("events", n), zap.Error(err))
}

// took counts a delivery.
func (w *webhooks) took(d webhook.Delivery) {
	w.delivered.Add(d.Events)
	w.posts.Add(d.Posts)
	w.bad.Add(d.Malformed)
}

// sample notes the queue's depth (the leader: one JetStream request a
// round).
func (w *webhooks) sample() {
	if w.lead.standby() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if bytes, batches, err := w.q.Depth(ctx); err == nil {
		w.depthBytes.Store(bytes)
		w.batches.Store(batches)
		for h := w.highBytes.Load(); bytes > h && !w.highBytes.CompareAndSwap(h, bytes); h = w.highBytes.Load() {
		}
	}
}

// failedPost counts a failed attempt and says it (the poster's errors
// do not say the URL).
func (w *webhooks) failedPost(attempt int, err error, wait time.Duration) {
	w.failed.Add(1)
	if attempt == 1 || attempt%10 == 0 {
		w.log.Warn("webhook POST failed; trying again", zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	}
}

// WebhookStats counts the webhook events (GET /stats "webhooks").
type WebhookStats struct {
	Made      uint64 `json:"made"`      // events this router made
	Queued    uint64 `json:"queued"`    // of them, stored in the queue
	LostFull  uint64 `json:"lost_full"` // not queued: the queue was at its bound
	LostStore uint64 `json:"lost_store"`
	Delivered uint64 `json:"delivered"` // events the receiver took (2xx) from this router
	Posts     uint64 `json:"posts"`
	Failed    uint64 `json:"failed_attempts"`
	Malformed uint64 `json:"malformed_batches"`
	// The queue (every router's of this partition): bytes and batches
	// waiting at the last delivery, and the most bytes seen waiting.
	QueueBytes     uint64 `json:"queue_bytes"`
	QueueBatches   uint64 `json:"queue_batches"`
	QueueHighBytes uint64 `json:"queue_high_bytes"`
	QueueMaxBytes  int64  `json:"queue_max_bytes"`
}

func (w *webhooks) stats() *WebhookStats {
	if w == nil {
		return nil
	}
	return &WebhookStats{
		Made: w.made.Load(), Queued: w.queued.Load(), LostFull: w.full.Load(), LostStore: w.storeLost.Load(),
		Delivered: w.delivered.Load(), Posts: w.posts.Load(), Failed: w.failed.Load(), Malformed: w.bad.Load(),
		QueueBytes: w.depthBytes.Load(), QueueBatches: w.batches.Load(), QueueHighBytes: w.highBytes.Load(), QueueMaxBytes: w.q.MaxBytes(),
	}
}
