// Package webhook tells an application's backend what happened to its
// ids and topics: batches of JSON events POSTed to a URL, signed with
// HMAC-SHA256, delivered at least once from a bounded JetStream queue
// (queue.go). The router makes the events (internal/router, webhooks.go);
// this package knows their format, their signature and how they travel.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cometgw/comet/internal/backend"
)

// The event types.
const (
	Online   = "online"   // an id got its first connection
	Offline  = "offline"  // an id's last connection left
	Occupied = "occupied" // a topic got its first member
	Vacated  = "vacated"  // a topic's last member left
	Joined   = "joined"   // an id came into a topic (its first connection in it)
	Left     = "left"     // an id's last connection in a topic left it
	// Resync: the router that sends (a partition's) began to: it
	// started, or took over from another. Events the one before it saw
	// in its last second may be missing: the receiver checks its view
	// (GET /topics/{t}, /ids/{id}).
	Resync = "resync"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the shared secret.
const SignatureHeader = "X-Comet-Signature"

// Sign returns the SignatureHeader value of body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify says whether sig (a SignatureHeader value) signs body under
// secret, in constant time.
func Verify(secret, body []byte, sig string) bool {
	hexSum, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Event is one event, for those who read batches (tests, tools); the
// router writes them with AppendEvent.
type Event struct {
	// Event is the event's id: the partition, the round (a Unix
	// second), the type and what it is about; the same in every delivery
	// of it, and from a standby that made it in the same round (a
	// receiver deduplicates by it).
	Event  string `json:"event"`
	Type   string `json:"type"`
	TimeMS int64  `json:"time_ms"` // when the router saw it, Unix milliseconds
	// ID is the id (online, offline, joined, left); Topic the topic
	// (occupied, vacated, joined, left).
	ID    *int64 `json:"id,omitempty"`
	Topic string `json:"topic,omitempty"`
	// Partition is the partition whose ids the event counts, on a
	// partitioned router (0-based, of Partitions).
	Partition  *int `json:"partition,omitempty"`
	Partitions int  `json:"partitions,omitempty"`
}

// Batch is what a POST carries.
type Batch struct {
	Events []Event `json:"events"`
	// Lost counts the events the router made but could not queue (its
	// queue was full or could not be written) since the last batch it
	// queued: the receiver knows its view missed that many.
	Lost uint64 `json:"lost,omitempty"`
}

// AppendEvent appends one event's JSON to b: id (the event's), type,
// time, and the id (hasID) and topic (non-empty) it is about. part is
// ,"partition":K,"partitions":N on a partitioned router, else "".
// Topic names are valid topic names (letters, digits and -_.:@), so
// they need no escaping; AppendEvent quotes them anyway.
func AppendEvent(b []byte, event, typ string, at time.Time, id int64, hasID bool, topic, part string) []byte {
	b = append(b, `{"event":"`...)
	b = append(b, event...)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","time_ms":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	if hasID {
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, id, 10)
	}
	if topic != "" {
		b = append(b, `,"topic":`...)
		b = strconv.AppendQuote(b, topic)
	}
	b = append(b, part...)
	return append(b, '}')
}

// Poster POSTs batches to one URL.
type Poster struct {
	url    string
	secret []byte
	client *http.Client
	// Backoff between failed attempts: from first, doubling, to most
	// (each with up to a fifth more, at random).
	first, most time.Duration
}

// PosterConfig configures a Poster.
type PosterConfig struct {
	// URL receives the POSTs (http or https).
	URL string
	// Secret signs every body (SignatureHeader).
	Secret []byte
	// Timeout bounds one attempt, answer included. Default 5s.
	Timeout time.Duration
	// MaxBackoff bounds the wait between attempts. Default 30s.
	MaxBackoff time.Duration
}

// NewPoster checks cfg and returns its Poster. Redirects are not
// followed: a 3xx is a failed attempt (a moved receiver is a
// configuration to fix, and the signature was made for this URL's
// receiver).
func NewPoster(cfg PosterConfig) (*Poster, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: no secret: the receiver could not tell our batches from anyone's")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	return &Poster{
		url: cfg.URL, secret: cfg.Secret, first: 100 * time.Millisecond, most: cfg.MaxBackoff,
		client: backend.Client(cfg.Timeout, 0),
	}, nil
}

// CheckURL says what is wrong with a webhook URL, if anything.
func CheckURL(raw string) error { return backend.CheckURL("webhook", raw) }

// ErrStatus is an answer other than 2xx.
type ErrStatus int

func (e ErrStatus) Error() string { return fmt.Sprintf("webhook: receiver answered %d", int(e)) }

// post makes one attempt; nil when the receiver answered 2xx.
func (p *Poster) post(ctx context.Context, body []byte, attempt int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(p.secret, body))
	req.Header.Set("X-Comet-Attempt", strconv.Itoa(attempt))
	resp, err := p.client.Do(req)
	if err != nil {
		return backend.Err(err)
	}
	// Read a little of the answer so the connection is reused; a
	// receiver that sends more gets its connection closed.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ErrStatus(resp.StatusCode)
	}
	return nil
}

// Deliver POSTs body until the receiver answers 2xx or ctx ends (its
// error then), waiting between attempts with a growing backoff. Each
// failed attempt is given to failed (with the wait before the next);
// its error does not say the URL.
func (p *Poster) Deliver(ctx context.Context, body []byte, failed func(attempt int, err error, wait time.Duration)) error {
	wait := p.first
	for attempt := 1; ; attempt++ {
		err := p.post(ctx, body, attempt)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := wait + time.Duration(rand.Int64N(int64(wait)/5+1))
		if failed != nil {
			failed(attempt, err, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		wait = min(2*wait, p.most)
	}
}
