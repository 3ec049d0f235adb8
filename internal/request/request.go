// Package request sends frames as NATS requests and hands back their
// answers: one inbox subscription for all of them, a bounded table of
// the requests waiting, sending one again while nobody takes it, and a
// sweep that gives up on those not answered in time.
//
// "Nobody takes it" is NATS's answer to a request on a subject nobody
// subscribes to ("no responders"), which a router that does not lead
// gives too (wire.StatusNotTaken): nobody got the frame, so sending it
// again repeats nothing. A request that was sent and got no answer is
// sent again only with Config.Resends, for frames whose receiver knows a
// copy (msggen's frame-ids). Every sender of this project uses it:
// msggen, the gateway's WebSocket requests, a partitioned router's
// hand-overs and a standby's forwards.
package request

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/wire"
)

// Config configures a Client. Every zero field takes its default.
type Config struct {
	// Prefix: the answers come to Prefix + "." + a number. Default: a
	// new NATS inbox.
	Prefix string
	// Max bounds the requests waiting; Send refuses more (ErrFull).
	// Default 65,536.
	Max int
	// Timeout is how long a request waits for its answer after it was
	// sent. Default 5s.
	Timeout time.Duration
	// Resends is how often a request whose Timeout passed is sent again
	// before it fails with ErrTimeout. Default 0.
	Resends int
	// RetryFor is how long after a send a request nobody took is sent
	// again, every RetryEvery; past it, it fails with ErrNotTaken.
	// Defaults: Timeout, and 100ms.
	RetryFor, RetryEvery time.Duration
}

// DefaultConfig returns the defaults documented on Config (Prefix: a new
// inbox, given by New).
func DefaultConfig() Config {
	return Config{Max: 1 << 16, Timeout: 5 * time.Second, RetryEvery: 100 * time.Millisecond}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Max < 0, c.Resends < 0, c.Timeout < 0, c.RetryFor < 0, c.RetryEvery < 0:
		return fmt.Errorf("request: negative bound in %+v", c)
	case c.Prefix != "" && (strings.ContainsAny(c.Prefix, " *>") || strings.HasSuffix(c.Prefix, ".")):
		return fmt.Errorf("request: prefix %q: a subject without wildcards, not ending in '.'", c.Prefix)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Prefix == "" {
		c.Prefix = nats.NewInbox()
	}
	if c.Max <= 0 {
		c.Max = d.Max
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.RetryFor <= 0 {
		c.RetryFor = c.Timeout
	}
	if c.RetryEvery <= 0 {
		c.RetryEvery = d.RetryEvery
	}
	return c
}

var (
	// ErrFull: Config.Max requests wait already; nothing was sent.
	ErrFull = errors.New("request: too many requests wait for an answer; not sent")
	// ErrTimeout: no answer came within Config.Timeout (after the
	// resends); the frame may or may not have been taken.
	ErrTimeout = errors.New("request: no answer in time; it may or may not have been taken")
	// ErrNotTaken: nobody took the frame for Config.RetryFor; nothing
	// was done with it.
	ErrNotTaken = errors.New("request: nobody took it")
	// ErrClosed: the client closed while the request waited.
	ErrClosed = errors.New("request: closed before an answer came")
)

// Done is called once for each request sent: with its answer's data, or
// with the error that ended it. It must not block for long (it runs on
// the inbox's or the sweep's goroutine).
type Done func(answer []byte, err error)

// NotTaken reports whether m is the answer that nobody took the request.
func NotTaken(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get(wire.StatusHeader) == wire.StatusNotTaken
}

// Client sends requests. Safe for concurrent use.
type Client struct {
	nc  *nats.Conn
	cfg Config
	sub *nats.Subscription

	mu      sync.Mutex // guards next, waiting, closed
	next    uint64
	waiting map[uint64]pending
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup

	retried, resent atomic.Uint64
}

type pending struct {
	subject string
	frame   []byte
	done    Done
	at      time.Time // of the last send (first, or again after a timeout)
	resends int
}

// New subscribes to the client's inbox and starts its sweep.
func New(nc *nats.Conn, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{nc: nc, cfg: cfg.withDefaults(), waiting: make(map[uint64]pending), stop: make(chan struct{})}
	sub, err := nc.Subscribe(c.cfg.Prefix+".*", c.answered)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	// Each waiting request has one answer coming, of a few dozen bytes
	// (an ack): the inbox holds them all without dropping one.
	sub.SetPendingLimits(2*c.cfg.Max, 2*c.cfg.Max*1024)
	c.sub = sub
	c.wg.Add(1)
	go c.sweep()
	return c, nil
}

// Send sends frame to subject; done gets its answer. The client keeps
// frame until then (to send it again): the caller must not change it.
func (c *Client) Send(subject string, frame []byte, done Done) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case len(c.waiting) >= c.cfg.Max:
		c.mu.Unlock()
		return ErrFull
	}
	c.next++
	n := c.next
	c.waiting[n] = pending{subject: subject, frame: frame, done: done, at: time.Now()}
	c.mu.Unlock()
	if err := c.publish(n, subject, frame); err != nil {
		c.take(n)
		return fmt.Errorf("request: not sent: %w", err)
	}
	return nil
}

// Request sends frame to subject and waits for its answer.
func (c *Client) Request(subject string, frame []byte) ([]byte, error) {
	type result struct {
		answer []byte
		err    error
	}
	ch := make(chan result, 1)
	if err := c.Send(subject, frame, func(a []byte, err error) { ch <- result{a, err} }); err != nil {
		return nil, err
	}
	r := <-ch
	return r.answer, r.err
}

// Waiting is the number of requests waiting for their answer.
func (c *Client) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}

// Stats: sends again because nobody took a request (retried), and
// because its answer did not come in time (resent).
func (c *Client) Stats() (retried, resent uint64) { return c.retried.Load(), c.resent.Load() }

// Close stops the client: the requests still waiting end with
// ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	left := c.waiting
	c.waiting = map[uint64]pending{}
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	c.sub.Unsubscribe()
	for _, p := range left {
		p.done(nil, ErrClosed)
	}
}

// publish sends request n, its answer to come to Prefix.n.
func (c *Client) publish(n uint64, subject string, frame []byte) error {
	var buf [96]byte
	reply := strconv.AppendUint(append(append(buf[:0], c.cfg.Prefix...), '.'), n, 10)
	return c.nc.PublishRequest(subject, string(reply), frame)
}

// take removes request n from the waiting ones.
func (c *Client) take(n uint64) (pending, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.waiting[n]
	delete(c.waiting, n)
	return p, ok
}

// answered hands an answer to its request, or sends the request again
// soon if nobody took it (within RetryFor of its send).
func (c *Client) answered(m *nats.Msg) {
	n, err := strconv.ParseUint(m.Subject[len(c.cfg.Prefix)+1:], 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	p, ok := c.waiting[n]
	if !ok {
		c.mu.Unlock()
		return // ended already (timed out: its done was told)
	}
	if NotTaken(m) && time.Since(p.at) < c.cfg.RetryFor-c.cfg.RetryEvery {
		c.mu.Unlock()
		time.AfterFunc(c.cfg.RetryEvery, func() { c.again(n) })
		return
	}
	delete(c.waiting, n)
	c.mu.Unlock()
	if NotTaken(m) {
		p.done(nil, ErrNotTaken)
		return
	}
	p.done(m.Data, nil)
}

// again sends request n again after nobody took it, if it still waits.
func (c *Client) again(n uint64) {
	c.mu.Lock()
	p, ok := c.waiting[n]
	c.mu.Unlock()
	if !ok {
		return
	}
	c.retried.Add(1)
	if err := c.publish(n, p.subject, p.frame); err != nil {
		if p, ok := c.take(n); ok {
			p.done(nil, fmt.Errorf("request: not sent: %w", err))
		}
	}
}

// sweep sends again, or ends with ErrTimeout, the requests whose answer
// did not come within Timeout.
func (c *Client) sweep() {
	defer c.wg.Done()
	t := time.NewTicker(max(min(c.cfg.Timeout/4, 250*time.Millisecond), 10*time.Millisecond))
	defer t.Stop()
	var late []pending
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.mu.Lock()
			for n, p := range c.waiting {
				if now.Sub(p.at) <= c.cfg.Timeout {
					continue
				}
				if p.resends < c.cfg.Resends {
					// Its server, or the lead, may have gone away with
					// it or its answer: a receiver that took it answers
					// the copy, not routes it again.
					p.at, p.resends = now, p.resends+1
					c.waiting[n] = p
					c.resent.Add(1)
					c.publish(n, p.subject, p.frame) // a failure is left to the next timeout
					continue
				}
				delete(c.waiting, n)
				late = append(late, p)
			}
			c.mu.Unlock()
			for i, p := range late {
				p.done(nil, ErrTimeout)
				late[i] = pending{}
			}
			late = late[:0]
		}
	}
}
