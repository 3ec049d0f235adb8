package msggen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/wire"
	"github.com/cometgw/comet/publish"
)

// Config configures a run.
type Config struct {
	// Num is the number of messages each sender sends. Default 20.
	Num int
	// Interval is the wait between two messages of one sender (the
	// original's Interval); 0 sends flat out. Ignored when Rate is set.
	// Default 10ms.
	Interval time.Duration
	// Rate, if > 0, is the total messages per second over all senders.
	Rate float64
	// Max: ids are drawn uniformly from 1..Max. Default 5.
	Max int64
	// Procs is the number of senders in parallel. Default 1.
	Procs int
	// Batch bounds the messages in one frame (rate and flat-out modes).
	// Default 256.
	Batch int
	// InFlight is how many frames each sender keeps waiting for their
	// acks; past it the sender waits (so a router that slows down, and a
	// gateway behind it, slow the sender). With several routers, 1 keeps
	// each id's messages in order across them. Default (0): 8.
	InFlight int
	// AckTimeout bounds the wait for the router's ack of a frame. Default
	// 10s (the router answers within its deliver timeout, 5s).
	AckTimeout time.Duration
	// Resends is how many times a frame that got no ack within
	// AckTimeout is sent again (each time waiting AckTimeout again)
	// before its messages count unacknowledged. Every frame then starts
	// with a frame-id, so a router that took it already answers the copy
	// instead of routing it twice, unless that router died before it
	// logged the frame (docs/PROTOCOL.md, "Sending a frame again": then
	// the copy may be delivered twice); (Resends+1) x AckTimeout must
	// stay within the routers' memory of frames, wire.FrameWindow.
	// Default 0: a frame is sent once.
	Resends int
	// Every prints progress this often to Progress. 0: never.
	Every time.Duration
	// Progress receives progress lines. Default: nowhere.
	Progress io.Writer
	// Seed seeds the id choice; 0 picks one at random.
	Seed uint64
	// Numbered appends " seq=S" to every message, S counting 1, 2, 3...
	// per id, so a receiver can tell a lost or repeated message. Each id
	// is then owned by one sender (ids p+1, p+1+Procs, ...), which keeps
	// the sequence in order on the wire.
	Numbered bool
	// Topics, if > 0, makes every message a publish to a topic drawn
	// from topic-1..topic-Topics instead of a send to an id (numbered:
	// seq counts per topic).
	Topics int
	// TopicPrefix names the topics: TopicPrefix + K. Default "topic-".
	TopicPrefix string
	// BroadcastEvery, if > 0, also broadcasts "Broadcast #K" to every
	// connection this often while the senders run.
	BroadcastEvery time.Duration
	// Stamp appends " t=<unix nanoseconds>" to every message, so a
	// receiver can tell how long it took.
	Stamp bool
	// Partitions, if > 1, splits each frame of sends by the id's
	// partition (wire.Partition) and sends each part to its partition's
	// subject, so no router hands records on to another (router
	// -partitions; without it any router takes the frame and does).
	// Publishes and broadcasts go to any router. Default 1.
	Partitions int
}

// DefaultTopicPrefix names msggen's topics: topic-1, topic-2...
const DefaultTopicPrefix = "topic-"

// topicName is the name of the run's k-th topic (1-based).
func (c *Config) topicName(k int64) string {
	p := c.TopicPrefix
	if p == "" {
		p = DefaultTopicPrefix
	}
	return p + strconv.FormatInt(k, 10)
}

// MaxNumberedIDs bounds Max in numbered mode (a uint32 counter per id).
const MaxNumberedIDs = 100_000_000

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Num: 20, Interval: 10 * time.Millisecond, Max: 5, Procs: 1, Batch: 256, InFlight: 8, AckTimeout: 10 * time.Second}
}

// withDefaults is c with a random seed if none, and the default frames
// in flight if none.
func (c Config) withDefaults() Config {
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.InFlight == 0 {
		c.InFlight = DefaultConfig().InFlight
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Num < 0:
		return fmt.Errorf("msggen: -n %d: must be >= 0", c.Num)
	case c.Max < 1:
		return fmt.Errorf("msggen: -max %d: must be >= 1", c.Max)
	case c.Procs < 1:
		return fmt.Errorf("msggen: -procs %d: must be >= 1", c.Procs)
	case c.Interval < 0:
		return fmt.Errorf("msggen: -interval %s: must be >= 0", c.Interval)
	case c.Rate < 0:
		return fmt.Errorf("msggen: -rate %g: must be >= 0", c.Rate)
	case c.Batch < 1 || c.Batch > 100000:
		return fmt.Errorf("msggen: -batch %d: must be 1..100000", c.Batch)
	case c.Topics < 0:
		return fmt.Errorf("msggen: -topics %d: must be >= 0", c.Topics)
	case c.Numbered && c.Topics > 0 && c.Topics < c.Procs:
		return fmt.Errorf("msggen: -numbered needs -topics (%d) >= -procs (%d): each sender owns its topics", c.Topics, c.Procs)
	case c.Topics > 0 && !wire.ValidTopic([]byte(c.topicName(int64(c.Topics)))):
		return fmt.Errorf("msggen: -topic-prefix %q: topics must be 1 to %d of A-Z a-z 0-9 : . _ -", c.TopicPrefix, wire.MaxTopic)
	case c.Partitions < 0 || c.Partitions > wire.MaxPartitions:
		return fmt.Errorf("msggen: -partitions %d: want 1 to %d (the routers')", c.Partitions, wire.MaxPartitions)
	case c.BroadcastEvery < 0:
		return fmt.Errorf("msggen: -broadcast-every %s: must be >= 0", c.BroadcastEvery)
	case c.Numbered && c.Max > MaxNumberedIDs:
		return fmt.Errorf("msggen: -numbered takes -max up to %d", MaxNumberedIDs)
	case c.Numbered && c.Topics == 0 && c.Max < int64(c.Procs):
		return fmt.Errorf("msggen: -numbered needs -max (%d) >= -procs (%d): each sender owns its ids", c.Max, c.Procs)
	case c.AckTimeout <= 0:
		return fmt.Errorf("msggen: -ack-timeout %s: must be > 0", c.AckTimeout)
	case c.InFlight < 0 || c.InFlight > 4096:
		return fmt.Errorf("msggen: -inflight %d: must be 1..4096", c.InFlight)
	case c.Resends < 0:
		return fmt.Errorf("msggen: -resends %d: must be >= 0", c.Resends)
	case time.Duration(c.Resends+1)*c.AckTimeout > wire.FrameWindow:
		return fmt.Errorf("msggen: -resends %d with -ack-timeout %s: a copy would come after the routers forget the frame (%s): lower either", c.Resends, c.AckTimeout, wire.FrameWindow)
	}
	return nil
}

// Result is the outcome of a run.
type Result struct {
	Sent      uint64 // messages the router acknowledged
	Void      uint64 // sends to ids nobody held
	Kept      uint64 // sends to ids nobody held at that moment, kept for resuming clients
	Delivered uint64 // copies queued to live connections, as the gateways confirmed
	// Copies not delivered, by reason: the client had left, was evicted
	// as too slow, or its gateway went away or never confirmed them.
	Gone, Slow, Gateway uint64
	Errors              uint64 // frames not acknowledged (timeouts, no router)
	Lost                uint64 // messages in those frames
	// Retried: frames sent again because no router took them (NATS
	// answered "no responders": nobody got them, so sending again
	// repeats nothing), within AckTimeout of their first send.
	Retried uint64
	// Resent: frames sent again because no ack came within AckTimeout
	// (Resends); a router that took the first answers the copy.
	Resent uint64
	// Retaken: messages acknowledged by a router that took the lead
	// after the one that routed them (Sent counts them): what became of
	// their copies is not known; clients that resume get them from the
	// history.
	Retaken uint64
	Elapsed time.Duration // wall time of the run
}

// Dropped is every copy not delivered.
func (r Result) Dropped() uint64 { return r.Gone + r.Slow + r.Gateway }

// Rate is messages acknowledged per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	s := fmt.Sprintf("sent %d messages in %s (%.0f/s): delivered %d copies, %d into the void, %d kept for resuming clients, dropped %d (gone %d, slow %d, gateway %d), %d errors (%d messages not acknowledged)",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Delivered, r.Void, r.Kept, r.Dropped(), r.Gone, r.Slow, r.Gateway, r.Errors, r.Lost)
	if r.Retried > 0 {
		s += fmt.Sprintf("; %d frames sent again (no router took them)", r.Retried)
	}
	if r.Resent > 0 {
		s += fmt.Sprintf("; %d frames sent again (no ack within %s)", r.Resent, "the ack timeout")
	}
	if r.Retaken > 0 {
		s += fmt.Sprintf("; %d messages acknowledged after a takeover (routed by the leader before; copies' fate unknown)", r.Retaken)
	}
	return s
}

// ErrNoRouter is returned when no router answers the ping.
var ErrNoRouter = errors.New("msggen: no router answers on NATS")

// Ping checks that a router answers on nc (with partitions > 1, one on
// each partition's subject).
func Ping(nc *nats.Conn, partitions int, timeout time.Duration) error {
	p, err := publish.New(nc, publish.Config{Timeout: timeout, Partitions: partitions})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		if last := nc.LastError(); last != nil && strings.Contains(strings.ToLower(last.Error()), "permissions violation") {
			// The server refused this process's credentials the send:
			// say so, not that no router answers.
			return fmt.Errorf("msggen: NATS refused: %w (are these a sender's credentials?)", last)
		}
		return fmt.Errorf("%w: %w", ErrNoRouter, err)
	}
	return nil
}

type counters struct {
	sent, void, kept, delivered, gone, slow, gateway, errors, lost, retried, resent, retaken atomic.Uint64
}

func (c *counters) result(elapsed time.Duration) Result {
	return Result{Sent: c.sent.Load(), Void: c.void.Load(), Kept: c.kept.Load(), Delivered: c.delivered.Load(),
		Gone: c.gone.Load(), Slow: c.slow.Load(), Gateway: c.gateway.Load(),
		Errors: c.errors.Load(), Lost: c.lost.Load(), Retried: c.retried.Load(), Resent: c.resent.Load(), Retaken: c.retaken.Load(), Elapsed: elapsed}
}

// ack counts one frame's acknowledgement (or its failure: every message
// of it unacknowledged).
func (c *counters) ack(r publish.Result, err error) {
	if err != nil {
		c.errors.Add(1)
		c.lost.Add(r.Messages)
		return
	}
	c.sent.Add(r.Accepted)
	c.void.Add(r.Void)
	c.kept.Add(r.Kept)
	c.delivered.Add(r.Delivered)
	c.gone.Add(r.Dropped.Gone)
	c.slow.Add(r.Dropped.Slow)
	c.gateway.Add(r.Dropped.Gateway)
	if r.Retaken {
		c.retaken.Add(r.Accepted)
	}
	if r.Accepted < r.Messages {
		c.lost.Add(r.Messages - r.Accepted)
	}
}

// Run runs the senders on nc until each has sent Num messages or ctx ends.
func Run(ctx context.Context, nc *nats.Conn, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := Ping(nc, cfg.partitions(), cfg.AckTimeout); err != nil {
		return Result{}, err
	}
	var c counters
	start := time.Now()
	var wg sync.WaitGroup
	targets := cfg.Max
	if cfg.Topics > 0 {
		targets = int64(cfg.Topics)
	}
	sendersDone := make(chan struct{})
	if cfg.BroadcastEvery > 0 {
		bctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() { <-sendersDone; stop() }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sender{nc: nc, cfg: &cfg, c: &c, broadcast: true}
			if err := s.start(); err != nil {
				c.errors.Add(1)
				return
			}
			s.broadcasts(bctx)
			s.drain()
		}()
	}
	var senders sync.WaitGroup
	for p := 0; p < cfg.Procs; p++ {
		wg.Add(1)
		senders.Add(1)
		go func() {
			defer wg.Done()
			defer senders.Done()
			s := sender{nc: nc, cfg: &cfg, c: &c, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(p))), proc: int64(p), targets: targets}
			if cfg.Numbered {
				s.owned = (targets - int64(p) + int64(cfg.Procs) - 1) / int64(cfg.Procs)
				s.seq = make([]uint32, s.owned)
			}
			if err := s.start(); err != nil {
				c.errors.Add(1)
				c.lost.Add(uint64(cfg.Num))
				return
			}
			s.run(ctx)
			s.drain()
		}()
	}
	if cfg.Num > 0 || cfg.BroadcastEvery == 0 {
		// Broadcasts go on while there are sends; with none (-n 0),
		// until ctx ends.
		go func() { senders.Wait(); close(sendersDone) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var tick <-chan time.Time
	if cfg.Every > 0 && cfg.Progress != nil {
		t := time.NewTicker(cfg.Every)
		defer t.Stop()
		tick = t.C
	}
	last, lastAt := uint64(0), start
	for {
		select {
		case <-done:
			return c.result(time.Since(start)), nil
		case now := <-tick:
			r := c.result(now.Sub(start))
			fmt.Fprintf(cfg.Progress, "msggen: %s: sent %d (%.0f/s now), delivered %d, void %d, errors %d\n",
				now.Sub(start).Round(time.Second), r.Sent, float64(r.Sent-last)/now.Sub(lastAt).Seconds(), r.Delivered, r.Void, r.Errors)
			last, lastAt = r.Sent, now
		}
	}
}

// partitions is how many partitions sends are split over: the routers'
// with -partitions, for sends (publishes go to any router).
func (c *Config) partitions() int {
	if c.Topics > 0 {
		return 1
	}
	return max(c.Partitions, 1)
}

// sender is one of the run's senders: its messages go into a batch of
// the publish package, flushed as one frame (one per partition) without
// waiting for the ack, at most InFlight frames waiting at once.
type sender struct {
	nc      *nats.Conn
	cfg     *Config
	c       *counters
	rng     *rand.Rand
	left    int // messages still to send; counts down like the original's Num
	proc    int64
	targets int64    // ids (or topics) drawn from
	owned   int64    // numbered: how many ids (topics) this sender owns
	seq     []uint32 // numbered: last seq sent per owned id (topic)
	// broadcast: this sender broadcasts, every BroadcastEvery.
	broadcast bool
	sent      int
	pub       *publish.Client
	batch     *publish.Batch
}

// start readies the sender's publisher: a frame no router takes is sent
// again every 100 ms within its ack timeout; one whose ack does not come
// within it, Resends times (with a frame-id: copies are answered, not
// routed again).
func (s *sender) start() error {
	var err error
	s.pub, err = publish.New(s.nc, publish.Config{Timeout: s.cfg.AckTimeout, Resends: s.cfg.Resends, MaxInFlight: s.cfg.InFlight, Partitions: s.cfg.partitions()})
	if err == nil {
		s.batch = s.pub.Batch()
	}
	return err
}

// drain waits until every frame is acknowledged or timed out, then stops.
func (s *sender) drain() {
	s.pub.Wait()
	retried, resent := s.pub.Stats()
	s.c.retried.Add(retried)
	s.c.resent.Add(resent)
	s.pub.Close()
}

// appendMsg adds one message to the batch being built.
func (s *sender) appendMsg() {
	var buf [96]byte
	msg := strconv.AppendInt(append(buf[:0], "Fake message Num = "...), int64(s.left), 10)
	var id int64
	if s.seq != nil {
		k := s.rng.Int64N(s.owned)
		id = s.proc + 1 + k*int64(s.cfg.Procs)
		s.seq[k]++
		msg = strconv.AppendUint(append(msg, " seq="...), uint64(s.seq[k]), 10)
	} else {
		id = 1 + s.rng.Int64N(s.targets)
	}
	msg = s.stamp(msg)
	if s.cfg.Topics > 0 {
		s.add(func() error { return s.batch.Publish(s.cfg.topicName(id), msg) })
	} else {
		s.add(func() error { return s.batch.Send(id, msg) })
	}
	s.left--
}

// add adds a message with put, flushing first if the batch is full.
func (s *sender) add(put func() error) {
	err := put()
	if errors.Is(err, publish.ErrBatchFull) {
		s.flush()
		err = put()
	}
	if err != nil {
		s.c.errors.Add(1)
		s.c.lost.Add(1)
	}
}

// stamp appends the time to msg if the run stamps its messages.
func (s *sender) stamp(msg []byte) []byte {
	if !s.cfg.Stamp {
		return msg
	}
	return strconv.AppendInt(append(msg, " t="...), time.Now().UnixNano(), 10)
}

// broadcasts sends "Broadcast #K" every BroadcastEvery until ctx ends.
func (s *sender) broadcasts(ctx context.Context) {
	t := time.NewTicker(s.cfg.BroadcastEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sent++
		var buf [64]byte
		msg := s.stamp(strconv.AppendInt(append(buf[:0], "Broadcast #"...), int64(s.sent), 10))
		s.add(func() error { return s.batch.Broadcast(msg) })
		s.flush()
	}
}

// flush sends the batch built so far (partitioned: each partition's part
// of it to its subject), once fewer than InFlight frames wait for their
// acks. It is sent even when the run's ctx has ended: a message built is
// sent and accounted for.
func (s *sender) flush() {
	if s.batch.Len() > 0 {
		s.pub.FlushAsync(context.Background(), s.batch, s.c.ack)
	}
}

func (s *sender) run(ctx context.Context) {
	s.left = s.cfg.Num
	cfg := s.cfg
	switch {
	case cfg.Rate > 0:
		// Each sender owns Rate/Procs of the rate; every tick it sends
		// what is due, in one frame (or several of Batch).
		per := cfg.Rate / float64(cfg.Procs)
		const tickEvery = 10 * time.Millisecond
		t := time.NewTicker(tickEvery)
		defer t.Stop()
		begin := time.Now()
		sentSoFar := 0
		for s.left > 0 {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				due := min(int(per*now.Sub(begin).Seconds())-sentSoFar, s.left)
				for due > 0 && ctx.Err() == nil {
					n := 0
					for ; n < cfg.Batch && due > 0; n, due = n+1, due-1 {
						s.appendMsg()
					}
					s.flush()
					sentSoFar += n
				}
			}
		}
	case cfg.Interval == 0:
		for s.left > 0 && ctx.Err() == nil {
			for n := 0; n < cfg.Batch && s.left > 0; n++ {
				s.appendMsg()
			}
			s.flush()
		}
	default:
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for s.left > 0 {
			s.appendMsg()
			s.flush()
			if s.left == 0 {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// WriteJSON writes r to path as JSON (elapsed in seconds).
func (r Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(map[string]any{
		"sent": r.Sent, "delivered": r.Delivered, "void": r.Void, "kept": r.Kept,
		"dropped": map[string]uint64{"gone": r.Gone, "slow": r.Slow, "gateway": r.Gateway},
		"errors":  r.Errors, "unacknowledged": r.Lost, "retried": r.Retried, "resent": r.Resent, "retaken": r.Retaken, "elapsed_seconds": r.Elapsed.Seconds(), "rate": r.Rate(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
