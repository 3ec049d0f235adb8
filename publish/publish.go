// Package publish is a backend's side of the comet gateway: it sends
// messages to ids, publishes to topics and broadcasts, over the router's
// NATS, and returns what became of them: the router's acknowledgement,
// which counts each copy delivered (written or queued for a live client)
// or dropped with its reason, and each send that reached nobody (void) or
// was kept for a resuming client.
//
//	p, err := publish.Connect(publish.Config{URL: "nats://127.0.0.1:4222"})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	res, err := p.Send(ctx, 42, []byte("your order shipped"))
//	// res.Delivered copies reached a client; res.Kept: kept for one that resumes
//
// Errors are honest: ErrNoRouter when no router took the frame (nothing
// was sent), ErrTimeout when no acknowledgement came in time (the
// messages may or may not have been delivered: with Config.Resends, a
// copy sent again is answered by the router that took the first, not
// routed twice).
package publish

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/request"
	"github.com/cometgw/comet/internal/wire"
)

// Config configures a Client. Every zero field takes its default.
type Config struct {
	// URL is the router's NATS server (a cluster: comma-separated URLs).
	// Default nats://127.0.0.1:4222 (Connect only).
	URL string
	// TokenFile, NKeyFile, CredsFile are NATS credentials (one of them;
	// `router nats-auth` writes a sender's NKey). Connect only.
	TokenFile, NKeyFile, CredsFile string
	// Timeout is how long a frame waits for its acknowledgement (the
	// router acks once every copy's fate is known: up to its
	// -deliver-timeout, 5 s). Default 10s.
	Timeout time.Duration
	// Resends: times a frame whose ack did not come within Timeout is
	// sent again before ErrTimeout; each frame then carries a frame-id so
	// a router that took it answers the copy. Default 0.
	Resends int
	// MaxInFlight bounds the frames waiting for their acks; a send past
	// it waits for room (or its context). Default 64.
	MaxInFlight int
}

// Result is what became of the messages of one call (a Batch: of all).
type Result struct {
	// Accepted: sends, publishes and broadcasts the router took.
	Accepted uint64
	// Void: those that reached nobody (no client, nothing kept); Kept:
	// those kept for a client that resumes, with no client now.
	Void, Kept uint64
	// Delivered: copies written or queued for a live client.
	Delivered uint64
	// Dropped: copies not delivered, by reason.
	Dropped Dropped
	// Retaken: the ack is a copy's, answered by a router that took the
	// frame over from one that stopped: its sends were routed, what
	// became of their copies is not known.
	Retaken bool
}

// Dropped counts copies not delivered, by reason.
type Dropped struct {
	Gone    uint64 // the client had left
	Slow    uint64 // the client was evicted as too slow to read
	Gateway uint64 // its gateway went away or did not confirm them
}

var (
	// ErrNoRouter: no router took the frame (none runs, or none leads
	// during a takeover, for Config.Timeout): nothing was sent.
	ErrNoRouter = errors.New("publish: no router took it: not sent")
	// ErrTimeout: no acknowledgement within Config.Timeout (after the
	// resends): the messages may or may not have been delivered.
	ErrTimeout = errors.New("publish: no acknowledgement in time: the messages may or may not have been delivered")
	// ErrClosed: the client is closed.
	ErrClosed = errors.New("publish: closed")
)

// Client sends to a router. Safe for concurrent use.
type Client struct {
	cfg    Config
	nc     *nats.Conn
	ownsNC bool
	req    *request.Client
	slots  chan struct{}
	sender uint64        // this client's number in its frame-ids
	frames atomic.Uint64 // the last frame number given
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	return c
}

// Connect connects to the router's NATS and checks that a router
// answers.
func Connect(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	creds := natsconn.Credentials{TokenFile: cfg.TokenFile, NKeyFile: cfg.NKeyFile, CredsFile: cfg.CredsFile}
	more, err := creds.Options()
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	nc, err := natsconn.Connect(cfg.URL, natsconn.Options{Name: "comet-publish", Reconnect: true, More: more})
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	c, err := New(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.ownsNC = true
	if _, err := c.Flush(context.Background(), c.Batch()); err != nil {
		c.Close()
		return nil, fmt.Errorf("publish: the router at %s: %w", natsconn.Redact(cfg.URL), err)
	}
	return c, nil
}

// New is a Client on a NATS connection the caller keeps (and closes).
func New(nc *nats.Conn, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Resends < 0 {
		return nil, fmt.Errorf("publish: Resends %d: must be >= 0", cfg.Resends)
	}
	req, err := request.New(nc, request.Config{Max: cfg.MaxInFlight, Timeout: cfg.Timeout, Resends: cfg.Resends})
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return &Client{cfg: cfg, nc: nc, req: req, slots: make(chan struct{}, cfg.MaxInFlight), sender: rand.Uint64()}, nil
}

// Close stops the client: sends still waiting end with ErrClosed. It
// closes the NATS connection if Connect made it.
func (c *Client) Close() error {
	c.req.Close()
	if c.ownsNC {
		c.nc.Close()
	}
	return nil
}

// Send sends msg to every connection of id.
func (c *Client) Send(ctx context.Context, id int64, msg []byte) (Result, error) {
	b := c.Batch()
	if err := b.Send(id, msg); err != nil {
		return Result{}, err
	}
	return c.Flush(ctx, b)
}

// Publish sends msg to every member of topic (and every id subscribed to
// it).
func (c *Client) Publish(ctx context.Context, topic string, msg []byte) (Result, error) {
	b := c.Batch()
	if err := b.Publish(topic, msg); err != nil {
		return Result{}, err
	}
	return c.Flush(ctx, b)
}

// Broadcast sends msg to every connection of every gateway.
func (c *Client) Broadcast(ctx context.Context, msg []byte) (Result, error) {
	b := c.Batch()
	if err := b.Broadcast(msg); err != nil {
		return Result{}, err
	}
	return c.Flush(ctx, b)
}

// Batch gathers sends, publishes and broadcasts that Flush sends in one
// frame, with one acknowledgement for all. Not safe for concurrent use.
type Batch struct {
	frame []byte
	n     int
}

// maxFrame bounds a batch's frame (NATS's default max payload is 1 MiB).
const maxFrame = 900 << 10

// ErrBatchFull: the batch holds as much as one frame may; flush it.
var ErrBatchFull = errors.New("publish: the batch is full (about 900 KiB): flush it and start another")

// Batch returns an empty batch.
func (c *Client) Batch() *Batch {
	return &Batch{frame: wire.AppendHeader(make([]byte, 0, 256), wire.KindSend)}
}

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return b.n }

func (b *Batch) add(msg []byte, add func(f []byte) []byte) error {
	if len(msg) > wire.MaxMessage {
		return fmt.Errorf("publish: message of %d bytes: at most %d", len(msg), wire.MaxMessage)
	}
	if len(b.frame)+len(msg)+wire.MaxTopic+32 > maxFrame && b.n > 0 {
		return ErrBatchFull
	}
	b.frame = add(b.frame)
	b.n++
	return nil
}

// Send adds msg to id.
func (b *Batch) Send(id int64, msg []byte) error {
	return b.add(msg, func(f []byte) []byte { return wire.AppendSend(f, id, msg) })
}

// Publish adds msg to topic (1 to 128 of A-Z a-z 0-9 : . _ -).
func (b *Batch) Publish(topic string, msg []byte) error {
	if !wire.ValidTopic([]byte(topic)) {
		return fmt.Errorf("publish: topic %q: want 1 to %d of A-Z a-z 0-9 : . _ -", topic, wire.MaxTopic)
	}
	return b.add(msg, func(f []byte) []byte { return wire.AppendPublish(f, topic, msg) })
}

// Broadcast adds msg to every connection.
func (b *Batch) Broadcast(msg []byte) error {
	return b.add(msg, func(f []byte) []byte { return wire.AppendBroadcast(f, msg) })
}

// Flush sends the batch as one frame and waits for its acknowledgement
// (an empty batch asks the router for an empty one: a check that a
// router answers). If ctx ends first it returns ctx's error: the
// messages may or may not be delivered. The batch may be reused after.
func (c *Client) Flush(ctx context.Context, b *Batch) (Result, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("publish: not sent: %w", ctx.Err())
	}
	frame := b.frame
	if c.cfg.Resends > 0 {
		// A frame-id first: a router answers a copy sent again.
		frame = append(wire.AppendFrameID(wire.AppendHeader(make([]byte, 0, len(frame)+24), wire.KindSend), c.sender, c.frames.Add(1)), frame[2:]...)
	} else {
		frame = append([]byte(nil), frame...)
	}
	b.frame, b.n = b.frame[:2], 0
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	err := c.req.Send(wire.SubjectSend, frame, func(answer []byte, err error) {
		defer func() { <-c.slots }()
		res, err := resultOf(answer, err)
		done <- outcome{res, err}
	})
	if err != nil {
		<-c.slots
		if errors.Is(err, request.ErrClosed) {
			return Result{}, ErrClosed
		}
		return Result{}, fmt.Errorf("publish: not sent: %w", err)
	}
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("publish: %w: the messages may or may not have been delivered", ctx.Err())
	}
}

// resultOf reads a frame's outcome from the request's answer.
func resultOf(answer []byte, err error) (Result, error) {
	switch {
	case errors.Is(err, request.ErrNotTaken):
		return Result{}, ErrNoRouter
	case errors.Is(err, request.ErrTimeout):
		return Result{}, ErrTimeout
	case errors.Is(err, request.ErrClosed):
		return Result{}, ErrClosed
	case err != nil:
		return Result{}, fmt.Errorf("publish: %w", err)
	}
	a, err := wire.ParseAck(answer)
	if err != nil {
		return Result{}, fmt.Errorf("publish: the router's answer: %w (the messages may or may not have been delivered)", err)
	}
	t := a.Tally
	return Result{Accepted: a.Count, Void: a.Void, Kept: a.Kept, Delivered: t.Delivered,
		Dropped: Dropped{Gone: t.Gone, Slow: t.Slow, Gateway: t.Gateway}, Retaken: a.Retaken}, nil
}
