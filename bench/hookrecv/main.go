// Command hookrecv is the application backend of make bench-webhook and
// make bench-hooks. As a webhook receiver (POST /hook) it checks each
// POST's signature (-secret-file), keeps every event once by its event
// id, and answers GET /summary with what it got: POSTs, events (unique
// and told again), by type, the lost counts the batches told, bad
// signatures, the first and last event's arrival and the busiest second.
// As a connect hook (POST /allow) it allows every client, and counts
// them in the summary's "allowed". Loopback only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/obs"
	"github.com/cometgw/comet/internal/webhook"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hookrecv:", err)
		os.Exit(1)
	}
}

// Summary is GET /summary.
type Summary struct {
	Posts         uint64            `json:"posts"`
	Events        uint64            `json:"events"`
	Again         uint64            `json:"again"`
	ByType        map[string]uint64 `json:"by_type"`
	Lost          uint64            `json:"lost"`
	BadSignatures uint64            `json:"bad_signatures"`
	First         time.Time         `json:"first"`
	Last          time.Time         `json:"last"`
	PeakPerSecond uint64            `json:"peak_per_second"`
	Allowed       uint64            `json:"allowed"`
}

type receiver struct {
	secret []byte
	mu     sync.Mutex
	sum    Summary
	seen   map[string]struct{}
	sec    int64
	inSec  uint64
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9700", "listen address (loopback)")
	secretFile := flag.String("secret-file", "", "the webhook secret (the router's -webhook-secret-file); none: POST /hook is refused")
	flag.Parse()
	if !auth.IsLoopback(*addr) {
		return fmt.Errorf("-addr %s is not a loopback address", *addr)
	}
	secret, err := obs.ReadToken(*secretFile)
	if err != nil {
		return fmt.Errorf("-secret-file: %v", err)
	}
	rv := &receiver{secret: []byte(secret), seen: make(map[string]struct{}), sum: Summary{ByType: map[string]uint64{}}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", rv.hook)
	mux.HandleFunc("POST /allow", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		rv.mu.Lock()
		rv.sum.Allowed++
		rv.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"allow":true}`))
	})
	mux.HandleFunc("GET /summary", func(w http.ResponseWriter, _ *http.Request) {
		rv.mu.Lock()
		defer rv.mu.Unlock()
		json.NewEncoder(w).Encode(rv.sum)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (rv *receiver) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2*webhook.MaxPost))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b webhook.Batch
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.secret) == 0 || !webhook.Verify(rv.secret, body, r.Header.Get(webhook.SignatureHeader)) {
		rv.sum.BadSignatures++
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if err := json.Unmarshal(body, &b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	if rv.sum.Posts == 0 {
		rv.sum.First = now
	}
	rv.sum.Last = now
	rv.sum.Posts++
	rv.sum.Lost += b.Lost
	if s := now.Unix(); s != rv.sec {
		rv.sec, rv.inSec = s, 0
	}
	for _, e := range b.Events {
		if _, ok := rv.seen[e.Event]; ok {
			rv.sum.Again++
			continue
		}
		rv.seen[e.Event] = struct{}{}
		rv.sum.Events++
		rv.sum.ByType[e.Type]++
		rv.inSec++
	}
	rv.sum.PeakPerSecond = max(rv.sum.PeakPerSecond, rv.inSec)
	w.WriteHeader(http.StatusNoContent)
}
