package hook

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookServer answers with answer(r) and counts what it was asked.
func hookServer(t *testing.T, answer func(w http.ResponseWriter, r *Request)) (*httptest.Server, *atomic.Int32) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		asked.Add(1)
		var r Request
		if err := json.NewDecoder(req.Body).Decode(&r); err != nil || req.Method != http.MethodPost {
			t.Errorf("bad hook request: %v", err)
		}
		answer(w, &r)
	}))
	t.Cleanup(srv.Close)
	return srv, &asked
}

func TestAnswers(t *testing.T) {
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *Request) {
		switch r.ID {
		case 1:
			w.Write([]byte(`{"allow":true,"topics":["a"],"expires":1900000000}`))
		case 2:
			w.Write([]byte(`{"allow":false,"reason":"banned\nuser\u0000"}`))
		case 3:
			http.Error(w, "no such user", http.StatusForbidden)
		case 4:
			w.WriteHeader(http.StatusInternalServerError)
		case 5:
			w.Write([]byte(`not json`))
		case 6:
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		}
	})
	c, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id      int64
		outcome string
		allow   bool
		reason  string
	}{
		{1, Allowed, true, ""},
		{2, Refused, false, "banned user"},
		{3, Refused, false, "no such user"},
		{4, Failed, false, ""},
		{5, Failed, false, ""},
		{6, Failed, false, ""},
	} {
		a, o, err := c.Ask(context.Background(), &Request{Kind: "connect", ID: tc.id})
		if o != tc.outcome || a.Allow != tc.allow || a.Reason != tc.reason || (o == Failed) != errors.Is(err, ErrUnavailable) {
			t.Errorf("id %d: %+v %s %v", tc.id, a, o, err)
		}
		if tc.id == 1 && (len(a.Topics) != 1 || a.Expires != 1900000000) {
			t.Errorf("allow's topics and expiry: %+v", a)
		}
	}
	if n := c.Count(Failed); n != 3 {
		t.Errorf("failed counted %d", n)
	}
}

// TestSlowAndDown: a backend slower than the timeout, or not listening,
// is a failure, said without its URL.
func TestSlowAndDown(t *testing.T) {
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte(`{"allow":true}`))
	})
	c, _ := New(Config{URL: srv.URL + "/?secret=s3cret", Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, o, err := c.Ask(context.Background(), &Request{ID: 1})
	if o != Failed || time.Since(start) > time.Second || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("slow backend: %s %v after %s", o, err, time.Since(start))
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, _ = New(Config{URL: "http://" + addr + "/?secret=s3cret"})
	if _, o, err := c.Ask(context.Background(), &Request{ID: 1}); o != Failed || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("down backend: %s %v", o, err)
	}
}

// TestBreaker: after BreakerFailures failures in a row nothing is asked
// for BreakerOpen; then one request tries, and a good answer closes it.
func TestBreaker(t *testing.T) {
	var up atomic.Bool
	srv, asked := hookServer(t, func(w http.ResponseWriter, r *Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{"allow":true}`))
	})
	c, _ := New(Config{URL: srv.URL, BreakerFailures: 3, BreakerOpen: 200 * time.Millisecond})
	ask := func() string { _, o, _ := c.Ask(context.Background(), &Request{ID: 1}); return o }
	for range 3 {
		if o := ask(); o != Failed {
			t.Fatalf("outcome %s", o)
		}
	}
	if o := ask(); o != Open || asked.Load() != 3 || !c.BreakerOpen() {
		t.Fatalf("after 3 failures: %s, backend asked %d times", o, asked.Load())
	}
	time.Sleep(250 * time.Millisecond)
	if o := ask(); o != Failed || asked.Load() != 4 { // the trial fails: open again
		t.Fatalf("trial: %s, asked %d", o, asked.Load())
	}
	if o := ask(); o != Open {
		t.Fatalf("after a failed trial: %s", o)
	}
	up.Store(true)
	time.Sleep(250 * time.Millisecond)
	if o := ask(); o != Allowed {
		t.Fatalf("trial after recovery: %s", o)
	}
	if o := ask(); o != Allowed || c.BreakerOpen() {
		t.Fatalf("closed again: %s", o)
	}
}

// TestBusy: past Concurrency in flight and Queue waiting, a request is
// not asked.
func TestBusy(t *testing.T) {
	release := make(chan struct{})
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *Request) {
		<-release
		w.Write([]byte(`{"allow":true}`))
	})
	defer close(release)
	c, _ := New(Config{URL: srv.URL, Concurrency: 2, Queue: -1, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Ask(context.Background(), &Request{ID: 1}) }()
	}
	for c.queued.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, o, err := c.Ask(context.Background(), &Request{ID: 2}); o != Busy || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("third request: %s %v", o, err)
	}
	release <- struct{}{}
	release <- struct{}{}
	wg.Wait()
}

// TestCache: the same request within CacheTTL is answered from memory;
// another one (another cookie) is asked.
func TestCache(t *testing.T) {
	srv, asked := hookServer(t, func(w http.ResponseWriter, r *Request) {
		if r.Cookies["session"] == "good" {
			w.Write([]byte(`{"allow":true}`))
			return
		}
		w.Write([]byte(`{"allow":false,"reason":"who are you?"}`))
	})
	c, _ := New(Config{URL: srv.URL, CacheTTL: 200 * time.Millisecond})
	good := &Request{Kind: "connect", ID: 7, Cookies: map[string]string{"session": "good"}}
	bad := &Request{Kind: "connect", ID: 7, Cookies: map[string]string{"session": "forged"}}
	for i, want := range []string{Allowed, CachedAllow, CachedAllow} {
		if _, o, _ := c.Ask(context.Background(), good); o != want {
			t.Fatalf("ask %d: %s, want %s", i, o, want)
		}
	}
	if a, o, _ := c.Ask(context.Background(), bad); o != Refused || a.Allow {
		t.Fatalf("another cookie: %s", o)
	}
	if _, o, _ := c.Ask(context.Background(), bad); o != CachedRefuse {
		t.Fatalf("a refusal again: %s", o)
	}
	time.Sleep(250 * time.Millisecond)
	if _, o, _ := c.Ask(context.Background(), good); o != Allowed || asked.Load() != 3 {
		t.Fatalf("after the TTL: %s, asked %d", o, asked.Load())
	}
}
