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
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/wire"
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
	// AckTimeout bounds the wait for the router's ack. Default 5s.
	AckTimeout time.Duration
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
}

// MaxNumberedIDs bounds Max in numbered mode (a uint32 counter per id).
const MaxNumberedIDs = 100_000_000

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Num: 20, Interval: 10 * time.Millisecond, Max: 5, Procs: 1, Batch: 256, AckTimeout: 5 * time.Second}
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
	case c.Numbered && c.Max > MaxNumberedIDs:
		return fmt.Errorf("msggen: -numbered takes -max up to %d", MaxNumberedIDs)
	case c.Numbered && c.Max < int64(c.Procs):
		return fmt.Errorf("msggen: -numbered needs -max (%d) >= -procs (%d): each sender owns its ids", c.Max, c.Procs)
	case c.AckTimeout <= 0:
		return fmt.Errorf("msggen: -ack-timeout %s: must be > 0", c.AckTimeout)
	}
	return nil
}

// Result is the outcome of a run.
type Result struct {
	Sent      uint64        // messages the router acknowledged
	Delivered uint64        // copies the router handed to gateways
	Void      uint64        // sends to ids nobody held
	Errors    uint64        // frames not acknowledged (timeouts, no router)
	Lost      uint64        // messages in those frames
	Elapsed   time.Duration // wall time of the run
}

// Rate is messages acknowledged per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("sent %d messages in %s (%.0f/s): delivered %d copies, %d into the void, %d errors (%d messages not acknowledged)",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Delivered, r.Void, r.Errors, r.Lost)
}

// ErrNoRouter is returned when no router answers the ping.
var ErrNoRouter = errors.New("msggen: no router answers on NATS")

// Ping checks that a router answers on nc.
func Ping(nc *nats.Conn, timeout time.Duration) error {
	if _, err := request(nc, nil, timeout); err != nil {
		return fmt.Errorf("%w: %w", ErrNoRouter, err)
	}
	return nil
}

type ack struct{ accepted, delivered, void uint64 }

// request sends one send frame (nil: a ping) and decodes the ack.
func request(nc *nats.Conn, frame []byte, timeout time.Duration) (ack, error) {
	if frame == nil {
		frame = wire.AppendHeader(nil, wire.KindSend)
	}
	m, err := nc.Request(wire.SubjectSend, frame, timeout)
	if err != nil {
		return ack{}, err
	}
	var d wire.Decoder
	h, err := d.Reset(m.Data)
	if err != nil {
		return ack{}, err
	}
	var rec wire.Record
	if h.Kind != wire.KindAck || !d.Next(&rec) || rec.Op != wire.OpAck {
		return ack{}, fmt.Errorf("msggen: reply is not an ack (%s)", h.Kind)
	}
	return ack{rec.Count, rec.Delivered, rec.Void}, nil
}

type counters struct {
	sent, delivered, void, errors, lost atomic.Uint64
}

func (c *counters) result(elapsed time.Duration) Result {
	return Result{Sent: c.sent.Load(), Delivered: c.delivered.Load(), Void: c.void.Load(),
		Errors: c.errors.Load(), Lost: c.lost.Load(), Elapsed: elapsed}
}

// Run runs the senders on nc until each has sent Num messages or ctx ends.
func Run(ctx context.Context, nc *nats.Conn, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if err := Ping(nc, cfg.AckTimeout); err != nil {
		return Result{}, err
	}
	var c counters
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < cfg.Procs; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sender{nc: nc, cfg: &cfg, c: &c, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(p))), proc: int64(p)}
			if cfg.Numbered {
				s.owned = (cfg.Max - int64(p) + int64(cfg.Procs) - 1) / int64(cfg.Procs)
				s.seq = make([]uint32, s.owned)
			}
			s.run(ctx)
		}()
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

type sender struct {
	nc    *nats.Conn
	cfg   *Config
	c     *counters
	rng   *rand.Rand
	frame []byte
	left  int // messages still to send; counts down like the original's Num
	proc  int64
	owned int64    // numbered: how many ids this sender owns
	seq   []uint32 // numbered: last seq sent per owned id
}

// appendMsg adds one message to the frame being built.
func (s *sender) appendMsg() {
	var buf [64]byte
	msg := strconv.AppendInt(append(buf[:0], "Fake message Num = "...), int64(s.left), 10)
	var id int64
	if s.seq != nil {
		k := s.rng.Int64N(s.owned)
		id = s.proc + 1 + k*int64(s.cfg.Procs)
		s.seq[k]++
		msg = strconv.AppendUint(append(msg, " seq="...), uint64(s.seq[k]), 10)
	} else {
		id = 1 + s.rng.Int64N(s.cfg.Max)
	}
	s.frame = wire.AppendSend(s.frame, id, msg)
	s.left--
}

// flush sends the frame built so far holding n messages.
func (s *sender) flush(n int) {
	if n == 0 {
		return
	}
	a, err := request(s.nc, s.frame, s.cfg.AckTimeout)
	s.frame = s.frame[:0]
	if err != nil {
		s.c.errors.Add(1)
		s.c.lost.Add(uint64(n))
		return
	}
	s.c.sent.Add(a.accepted)
	s.c.delivered.Add(a.delivered)
	s.c.void.Add(a.void)
	if a.accepted < uint64(n) {
		s.c.lost.Add(uint64(n) - a.accepted)
	}
}

func (s *sender) start() int {
	s.frame = wire.AppendHeader(s.frame[:0], wire.KindSend)
	return 0
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
					n := s.start()
					for ; n < cfg.Batch && due > 0; n, due = n+1, due-1 {
						s.appendMsg()
					}
					s.flush(n)
					sentSoFar += n
				}
			}
		}
	case cfg.Interval == 0:
		for s.left > 0 && ctx.Err() == nil {
			n := s.start()
			for ; n < cfg.Batch && s.left > 0; n++ {
				s.appendMsg()
			}
			s.flush(n)
		}
	default:
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for s.left > 0 {
			s.start()
			s.appendMsg()
			s.flush(1)
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
		"sent": r.Sent, "delivered": r.Delivered, "void": r.Void, "errors": r.Errors,
		"unacknowledged": r.Lost, "elapsed_seconds": r.Elapsed.Seconds(), "rate": r.Rate(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
