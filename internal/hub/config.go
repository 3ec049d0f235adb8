package hub

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a Hub. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// MaxPending bounds the output kept for a session whose socket does
	// not take it; past it the session is closed (ReasonSlow). Default
	// 64 KiB.
	MaxPending int
	// WriteTimeout closes a session whose pending output has made no
	// progress for this long (ReasonTimeout). Default 10s.
	WriteTimeout time.Duration
	// Workers is the number of goroutines writing deliveries. Default
	// GOMAXPROCS.
	Workers int
	// QueueLen is the number of delivery jobs each writer queues before
	// a delivery waits. Default 1024.
	QueueLen int
	// WriteDelay is the most a writer that falls behind may delay a busy
	// session's output to gather more of it into one write. Each write(2)
	// on loopback costs about 10 µs of CPU between the two ends, whatever
	// it carries (docs/BENCHMARKS.md), so under load fewer, fuller writes
	// deliver more. The delay adapts once per sweep: a writer that is
	// behind (a batch waited 10 ms in its queue, or busy 70% of the sweep
	// with batches queued behind its rounds) or whose machine's CPUs were
	// idle less than 10% (/proc/stat) for 2 s in a row doubles it (from
	// 1 ms up to WriteDelay); one that was not behind on
	// a machine idle more than 30% halves it, to 0 at once if no batch
	// waited a millisecond; in between it holds. A session written less
	// than its share of the current delay (half of it to all of it, fixed
	// per connection) ago gathers its output, up to 2 KiB, until then; a
	// writer holds back 8 MiB at most. So a gateway that keeps up writes
	// at once, and one at saturation (where waiting in the queues already
	// costs more) trades latency for throughput. A long-poll's answer
	// never waits. Default 4s (docs/BENCHMARKS.md: what 100,000 streams
	// on two cores need to deliver 200,000 messages/s); negative: never
	// delay (one write per session per round).
	WriteDelay time.Duration
	// SendBuffer sets SO_SNDBUF on every session's socket. Default 0: the
	// kernel's default (autotuned).
	SendBuffer int
	// MaxSessions bounds the open sessions, and so the descriptor numbers
	// a session may use. Default: the process's open-files limit.
	MaxSessions int
	// Handback receives a session's socket when its kind hands it back
	// (a long-poll after its answer: the client's next request is read
	// by the HTTP server). It owns fd from then on; the hub has stopped
	// watching it. It is called with the session's lock held and must
	// not block. It gets the session's Request.Peer with the socket.
	// Default nil: the socket is closed instead.
	Handback func(fd int, peer uint32)
	// ReadBudget is how many bytes the epoll loop reads from one socket
	// before it turns to the others: a socket with more to read goes to
	// the back of a ready list the loop returns to after the events at
	// hand, so a client that never stops sending cannot keep the loop
	// (and every other client) waiting. Default 16 KiB.
	ReadBudget int
	// InputTimeout ends a reading session (a WebSocket) whose input has
	// been incomplete (a frame not yet whole, a message whose last
	// fragment has not come) for this long: ReasonStalled. Input the hub
	// holds back while the kind paused it does not count. Default 10s;
	// negative: never.
	InputTimeout time.Duration
	// InputBudget bounds the bytes held for all reading sessions
	// together (their incomplete frames and messages). Past it, the
	// sweeper ends the largest holders until the total is back under
	// it, and past twice it the session whose input grew is ended at
	// once (ReasonInputBudget). Default 64 MiB.
	InputBudget int64
	// Release, if set, is given a session's Request.Peer when its
	// socket is closed (whether or not the session opened). The hub
	// then keeps 4 bytes per possible session for them. Called with the
	// session's lock held; it must not block.
	Release func(peer uint32)
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	max := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur > 0 && rl.Cur < 1<<24 {
		max = int(rl.Cur)
	}
	return Config{
		MaxPending:   64 << 10,
		WriteTimeout: 10 * time.Second,
		WriteDelay:   4 * time.Second,
		Workers:      runtime.GOMAXPROCS(0),
		QueueLen:     1024,
		MaxSessions:  max,
		ReadBudget:   16 << 10,
		InputTimeout: 10 * time.Second,
		InputBudget:  64 << 20,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.WriteDelay == 0 {
		c.WriteDelay = d.WriteDelay
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.QueueLen <= 0 {
		c.QueueLen = d.QueueLen
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.ReadBudget <= 0 {
		c.ReadBudget = d.ReadBudget
	}
	if c.InputTimeout == 0 {
		c.InputTimeout = d.InputTimeout
	}
	if c.InputBudget <= 0 {
		c.InputBudget = d.InputBudget
	}
	return c
}

// Validate reports a configuration that cannot work (zero fields take
// their defaults first).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxSessions > 1<<24:
		return fmt.Errorf("hub: %d sessions: at most %d", c.MaxSessions, 1<<24)
	case c.MaxPending < 1<<10:
		return fmt.Errorf("hub: pending output bound %d bytes: at least 1 KiB (a message must fit)", c.MaxPending)
	case c.ReadBudget < 512:
		return fmt.Errorf("hub: read budget %d bytes: at least 512", c.ReadBudget)
	case c.Workers > 1024:
		return fmt.Errorf("hub: %d writers: at most 1024", c.Workers)
	case c.SendBuffer < 0:
		return fmt.Errorf("hub: send buffer %d: must be >= 0", c.SendBuffer)
	}
	return nil
}
