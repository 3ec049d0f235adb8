package hub

import (
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
	// WriteDelay trades latency for fewer writes when sessions get many
	// messages: a session written less than this long ago gathers new
	// output until the delay has passed since that write (or
	// coalesceMax is gathered), then gets it in one write. A session
	// that was quiet longer is written at once, and a long-poll's answer
	// never waits. Each write(2) on loopback costs about 10 µs of CPU
	// between the two ends, whatever it carries (docs/BENCHMARKS.md).
	// Default 0: every round's output is written at the end of the round.
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
	// not block. Default nil: the socket is closed instead.
	Handback func(fd int)
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
		Workers:      runtime.GOMAXPROCS(0),
		QueueLen:     1024,
		MaxSessions:  max,
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
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.QueueLen <= 0 {
		c.QueueLen = d.QueueLen
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	return c
}
