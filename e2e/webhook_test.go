package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/webhook"
)

// webhookLine is one batch as e2e/js/webhook-receiver.mjs prints it.
type webhookLine struct {
	Attempt int `json:"attempt"`
	Events  []struct {
		Event string `json:"event"`
		Type  string `json:"type"`
		ID    *int64 `json:"id"`
		Topic string `json:"topic"`
	} `json:"events"`
	Lost uint64 `json:"lost"`
}

// webhookView is what a receiver knows from the batches in out: each
// event once (by its event id), the last state it was told of each id
// and of each topic, and the events told more than once.
type webhookView struct {
	events, again int
	lost          uint64
	online        map[int64]bool
	occupied      map[string]bool
	members       map[string]map[int64]bool // topic -> ids joined and not left
}

func readWebhooks(out string) webhookView {
	v := webhookView{online: map[int64]bool{}, occupied: map[string]bool{}, members: map[string]map[int64]bool{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var l webhookLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Attempt == 0 {
			continue
		}
		v.lost += l.Lost
		for _, e := range l.Events {
			if seen[e.Event] {
				v.again++
				continue
			}
			seen[e.Event] = true
			v.events++
			switch e.Type {
			case "online", "offline":
				v.online[*e.ID] = e.Type == "online"
			case "occupied", "vacated":
				v.occupied[e.Topic] = e.Type == "occupied"
			case "joined":
				if v.members[e.Topic] == nil {
					v.members[e.Topic] = map[int64]bool{}
				}
				v.members[e.Topic][*e.ID] = true
			case "left":
				delete(v.members[e.Topic], *e.ID)
			}
		}
	}
	return v
}

// TestWebhooksAcrossRouterKill: a receiver written with Node's own http
// and crypto (e2e/js/webhook-receiver.mjs) checks every POST's signature.
// 200 clients come online (50 of them in a topic); then the receiver is
// killed (SIGKILL) and 100 clients leave; the router is killed too once
// it queued their events, and started again on its store, and then the
// receiver. Every event the router queued reaches the receiver, whose
// view ends true: 100 ids online, the topic occupied by the 25 members
// left.
func TestWebhooksAcrossRouterKill(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	node := outside(t, "node", "Node.js")
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("e2e-webhook-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hookAddr := freePort(t)
	_, port, _ := strings.Cut(hookAddr, ":")
	recv := start(t, node, "js/webhook-receiver.mjs", port, secret)
	waitFor(t, "the receiver listens", func() bool { return strings.Contains(recv.out.String(), "listening") })
	p := startPair(t, bin, []string{"-store", dir + "/store", "-webhook", "http://" + hookAddr + "/hook", "-webhook-secret-file", secret}, nil)

	const n = 200
	streams := make([]*http.Response, n+1)
	for id := 1; id <= n; id++ {
		url := fmt.Sprintf("http://%s/test/%d", p.gwAddr, id)
		if id > 150 { // 151-200 in a topic
			url = fmt.Sprintf("http://%s/sse/%d?topics=room", p.gwAddr, id)
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		streams[id] = resp
		t.Cleanup(func() { resp.Body.Close() })
	}
	waitFor(t, "every id online at the receiver", func() bool {
		v := readWebhooks(recv.out.String())
		return len(v.online) == n && len(v.members["room"]) == 50
	})
	type hookStats struct {
		Webhooks struct{ Made, Queued uint64 }
	}
	var before hookStats
	getJSON("http://"+p.routerAdmin+"/stats", &before)

	// The receiver is killed; 100 clients leave (1-75 and 151-175); the
	// router queues their events and is killed.
	syscall.Kill(-recv.cmd.Process.Pid, syscall.SIGKILL)
	<-recv.done
	for id := 1; id <= n; id++ {
		if id <= 75 || id > 150 && id <= 175 {
			streams[id].Body.Close()
		}
	}
	waitFor(t, "the router queued the 100 offline and 25 left events", func() bool {
		var st hookStats
		getJSON("http://"+p.routerAdmin+"/stats", &st)
		return st.Webhooks.Queued >= before.Webhooks.Queued+125 && st.Webhooks.Queued == st.Webhooks.Made
	})
	syscall.Kill(-p.router.cmd.Process.Pid, syscall.SIGKILL)
	<-p.router.done
	start(t, bin+"/router", p.routerArgs...)
	waitRouter(t, p.routerAdmin, "the new router has the 100 logins back", func(st routerStats) bool { return st.Conns == 100 })
	recv2 := start(t, node, "js/webhook-receiver.mjs", port, secret)
	out := func() string { return recv.out.String() + recv2.out.String() }

	waitFor(t, "the receiver's view is true", func() bool {
		v := readWebhooks(out())
		on := 0
		for _, o := range v.online {
			if o {
				on++
			}
		}
		return on == 100 && len(v.members["room"]) == 25 && v.occupied["room"]
	})
	v := readWebhooks(out())
	for id := 1; id <= n; id++ {
		if want := !(id <= 75 || id > 150 && id <= 175); v.online[int64(id)] != want {
			t.Errorf("id %d: receiver thinks online=%v", id, v.online[int64(id)])
		}
	}
	if strings.Contains(out(), "bad signature") || v.lost != 0 {
		t.Fatalf("receiver: lost %d, output:\n%s", v.lost, out())
	}
	t.Logf("receiver: %d events, %d told again (at least once), %d lost", v.events, v.again, v.lost)
}

// TestWebhooksLeaderKilled: three redundant routers send webhooks to one
// receiver. 50 clients come online; 20 leave and the leader is killed
// (SIGKILL) at once, before it can have queued their offline events.
// The standby that takes over queues the rounds it kept: the receiver
// ends with the true view, 30 ids online, having been told each change
// at least once.
func TestWebhooksLeaderKilled(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	secret := filepath.Join(dir, "secret")
	key := []byte("e2e-webhook-secret-0123456789")
	if err := os.WriteFile(secret, append(key, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string // each batch as webhook-receiver.mjs prints it
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !webhook.Verify(key, b, r.Header.Get(webhook.SignatureHeader)) {
			t.Errorf("bad signature on %.80s", b)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		mu.Lock()
		lines = append(lines, `{"attempt":1,`+strings.TrimPrefix(string(b), "{"))
		mu.Unlock()
	}))
	defer recv.Close()
	view := func() webhookView {
		mu.Lock()
		defer mu.Unlock()
		return readWebhooks(strings.Join(lines, "\n"))
	}
	c := startCluster(t, bin, dir, "-redundant", "-webhook", recv.URL+"/hook", "-webhook-secret-file", secret)
	gwAddr := freePort(t)
	start(t, bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", c.all(), "-name", "hooked")
	testclient.WaitFor(t, "every router hears the gateway, one leads", 60*time.Second, func() bool {
		return c.stats(0).Gateways == 1 && c.stats(1).Gateways == 1 && c.stats(2).Gateways == 1 && c.leader() >= 0
	})
	const n = 50
	streams := make([]*http.Response, n+1)
	for id := 1; id <= n; id++ {
		resp, err := http.Get(fmt.Sprintf("http://%s/test/%d", gwAddr, id))
		if err != nil {
			t.Fatal(err)
		}
		streams[id] = resp
		t.Cleanup(func() { resp.Body.Close() })
	}
	waitFor(t, "every id online at the receiver", func() bool { return len(view().online) == n })
	old := c.leader()
	for id := 1; id <= 20; id++ {
		streams[id].Body.Close()
	}
	waitFor(t, "the routers saw the 20 leave", func() bool { return c.stats((old+1)%3).Conns == n-20 })
	syscall.Kill(-c.routers[old].cmd.Process.Pid, syscall.SIGKILL)
	<-c.routers[old].done
	wrong := func(v webhookView) (ids []int) {
		for id := 1; id <= n; id++ {
			if v.online[int64(id)] != (id > 20) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for deadline := time.Now().Add(60 * time.Second); len(wrong(view())) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			// What each router made, queued and delivered says where
			// the changes stopped (a failure seen once in CI, not
			// reproduced alone or under load).
			v := view()
			var routers []string
			for i := range c.admins {
				if i == old {
					continue
				}
				var st struct {
					Lead     any `json:"lead"`
					Webhooks any `json:"webhooks"`
				}
				getJSON("http://"+c.admins[i]+"/stats", &st)
				routers = append(routers, fmt.Sprintf("router %d: lead %v, webhooks %v", i, st.Lead, st.Webhooks))
			}
			t.Fatalf("the receiver's view is not true after 60 s: ids %v wrong; %d events once, %d told again, %d lost\n%s",
				wrong(v), v.events, v.again, v.lost, strings.Join(routers, "\n"))
		}
	}
	v := view()
	t.Logf("leader killed: the receiver got %d events once, %d told again, %d lost", v.events, v.again, v.lost)
}
