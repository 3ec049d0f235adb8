package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/hook"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/testclient"
)

// appBackend is an application's hook receiver: ids 1-99 may connect,
// 100 and up are refused with a reason; id 50 is put in topic "vip"
// whatever it asked; the join hook allows topics that do not start with
// "secret"; mode switches it to slow (past the timeout), failing (500)
// or down (closed listener).
type appBackend struct {
	srv   *httptest.Server
	mode  atomic.Value // "", "slow", "fail"
	asked atomic.Int32
	last  atomic.Value // the last request
}

func newAppBackend(t *testing.T) *appBackend {
	b := &appBackend{}
	b.mode.Store("")
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b.asked.Add(1)
		var r hook.Request
		if err := json.NewDecoder(req.Body).Decode(&r); err != nil {
			t.Errorf("hook request: %v", err)
		}
		b.last.Store(r)
		switch b.mode.Load() {
		case "slow":
			time.Sleep(400 * time.Millisecond)
		case "fail":
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		switch {
		case req.URL.Path == "/join":
			for _, tp := range r.Topics {
				if strings.HasPrefix(tp, "secret") {
					json.NewEncoder(w).Encode(hook.Answer{Reason: "not for you: " + tp})
					return
				}
			}
			json.NewEncoder(w).Encode(hook.Answer{Allow: true})
		case r.ID >= 100:
			json.NewEncoder(w).Encode(hook.Answer{Reason: fmt.Sprintf("id %d is banned", r.ID)})
		case r.ID == 50:
			json.NewEncoder(w).Encode(hook.Answer{Allow: true, Topics: []string{"vip"}})
		case r.ID == 51:
			json.NewEncoder(w).Encode(hook.Answer{Allow: true, Expires: time.Now().Add(time.Second).Unix()})
		default:
			json.NewEncoder(w).Encode(hook.Answer{Allow: true})
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

var hookTestKey = []byte("a secret of at least thirty-two bytes, for hook tests")

// testAuth is a gateway's token settings with hookTestKey.
func testAuth(t *testing.T) auth.Config {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, hookTestKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return auth.Config{SecretFile: secret}
}

// testToken is a token for id (topics: its claim, if any), for an hour.
func testToken(t *testing.T, id int64, topics []string) string {
	claims := jwt.MapClaims{"sub": fmt.Sprint(id), "exp": time.Now().Add(time.Hour).Unix()}
	if topics != nil {
		claims["topics"] = topics
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(hookTestKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startHookSystem(t *testing.T, hooks gateway.HookConfig) (*router.Router, *gateway.Gateway) {
	t.Helper()
	hooks.Client.Timeout = 200 * time.Millisecond
	return startSystem(t, gateway.Config{Hooks: hooks, Auth: testAuth(t)})
}

// get returns the status and body of a plain GET (the body's first
// bytes for a stream).
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := io.ReadAtLeast(resp.Body, b, 1)
	return resp.StatusCode, string(b[:n])
}

// TestConnectHook: the backend allows, refuses with its reason, names
// the topics, sets an expiry; headers and cookies it was told of reach
// it; a client with a valid token skips it; slow, failing or down, the
// client is answered 503 (or, with -hook-down token, let in on its
// token); after 5 failures it is not asked for a while.
func TestConnectHook(t *testing.T) {
	b := newAppBackend(t)
	r, g := startHookSystem(t, gateway.HookConfig{Connect: b.srv.URL + "/connect", Headers: []string{"User-Agent"}, Cookies: []string{"session"}})
	addr := "http://" + g.Addr().String()

	code, body := get(t, addr+"/test/7", "User-Agent", "hook-test", "Cookie", "session=abc; other=x")
	if code != 200 || !strings.Contains(body, "Your Id: 7") {
		t.Fatalf("allowed: %d %q", code, body)
	}
	last := b.last.Load().(hook.Request)
	if last.Kind != "connect" || last.ID != 7 || last.Transport != "stream" || last.Headers["User-Agent"] != "hook-test" || last.Cookies["session"] != "abc" || last.Cookies["other"] != "" || last.Addr == "" {
		t.Fatalf("the hook was asked %+v", last)
	}
	if code, body := get(t, addr+"/sse/100?topics=a"); code != 403 || !strings.Contains(body, "refused by the application: id 100 is banned") {
		t.Fatalf("refused: %d %q", code, body)
	}
	vip := readSSE(t, g.Addr().String(), "/sse/50?topics=lobby", "")
	waitFor(t, "50 in vip", 5*time.Second, func() bool { return r.Presence("vip").Conns == 1 })
	if r.Presence("lobby").Conns != 0 {
		t.Fatal("the hook's topics did not replace the asked ones")
	}
	r.Publish("vip", []byte("for vips"))
	if _, data := sseData(t, vip); data != "for vips" {
		t.Fatalf("vip got %q", data)
	}
	exp := testclient.OpenPath(t, g.Addr().String(), "/test/51", 51)
	exp.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(exp.Conn); err != nil { // ended by the expiry the hook set
		t.Fatalf("the hook's expiry: %v", err)
	}

	// A valid token skips the hook.
	before := b.asked.Load()
	if code, _ := get(t, addr+"/test/120", "Authorization", "Bearer "+testToken(t, 120, nil)); code != 200 {
		t.Fatalf("token holder: %d", code)
	}
	if b.asked.Load() != before {
		t.Fatal("the hook was asked about a client with a valid token")
	}
	// A bad token is refused, not handed to the hook.
	if code, _ := get(t, addr+"/test/7", "Authorization", "Bearer nonsense"); code != 401 {
		t.Fatalf("bad token: %d", code)
	}

	for _, mode := range []string{"slow", "fail"} {
		b.mode.Store(mode)
		if code, body := get(t, addr+"/test/8"); code != 503 || !strings.Contains(body, "try again") || strings.Contains(body, b.srv.URL) {
			t.Fatalf("%s backend: %d %q", mode, code, body)
		}
	}
	// Three more failures open the breaker: the backend is not asked.
	for range 3 {
		get(t, addr+"/test/8")
	}
	asked := b.asked.Load()
	if code, body := get(t, addr+"/test/8"); code != 503 || !strings.Contains(body, "failed 5 times") || b.asked.Load() != asked {
		t.Fatalf("breaker: %d %q, asked %d more", code, body, b.asked.Load()-asked)
	}
	st := g.Stats()
	if st.Hooks.Connect[hook.Allowed] < 3 || st.Hooks.Connect[hook.Refused] != 1 || st.Hooks.Connect[hook.Failed] != 5 || st.Hooks.Connect[hook.Open] != 1 || st.Refused["hook_refused"] != 1 || st.Refused["hook_down"] != 6 {
		t.Fatalf("stats %+v refused %v", st.Hooks, st.Refused)
	}
}

// TestHookDownToken: with -hook-down token, a backend that is down lets
// in a client with a valid token, on it, and refuses the others; with
// -hook-with-token the hook is asked about token holders too.
func TestHookDownToken(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String() + "/connect"
	ln.Close()
	_, g := startHookSystem(t, gateway.HookConfig{Connect: down, Down: "token", AskWithToken: true})
	addr := "http://" + g.Addr().String()
	if code, _ := get(t, addr+"/test/9", "Authorization", "Bearer "+testToken(t, 9, nil)); code != 200 {
		t.Fatalf("token holder, backend down: %d", code)
	}
	if code, _ := get(t, addr+"/test/10"); code != 503 {
		t.Fatalf("no token, backend down: %d", code)
	}
	if n := g.Stats().Hooks.Connect[hook.Failed]; n != 2 {
		t.Fatalf("the down backend was tried %d times, want 2 (a token holder is asked too)", n)
	}
}

// TestJoinHook: ?topics= at the start and WebSocket joins are asked of
// the join hook; a refused one is a 403, or an error reply, and the
// client is in none of them.
func TestJoinHook(t *testing.T) {
	b := newAppBackend(t)
	r, g := startHookSystem(t, gateway.HookConfig{Join: b.srv.URL + "/join"})
	addr := g.Addr().String()
	tok := testToken(t, 5, []string{"*"})
	if code, body := get(t, "http://"+addr+"/test/5?topics=secret-plans", "Authorization", "Bearer "+tok); code != 200 || !strings.Contains(body, "Your Id") {
		// a token holder skips the hook
		t.Fatalf("token holder: %d %q", code, body)
	}
	if b.asked.Load() != 0 {
		t.Fatal("asked about a token holder")
	}
	_, g2 := startHookSystem(t, gateway.HookConfig{Join: b.srv.URL + "/join", AskWithToken: true})
	tok6 := testToken(t, 6, []string{"*"})
	if code, body := get(t, "http://"+g2.Addr().String()+"/test/6?topics=lobby,secret-plans", "Authorization", "Bearer "+tok6); code != 403 || !strings.Contains(body, "not for you: secret-plans") {
		t.Fatalf("refused join: %d %q", code, body)
	}
	w := dialWS(t, g2.Addr().String(), "/ws/6?token="+tok6)
	w.control() // resumed
	if m := w.request(`{"op":"join","topics":["lobby"],"ref":1}`); m["type"] != "reply" || m["ref"] != 1.0 {
		t.Fatalf("allowed join: %v", m)
	}
	if m := w.request(`{"op":"join","topics":["secret-x"],"ref":2}`); m["type"] != "error" || !strings.Contains(m["error"].(string), "not for you") {
		t.Fatalf("refused join: %v", m)
	}
	last := b.last.Load().(hook.Request)
	if last.Kind != "join" || last.ID != 6 || last.Transport != "ws" {
		t.Fatalf("asked %+v", last)
	}
	_ = r
}
