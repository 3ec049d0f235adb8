// Package hook asks the application's backend whether a client may
// connect, or join topics: a JSON POST to a URL, answered with allow or
// refuse (docs/API.md, "Hooks"). A Client bounds what it asks at once
// and what waits for it, gives up after a timeout, stops asking a
// backend that keeps failing for a while (a breaker), remembers answers
// for a moment, and counts every outcome. What to do when the backend
// cannot answer is the caller's (the gateway's -hook-down).
package hook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/cometgw/comet/internal/backend"
)

// Config configures a Client.
type Config struct {
	// URL receives the POSTs (http or https).
	URL string
	// Timeout bounds one answer, the wait for a free slot included.
	// Default 2s.
	Timeout time.Duration
	// Concurrency bounds the POSTs in flight. Default 64.
	Concurrency int
	// Queue bounds the requests waiting for a slot; past it a request
	// is not asked (Busy). Default 1024.
	Queue int
	// CacheTTL keeps each answer this long for the same request (the
	// same id, kind, topics, headers and cookies; 0: none). Default 0.
	CacheTTL time.Duration
	// CacheSize bounds the answers kept. Default 10,000.
	CacheSize int
	// BreakerFailures opens the breaker after this many failures in a
	// row (no answer, 5xx, not JSON): for BreakerOpen, nothing is asked
	// (Open); then one request is, and its outcome closes or opens it
	// again. Defaults 5 and 5s.
	BreakerFailures int
	BreakerOpen     time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Timeout: 2 * time.Second, Concurrency: 64, Queue: 1024, CacheSize: 10000, BreakerFailures: 5, BreakerOpen: 5 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Queue < 0 {
		c.Queue = 0
	} else if c.Queue == 0 {
		c.Queue = d.Queue
	}
	if c.CacheSize <= 0 {
		c.CacheSize = d.CacheSize
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = d.BreakerFailures
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = d.BreakerOpen
	}
	return c
}

// CheckURL says what is wrong with a hook URL, if anything.
func CheckURL(raw string) error { return backend.CheckURL("hook", raw) }

// Request is what a POST carries.
type Request struct {
	// Kind is "connect" (a client opens a connection) or "join" (it
	// joins topics: ?topics=, or a WebSocket join).
	Kind string `json:"kind"`
	ID   int64  `json:"id"`
	// Transport is the client's kind: stream, sse, poll or ws.
	Transport string   `json:"transport"`
	Topics    []string `json:"topics,omitempty"`
	// Headers and Cookies are those the gateway was told to pass
	// (-hook-headers, -hook-cookies), as the client sent them.
	Headers map[string]string `json:"headers,omitempty"`
	Cookies map[string]string `json:"cookies,omitempty"`
	// Addr is the client's address (the peer's, or a trusted proxy's
	// X-Forwarded-For).
	Addr string `json:"addr"`
}

// Answer is the backend's answer.
type Answer struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
	// Topics, if given, are the topics the client is in (a connect) or
	// joins (a join) instead of those it asked for.
	Topics []string `json:"topics,omitempty"`
	// Expires, if given, ends the connection then (Unix seconds).
	Expires int64 `json:"expires,omitempty"`
}

// Outcomes, as counted.
const (
	Allowed      = "allowed"       // the backend allowed
	Refused      = "refused"       // the backend refused (allow false, or 403)
	CachedAllow  = "cached_allow"  // a remembered allow
	CachedRefuse = "cached_refuse" // a remembered refusal
	Failed       = "failed"        // no answer in time, refused connection, 5xx, 3xx, not JSON
	Busy         = "busy"          // too many requests waiting
	Open         = "breaker_open"  // the backend failed too often lately: not asked
)

// Outcomes lists every outcome.
var Outcomes = []string{Allowed, Refused, CachedAllow, CachedRefuse, Failed, Busy, Open}

// ErrUnavailable wraps the outcomes with no answer: Failed, Busy, Open.
var ErrUnavailable = errors.New("hook: the backend did not answer")

// Client asks one URL.
type Client struct {
	cfg    Config
	client *http.Client
	slots  chan struct{}
	queued atomic.Int64

	bmu       sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a request is trying the half-open breaker

	cmu   sync.Mutex
	cache map[[32]byte]cached

	counts map[string]*atomic.Uint64
}

type cached struct {
	a     Answer
	until time.Time
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	c := &Client{
		cfg: cfg, slots: make(chan struct{}, cfg.Concurrency), cache: make(map[[32]byte]cached),
		counts: make(map[string]*atomic.Uint64),
		client: backend.Client(cfg.Timeout, cfg.Concurrency),
	}
	for _, o := range Outcomes {
		c.counts[o] = new(atomic.Uint64)
	}
	return c, nil
}

// Counts is every outcome's count.
func (c *Client) Counts() map[string]uint64 {
	out := make(map[string]uint64, len(c.counts))
	for o, n := range c.counts {
		out[o] = n.Load()
	}
	return out
}

// Count is one outcome's count.
func (c *Client) Count(outcome string) uint64 { return c.counts[outcome].Load() }

// Ask asks the backend about r and returns its answer and the outcome;
// for Failed, Busy and Open the error wraps ErrUnavailable (and says why,
// without the URL).
func (c *Client) Ask(ctx context.Context, r *Request) (Answer, string, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return Answer{}, Failed, err
	}
	var key [32]byte
	if c.cfg.CacheTTL > 0 {
		key = sha256.Sum256(body)
		if a, ok := c.cached(key); ok {
			o := CachedAllow
			if !a.Allow {
				o = CachedRefuse
			}
			return a, c.count(o), nil
		}
	}
	ok, trial := c.mayAsk()
	if !ok {
		return Answer{}, c.count(Open), fmt.Errorf("%w: it failed %d times in a row lately", ErrUnavailable, c.cfg.BreakerFailures)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if c.queued.Add(1) > int64(c.cfg.Queue+c.cfg.Concurrency) {
		c.queued.Add(-1)
		c.release(trial, false, false)
		return Answer{}, c.count(Busy), fmt.Errorf("%w: %d requests wait for it already", ErrUnavailable, c.cfg.Queue)
	}
	defer c.queued.Add(-1)
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		c.release(trial, false, false)
		return Answer{}, c.count(Busy), fmt.Errorf("%w: no free slot within %s", ErrUnavailable, c.cfg.Timeout)
	}
	a, err := c.post(ctx, body)
	<-c.slots
	c.release(trial, true, err == nil)
	if err != nil {
		return Answer{}, c.count(Failed), fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if c.cfg.CacheTTL > 0 {
		c.remember(key, a)
	}
	if a.Allow {
		return a, c.count(Allowed), nil
	}
	return a, c.count(Refused), nil
}

func (c *Client) count(o string) string {
	c.counts[o].Add(1)
	return o
}

// post makes one POST and reads its answer: 2xx with a JSON Answer, or
// 403 (a refusal, the body's first line its reason).
func (c *Client) post(ctx context.Context, body []byte) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return Answer{}, backend.Err(err) // without the URL: it may carry a credential
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Answer{}, err
	}
	switch {
	case resp.StatusCode == http.StatusForbidden:
		reason, _, _ := strings.Cut(string(b), "\n")
		var a Answer
		if json.Unmarshal(b, &a) == nil && a.Reason != "" {
			reason = a.Reason
		}
		return Answer{Reason: Clean(reason)}, nil
	case resp.StatusCode/100 != 2:
		return Answer{}, fmt.Errorf("the backend answered %d", resp.StatusCode)
	}
	var a Answer
	if err := json.Unmarshal(b, &a); err != nil {
		return Answer{}, fmt.Errorf("the backend's answer is not {\"allow\": ...}: %v", err)
	}
	a.Reason = Clean(a.Reason)
	return a, nil
}

// Clean makes a backend's reason fit a one-line answer: printable, at
// most 200 bytes.
func Clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return clipString(strings.TrimSpace(s))
}

func clipString(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// mayAsk says whether the breaker lets a request through: closed, or
// open past its time and no other request trying it (trial: this one
// does).
func (c *Client) mayAsk() (ok, trial bool) {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.openUntil.IsZero() {
		return true, false
	}
	if time.Now().Before(c.openUntil) || c.trial {
		return false, false
	}
	c.trial = true
	return true, true
}

// release ends a request's part in the breaker: trial (it was let
// through to try an open breaker), asked (it reached the backend) and
// whether the backend answered.
func (c *Client) release(trial, asked, answered bool) {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if trial {
		c.trial = false
	}
	switch {
	case !asked:
	case answered:
		c.failures, c.openUntil = 0, time.Time{}
	default:
		c.failures++
		if trial || c.failures >= c.cfg.BreakerFailures {
			c.openUntil = time.Now().Add(c.cfg.BreakerOpen)
		}
	}
}

// BreakerOpen says whether the breaker is open now.
func (c *Client) BreakerOpen() bool {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	return !c.openUntil.IsZero() && time.Now().Before(c.openUntil)
}

func (c *Client) cached(key [32]byte) (Answer, bool) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	e, ok := c.cache[key]
	if !ok {
		return Answer{}, false
	}
	if time.Now().After(e.until) {
		delete(c.cache, key)
		return Answer{}, false
	}
	return e.a, true
}

// remember keeps a for key; a full cache first forgets what expired,
// and if it is still full keeps nothing more.
func (c *Client) remember(key [32]byte, a Answer) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	now := time.Now()
	if len(c.cache) >= c.cfg.CacheSize {
		for k, e := range c.cache {
			if now.After(e.until) {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= c.cfg.CacheSize {
			return
		}
	}
	c.cache[key] = cached{a: a, until: now.Add(c.cfg.CacheTTL)}
}
