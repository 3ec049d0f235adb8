package gateway_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/topichist"
)

// startHistorySystem is startSystem with topics keeping keep messages.
func startHistorySystem(t *testing.T, keep int) (*router.Router, *gateway.Gateway) {
	t.Helper()
	r, stop := startRouter(t, router.Config{GatewayTimeout: 3 * time.Second, TopicHistory: topichist.Config{MaxMessages: keep}})
	g := startGateway(t, r.NATSURL(), gateway.Config{})
	t.Cleanup(func() { g.Close(); stop() })
	waitFor(t, "gateway known to the router", 5*time.Second, func() bool { return r.Stats().Gateways == 1 })
	return r, g
}

// TestRewind: a topic keeps its last messages, published before anyone
// was in it; a chunked stream, an SSE stream and a WebSocket join that
// ask for ?rewind=K (or "rewind":K) get the last K of them first, then
// live ones; one that asks for none gets only live ones; GET
// /topics/{t}/history reads them; a bad rewind is a 400.
func TestRewind(t *testing.T) {
	r, g := startHistorySystem(t, 5)
	addr := g.Addr().String()
	for i := 1; i <= 7; i++ {
		res, err := r.Publish("room", fmt.Appendf(nil, "m%d", i))
		if err != nil || !res.Kept {
			t.Fatalf("publish to an empty topic with a history: %+v %v", res, err)
		}
	}
	h := r.TopicHistory("room", 0, 100)
	if len(h.Messages) != 5 || h.Messages[0].Seq != 3 || h.Messages[4].Msg != "m7" || h.Epoch == 0 {
		t.Fatalf("history %+v", h)
	}
	if h := r.TopicHistory("room", 5, 1); len(h.Messages) != 1 || h.Messages[0].Seq != 7 {
		t.Fatalf("history after 5, limit 1: %+v", h)
	}

	chunked := testclient.OpenPath(t, addr, "/test/1?topics=room&rewind=3", 1)
	sse := readSSE(t, addr, "/sse/2?topics=room&rewind=2", "")
	plain := testclient.OpenPath(t, addr, "/test/3?topics=room", 3)
	wsc := dialWS(t, addr, "/ws/4")
	if m := wsc.control(); m["type"] != "resumed" {
		t.Fatalf("WebSocket's first frame %v", m)
	}
	if rep := wsc.request(`{"op":"join","topics":["room"],"rewind":10,"ref":1}`); rep["type"] != "reply" {
		t.Fatalf("join: %v", rep)
	}
	waitFor(t, "four members", 5*time.Second, func() bool { return r.Presence("room").Conns == 4 })
	if _, err := r.Publish("room", []byte("live")); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"m5", "m6", "m7", "live"} {
		if got := chunked.Next(5 * time.Second); got != testclient.Msg(i+1, want) {
			t.Fatalf("chunked %d: %q, want %q", i, got, want)
		}
	}
	for _, want := range []string{"m6", "m7", "live"} {
		if _, data := sseData(t, sse); data != want {
			t.Fatalf("SSE got %q, want %q", data, want)
		}
	}
	if got := plain.Next(5 * time.Second); got != testclient.Msg(1, "live") {
		t.Fatalf("no rewind, got %q", got)
	}
	for _, want := range []string{"m3", "m4", "m5", "m6", "m7", "live"} {
		if _, msg := wsc.message(); msg != want {
			t.Fatalf("WebSocket got %q, want %q", msg, want)
		}
	}
	if st := r.Stats(); st.Rewound != 3+2+5 || st.TopicKept != 8 || st.TopicHistory.Messages != 5 {
		t.Fatalf("stats: rewound %d, kept %d, history %+v", st.Rewound, st.TopicKept, st.TopicHistory)
	}
	for _, q := range []string{"rewind=-1&topics=room", "rewind=1001&topics=room", "rewind=x&topics=room", "rewind=3"} {
		resp, err := http.Get("http://" + addr + "/test/9?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", q, resp.StatusCode)
		}
	}
	if rep := wsc.request(`{"op":"join","topics":["x"],"rewind":5000,"ref":2}`); rep["type"] != "error" {
		t.Fatalf("a rewind of 5000 was taken: %v", rep)
	}
}

// TestRewindSeam: 1,000 publishes/s to a topic while a client joins with
// rewind=100 every 10 ms (chunked and SSE streams in turn): each joiner's messages are contiguous, none
// twice, up to the last one published, and it got 100 from before it
// joined unless it joined before the 100th.
func TestRewindSeam(t *testing.T) {
	r, g := startHistorySystem(t, 1000)
	addr := g.Addr().String()
	const n, joiners = 3000, 200
	type joiner struct {
		got  []int
		err  error
		resp *http.Response
	}
	js := make([]*joiner, joiners)
	var wg sync.WaitGroup
	published := make(chan struct{})
	go func() {
		defer close(published)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 1; i <= n; i++ {
			<-tick.C
			if _, err := r.Publish("seam", []byte(strconv.Itoa(i))); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // some history first
	for k := range js {
		j := &joiner{}
		js[k] = j
		kind := "test" // chunked streams and SSE streams (resumable) in turn
		if k%2 == 1 {
			kind = "sse"
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/%s/%d?topics=seam&rewind=100", addr, kind, 1000+k))
		if err != nil {
			t.Fatal(err)
		}
		j.resp = resp
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				var q string
				switch {
				case strings.HasPrefix(line, "Recvd msg #"):
					_, q, _ = strings.Cut(line, ": '")
					q = strings.TrimSuffix(q, "'<br/>")
				case strings.HasPrefix(line, "data: "):
					q = line[6:]
				default:
					continue
				}
				v, err := strconv.Atoi(q)
				if err != nil {
					j.err = fmt.Errorf("chunk %q", line)
					return
				}
				j.got = append(j.got, v)
				if v == n {
					return
				}
			}
		}()
		time.Sleep(10 * time.Millisecond)
	}
	<-published
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		for _, j := range js {
			j.resp.Body.Close()
		}
		<-done
	}
	for k, j := range js {
		j.resp.Body.Close()
		if j.err != nil || len(j.got) == 0 {
			t.Fatalf("joiner %d: %v, %d messages", k, j.err, len(j.got))
		}
		for i := 1; i < len(j.got); i++ {
			if j.got[i] != j.got[i-1]+1 {
				t.Fatalf("joiner %d: %d after %d (messages %v...)", k, j.got[i], j.got[i-1], j.got[max(0, i-3):min(len(j.got), i+3)])
			}
		}
		if last := j.got[len(j.got)-1]; last != n {
			t.Fatalf("joiner %d: last message %d of %d", k, last, n)
		}
		if j.got[0] != 1 && n-j.got[0]+1 < 100 {
			t.Fatalf("joiner %d: first %d", k, j.got[0])
		}
	}
	st := r.Stats()
	if js[0].got[0] != 1 && st.Rewound != 100*joiners {
		t.Fatalf("rewound %d copies to %d joiners that came after the 100th message", st.Rewound, joiners)
	}
	t.Logf("%d joiners: rewound %d copies; first messages from %d to %d", joiners, st.Rewound, js[0].got[0], js[joiners-1].got[0])
}
