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
	// Partitions is the routers' -partitions: above 1, a batch's sends
	// go to their id's partition's subject, one frame per partition (its
	// publishes and broadcasts in one more, which any router takes).
	// Default 1: one frame.
	Partitions int
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
	// Messages: how many messages the frames this result accounts for
	// held (Accepted of them were taken; with an error, none is known
	// to have been).
	Messages uint64
}

// add sums o into r.
func (r *Result) add(o Result) {
	r.Accepted += o.Accepted
	r.Void += o.Void
	r.Kept += o.Kept
	r.Delivered += o.Delivered
	r.Dropped.Gone += o.Dropped.Gone
	r.Dropped.Slow += o.Dropped.Slow
	r.Dropped.Gateway += o.Dropped.Gateway
	r.Retaken = r.Retaken || o.Retaken
	r.Messages += o.Messages
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
	// subjects: each partition's send subject (Config.Partitions > 1).
	subjects []string
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
	if c.Partitions <= 0 {
		c.Partitions = 1
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
	if err := c.Ping(context.Background()); err != nil {
		c.Close()
		return nil, fmt.Errorf("publish: the router at %s: %w", natsconn.Redact(cfg.URL), err)
	}
	return c, nil
}

// Ping checks that a router answers, and with Config.Partitions, that
// one answers each partition's subject.
func (c *Client) Ping(ctx context.Context) error {
	subjects := []string{wire.SubjectSend}
	if c.cfg.Partitions > 1 {
		subjects = append(subjects, c.subjects...)
	}
	for _, subject := range subjects {
		if _, err := c.flushFrames(ctx, []part{{subject: subject, frame: wire.AppendHeader(nil, wire.KindSend)}}); err != nil {
			if c.cfg.Partitions > 1 && subject != wire.SubjectSend {
				return fmt.Errorf("%w (on %s: are the routers started with -partitions %d?)", err, subject, c.cfg.Partitions)
			}
			return err
		}
	}
	return nil
}

// New is a Client on a NATS connection the caller keeps (and closes).
func New(nc *nats.Conn, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Resends < 0 {
		return nil, fmt.Errorf("publish: Resends %d: must be >= 0", cfg.Resends)
	}
	if cfg.Partitions > wire.MaxPartitions {
		return nil, fmt.Errorf("publish: Partitions %d: want 1 to %d (the routers')", cfg.Partitions, wire.MaxPartitions)
	}
	req, err := request.New(nc, request.Config{Max: cfg.MaxInFlight, Timeout: cfg.Timeout, Resends: cfg.Resends})
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	c := &Client{cfg: cfg, nc: nc, req: req, slots: make(chan struct{}, cfg.MaxInFlight), sender: rand.Uint64()}
	if cfg.Partitions > 1 {
		for k := range cfg.Partitions {
			c.subjects = append(c.subjects, wire.PartSubject(wire.SubjectSend, cfg.Partitions, k))
		}
	}
	return c, nil
}

// Stats counts the frames sent again: because no router took them
// (retried, within Timeout: nobody got them) and because no ack came
// within Timeout (resent, Resends).
func (c *Client) Stats() (retried, resent uint64) { return c.req.Stats() }

// Wait waits until no frame waits for its acknowledgement (every
// FlushAsync's done has been called).
func (c *Client) Wait() {
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	for range cap(c.slots) {
		<-c.slots
	}
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
// frame, with one acknowledgement for all (with Config.Partitions, one
// frame per partition its sends go to, and one for its publishes and
// broadcasts). Not safe for concurrent use.
type Batch struct {
	parts []part // [0]: SubjectSend; [1+k]: partition k's sends
	n     int
}

// part is one frame of a batch and the messages it holds.
type part struct {
	subject string
	frame   []byte
	n       int
}

// maxFrame bounds a batch's frame (NATS's default max payload is 1 MiB).
const maxFrame = 900 << 10

// ErrBatchFull: the batch holds as much as one frame may; flush it.
var ErrBatchFull = errors.New("publish: the batch is full (about 900 KiB): flush it and start another")

// Batch returns an empty batch.
func (c *Client) Batch() *Batch {
	b := &Batch{parts: []part{{subject: wire.SubjectSend}}}
	for _, subject := range c.subjects {
		b.parts = append(b.parts, part{subject: subject})
	}
	return b
}

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return b.n }

func (b *Batch) add(k int, msg []byte, add func(f []byte) []byte) error {
	if len(msg) > wire.MaxMessage {
		return fmt.Errorf("publish: message of %d bytes: at most %d", len(msg), wire.MaxMessage)
	}
	p := &b.parts[k]
	if len(p.frame)+len(msg)+wire.MaxTopic+32 > maxFrame && p.n > 0 {
		return ErrBatchFull
	}
	if p.n == 0 {
		p.frame = wire.AppendHeader(p.frame[:0], wire.KindSend)
	}
	p.frame = add(p.frame)
	p.n++
	b.n++
	return nil
}

// Send adds msg to id.
func (b *Batch) Send(id int64, msg []byte) error {
	k := 0
	if len(b.parts) > 1 {
		k = 1 + wire.Partition(id, len(b.parts)-1)
	}
	return b.add(k, msg, func(f []byte) []byte { return wire.AppendSend(f, id, msg) })
}

// Publish adds msg to topic (1 to 128 of A-Z a-z 0-9 : . _ -).
func (b *Batch) Publish(topic string, msg []byte) error {
	if !wire.ValidTopic([]byte(topic)) {
		return fmt.Errorf("publish: topic %q: want 1 to %d of A-Z a-z 0-9 : . _ -", topic, wire.MaxTopic)
	}
	return b.add(0, msg, func(f []byte) []byte { return wire.AppendPublish(f, topic, msg) })
}

// Broadcast adds msg to every connection.
func (b *Batch) Broadcast(msg []byte) error {
	return b.add(0, msg, func(f []byte) []byte { return wire.AppendBroadcast(f, msg) })
}

// take moves the batch's frames out (copies: the batch may be reused).
// An empty batch gives one empty frame: a check that a router answers.
func (b *Batch) take() []part {
	var out []part
	for i := range b.parts {
		p := &b.parts[i]
		if p.n > 0 {
			out = append(out, part{subject: p.subject, frame: append([]byte(nil), p.frame...), n: p.n})
			p.n = 0
		}
	}
	b.n = 0
	if out == nil {
		out = []part{{subject: wire.SubjectSend, frame: wire.AppendHeader(nil, wire.KindSend)}}
	}
	return out
}

// Flush sends the batch and waits for its acknowledgement (an empty
// batch asks the router for an empty one: a check that a router
// answers). If ctx ends first it returns ctx's error: the messages may or
// may not be delivered. With several frames (Config.Partitions), the
// result sums their acknowledgements and the error is the first frame's
// that failed (Result.Messages - Result.Accepted messages were not
// acknowledged). The batch may be reused after.
func (c *Client) Flush(ctx context.Context, b *Batch) (Result, error) {
	return c.flushFrames(ctx, b.take())
}

func (c *Client) flushFrames(ctx context.Context, parts []part) (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, len(parts))
	for _, p := range parts {
		c.send(ctx, p, func(res Result, err error) { done <- outcome{res, err} })
	}
	var sum Result
	var first error
	for range parts {
		select {
		case o := <-done:
			sum.add(o.res)
			if o.err != nil && first == nil {
				first = o.err
			}
		case <-ctx.Done():
			return sum, fmt.Errorf("publish: %w: the messages may or may not have been delivered", ctx.Err())
		}
	}
	return sum, first
}

// FlushAsync sends the batch without waiting for its acknowledgement:
// done is called once per frame (one, or with Config.Partitions one per
// partition the batch's sends go to and one for its publishes and
// broadcasts) with that frame's result, Result.Messages saying how many
// messages it held. It waits for room while MaxInFlight frames wait for
// their acks; if ctx ends meanwhile, done gets the error (not sent). done
// runs on the client's goroutine: it must not block. The batch may be
// reused at once.
func (c *Client) FlushAsync(ctx context.Context, b *Batch, done func(Result, error)) {
	for _, p := range b.take() {
		c.send(ctx, p, done)
	}
}

// send sends one frame once a slot is free; done gets its outcome.
func (c *Client) send(ctx context.Context, p part, done func(Result, error)) {
	n := uint64(p.n)
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		done(Result{Messages: n}, fmt.Errorf("publish: not sent: %w", ctx.Err()))
		return
	}
	frame := p.frame
	if c.cfg.Resends > 0 {
		// A frame-id first: a router answers a copy sent again.
		frame = append(wire.AppendFrameID(wire.AppendHeader(make([]byte, 0, len(frame)+24), wire.KindSend), c.sender, c.frames.Add(1)), frame[2:]...)
	}
	err := c.req.Send(p.subject, frame, func(answer []byte, err error) {
		defer func() { <-c.slots }()
		res, err := resultOf(answer, err)
		res.Messages = n
		done(res, err)
	})
	if err != nil {
		<-c.slots
		if errors.Is(err, request.ErrClosed) {
			err = ErrClosed
		} else {
			err = fmt.Errorf("publish: not sent: %w", err)
		}
		done(Result{Messages: n}, err)
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
