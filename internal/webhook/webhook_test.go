package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/natstest"
)

var secret = []byte("0123456789abcdef-test-secret")

func TestSignVerify(t *testing.T) {
	body := []byte(`{"events":[]}`)
	sig := Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	for _, c := range []struct {
		name   string
		secret []byte
		body   string
		sig    string
		ok     bool
	}{
		{"good", secret, string(body), sig, true},
		{"body changed", secret, `{"events":[1]}`, sig, false},
		{"other secret", []byte("another secret of 16+"), string(body), sig, false},
		{"no prefix", secret, string(body), strings.TrimPrefix(sig, "sha256="), false},
		{"not hex", secret, string(body), "sha256=zz", false},
		{"empty", secret, string(body), "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Verify(c.secret, []byte(c.body), c.sig); got != c.ok {
				t.Fatalf("Verify = %v, want %v", got, c.ok)
			}
		})
	}
}

func TestAppendEventIsJSON(t *testing.T) {
	at := time.UnixMilli(1765000000123)
	for _, c := range []struct {
		typ   string
		id    int64
		hasID bool
		topic string
		part  string
	}{
		{Online, -42, true, "", ""},
		{Occupied, 0, false, "room.1:a@b", ""},
		{Joined, 7, true, "lobby", `,"partition":1,"partitions":4`},
	} {
		b := AppendEvent(nil, "rabc-1", c.typ, at, c.id, c.hasID, c.topic, c.part)
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if e.Event != "rabc-1" || e.Type != c.typ || e.TimeMS != at.UnixMilli() || e.Topic != c.topic || (e.ID != nil) != c.hasID || c.hasID && *e.ID != c.id {
			t.Fatalf("%s read back as %+v", b, e)
		}
		if c.part != "" && (e.Partition == nil || *e.Partition != 1 || e.Partitions != 4) {
			t.Fatalf("%s: partition not read back", b)
		}
	}
}

func TestNewPosterRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  PosterConfig
	}{
		{"no secret", PosterConfig{URL: "http://127.0.0.1:1/"}},
		{"no scheme", PosterConfig{URL: "127.0.0.1:1/hook", Secret: secret}},
		{"ftp", PosterConfig{URL: "ftp://127.0.0.1/hook", Secret: secret}},
		{"no host", PosterConfig{URL: "http:///hook", Secret: secret}},
	} {
		if _, err := NewPoster(c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestDeliverRetries: a receiver that fails, redirects or is too slow is
// tried again, with the same signed body, until it answers 2xx.
func TestDeliverRetries(t *testing.T) {
	var calls atomic.Int32
	body := []byte(`{"events":[{"event":"r1-1","type":"online","time_ms":1,"id":5}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if string(got) != string(body) || !Verify(secret, got, r.Header.Get(SignatureHeader)) {
			t.Errorf("attempt %s: body or signature changed", r.Header.Get("X-Comet-Attempt"))
		}
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			http.Redirect(w, r, "/elsewhere", http.StatusFound) // not followed
		case 3:
			time.Sleep(300 * time.Millisecond) // past the timeout
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	p, err := NewPoster(PosterConfig{URL: srv.URL, Secret: secret, Timeout: 100 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var fails []error
	err = p.Deliver(context.Background(), body, func(_ int, err error, _ time.Duration) { fails = append(fails, err) })
	if err != nil || len(fails) != 3 || calls.Load() != 4 {
		t.Fatalf("err %v, %d failures (%v), %d calls", err, len(fails), fails, calls.Load())
	}
	var st ErrStatus
	if !errors.As(fails[0], &st) || st != 503 || !errors.As(fails[1], &st) || st != 302 {
		t.Fatalf("failures %v", fails)
	}
}

// TestDeliverStops: a receiver that never takes a batch holds Deliver
// only until its context ends.
func TestDeliverStops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	p, _ := NewPoster(PosterConfig{URL: srv.URL, Secret: secret})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Deliver(ctx, []byte(`{}`), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v", err)
	}
}

// TestQueue: batches queued while the receiver is down reach it, merged,
// in order, once it is up; past its bound the queue says ErrFull.
func TestQueue(t *testing.T) {
	ns := natstest.Start(t, true)
	nc := natstest.Connect(t, ns)
	ctx := context.Background()
	q, err := OpenQueue(ctx, nc, 1, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	event := func(i int) string {
		return string(AppendEvent(nil, "r-"+string(rune('a'+i%26)), Online, time.Now(), int64(i), true, "", ""))
	}
	for i := range 10 {
		if err := q.Add(ctx, []byte(`{"events":[`+event(i)+`],"lost":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Fill it: batches of ~64 KiB until refused.
	big := []byte(`{"events":[` + strings.Repeat(event(0)+",", 64<<10/len(event(0))) + event(1) + `]}`)
	full := false
	for range 40 {
		if err := q.Add(ctx, big); errors.Is(err, ErrFull) {
			full = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("a 1 MiB queue took 40 batches of 64 KiB")
	}
	bytes, batches, err := q.Depth(ctx)
	if err != nil || bytes == 0 || bytes > 1<<20 || batches < 11 {
		t.Fatalf("depth %d bytes, %d batches, %v", bytes, batches, err)
	}

	var got atomic.Int64
	var lost atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var batch Batch
		if err := json.Unmarshal(b, &batch); err != nil || !Verify(secret, b, r.Header.Get(SignatureHeader)) {
			t.Errorf("bad POST (%v): %.100s", err, b)
		}
		if len(b) > MaxPost+MaxBatch {
			t.Errorf("POST of %d bytes", len(b))
		}
		got.Add(int64(len(batch.Events)))
		lost.Add(batch.Lost)
	}))
	defer srv.Close()
	p, _ := NewPoster(PosterConfig{URL: srv.URL, Secret: secret})
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var took atomic.Uint64
	go func() {
		defer close(done)
		q.Deliver(dctx, p, func() bool { return true }, func(d Delivery) { took.Add(d.Events) }, nil)
	}()
	want := int64(batches-10)*int64(64<<10/len(event(0))+1) + 10
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got.Load() != want || lost.Load() != 10 || took.Load() != uint64(want) {
		t.Fatalf("receiver got %d events (lost %d), deliverer counted %d; want %d (lost 10)", got.Load(), lost.Load(), took.Load(), want)
	}
	if _, n, _ := q.Depth(ctx); n != 0 {
		t.Fatalf("%d batches still queued", n)
	}
}
