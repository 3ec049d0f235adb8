package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cometgw/comet/internal/nginxproxy"
)

// outside finds a program nobody here wrote that a test drives (nginx,
// node, curl). Without it the test is skipped, unless
// COMET_REQUIRE_OUTSIDE=1 (CI installs them with scripts/test-deps.sh
// and sets it, so there the test always runs).
func outside(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("COMET_REQUIRE_OUTSIDE") == "1" {
		t.Fatalf("no %s found and COMET_REQUIRE_OUTSIDE=1 (%s)", name, install)
	}
	t.Skipf("no %s on this machine (%s); set COMET_REQUIRE_OUTSIDE=1 to make this a failure", name, install)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestTLSProxy runs deploy/nginx/comet.conf in front of a gateway that
// asks for tokens, and every kind of client through it, each a client
// nobody here wrote: curl reads a chunked stream and long-polls, the npm
// eventsource package reads an SSE stream with its token in ?token=,
// Go's HTTP/2 client reads another, the npm ws package a WebSocket
// (wss://, the upgrade passed on by the proxy), and the project's
// JavaScript library on each transport, renewing 2 s tokens through the
// proxy; a client without a token is refused through the proxy with the
// gateway's reason.
func TestTLSProxy(t *testing.T) {
	nginx := outside(t, "nginx", "apt-get install nginx-light")
	curl := outside(t, "curl", "apt-get install curl")
	s := startSecured(t)
	dir := t.TempDir()
	proxy := freePort(t)
	files, err := nginxproxy.Write(nginxproxy.Config{Template: "../deploy/nginx/comet.conf", Dir: dir, Gateway: s.gwAddr, TLS: proxy})
	if err != nil {
		t.Fatal(err)
	}
	start(t, nginx, "-c", files.Conf, "-p", dir)
	waitFor(t, "nginx listening", func() bool {
		c, err := net.Dial("tcp", proxy)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	base := "https://" + proxy
	tok := func(id int) string { return s.hs(t, jwt.MapClaims{"sub": fmt.Sprint(id), "exp": exp(time.Hour)}) }
	send := func(id int, msg string) {
		t.Helper()
		if out, err := runCmd(t, s.bin+"/router", "send", "-admin", s.routerAdmin, "-admin-token-file", s.files["admin"], fmt.Sprint(id), msg); err != nil {
			t.Fatalf("router send: %v\n%s", err, out)
		}
	}
	waitLogin := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d clients logged in", n), func() bool {
			var st struct {
				Conns int `json:"conns"`
			}
			s.admin("http://"+s.routerAdmin+"/stats", &st)
			return st.Conns >= n
		})
	}

	// curl: a chunked stream, HTTP/1.1 over TLS.
	chunked := start(t, curl, "-sSN", "--http1.1", "--cacert", files.CA, "-H", "Authorization: Bearer "+tok(11), base+"/test/11")
	// The npm eventsource package: SSE, the token in the query; the npm
	// ws package: a WebSocket through the proxy, the token in the query.
	caEnv := []string{"NODE_EXTRA_CA_CERTS=" + files.CA}
	sseWait := nodeClient(t, "sse-client.mjs", "eventsource", caEnv, base+"/sse/12?token="+tok(12), "3")
	wsWait := nodeClient(t, "ws-client.mjs", "ws", caEnv, "wss://"+proxy+"/ws/15?token="+tok(15), "3")
	// The project's JavaScript library, on each transport, minting its
	// own tokens of 2 s (getToken) and renewing them through the proxy.
	libWait := libraryReader(t, base, 16, 6, append(caEnv, "READER_SECRET_FILE="+s.files["secret"], "READER_TOKEN_SECONDS=2"), "websocket", "sse", "longpoll")
	// Go's HTTP/2 client: SSE with the token in the header.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: files.CAPool}, ForceAttemptHTTP2: true}}
	req, _ := http.NewRequest("GET", base+"/sse/14", nil)
	req.Header.Set("Authorization", "Bearer "+tok(14))
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("HTTP/2 SSE: %s %s %v", resp.Proto, resp.Status, resp.Header)
	}
	waitLogin(7)

	// curl long-polls: the first answer has the cursor, the next the
	// messages sent after it.
	poll := func(query string) (out struct {
		Cursor   string `json:"cursor"`
		Messages []struct {
			Data string `json:"data"`
		} `json:"messages"`
	}) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := exec.CommandContext(ctx, curl, "-sS", "--fail-with-body", "--cacert", files.CA, "-H", "Authorization: Bearer "+tok(13), base+"/poll/13?"+query).CombinedOutput()
		if err != nil {
			t.Fatalf("curl poll: %v\n%s", err, b)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("poll answer %q: %v", b, err)
		}
		return out
	}
	first := poll("timeout=100ms")

	for i := 1; i <= 3; i++ {
		for _, id := range []int{11, 12, 13, 14, 15} {
			send(id, fmt.Sprintf("m%d for %d", i, id))
		}
	}
	waitFor(t, "curl's chunked stream got every message", func() bool {
		return strings.Contains(chunked.out.String(), "Recvd msg #3: 'm3 for 11'")
	})
	if out := chunked.out.String(); !strings.Contains(out, "Your Id: 11") || strings.Index(out, "m1 for 11") > strings.Index(out, "m2 for 11") {
		t.Fatalf("chunked stream through the proxy:\n%s", out)
	}
	got := poll("cursor=" + first.Cursor + "&timeout=5s")
	if len(got.Messages) != 3 || got.Messages[0].Data != "m1 for 13" || got.Messages[2].Data != "m3 for 13" {
		t.Fatalf("long-poll through the proxy: %+v", got)
	}
	for _, c := range []struct {
		name string
		wait func() [][]byte
		last string
	}{{"npm eventsource", sseWait, `"data":"m3 for 12"`}, {"npm ws", wsWait, `"data":"m3 for 15"`}} {
		out := bytes.Join(c.wait(), []byte("\n"))
		if bytes.Count(out, []byte(`"data":"m`)) != 3 || !bytes.Contains(out, []byte(c.last)) {
			t.Fatalf("%s through the proxy:\n%s", c.name, out)
		}
	}
	br := bufio.NewReader(resp.Body)
	var events []string
	for len(events) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("HTTP/2 SSE: %v after %q", err, events)
		}
		if strings.HasPrefix(line, "data: ") {
			events = append(events, strings.TrimSpace(line[6:]))
		}
	}
	if events[0] != "m1 for 14" || events[2] != "m3 for 14" {
		t.Fatalf("HTTP/2 SSE events %q", events)
	}

	// The library's clients: 3 messages, then 3 more over 4 s, across
	// renewed tokens.
	for i := 1; i <= 6; i++ {
		send(16, fmt.Sprintf("m%d for 16", i))
		if i >= 3 {
			time.Sleep(1500 * time.Millisecond)
		}
	}
	lib := libWait()
	for _, tr := range []string{"websocket", "sse", "longpoll"} {
		var got []string
		for _, ev := range lib[tr] {
			got = append(got, ev.Data)
		}
		if strings.Join(got, "|") != "m1 for 16|m2 for 16|m3 for 16|m4 for 16|m5 for 16|m6 for 16" {
			t.Fatalf("the library's %s client through the proxy: %q", tr, got)
		}
	}

	// Refusals come through the proxy with the gateway's reason.
	out, err := exec.Command(curl, "-sS", "--cacert", files.CA, "-o", "-", "-w", "%{http_code}", base+"/sse/12").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "no token") || !strings.HasSuffix(string(out), "401") {
		t.Fatalf("no token through the proxy: %v %q", err, out)
	}
	// And plain HTTP on the TLS port is not served.
	if resp, err := http.Get("http://" + proxy + "/test/11"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("plain HTTP on the TLS port: %s %q", resp.Status, body)
		}
	}
	// The proxy's access log has the requests, none with its query: the
	// WebSocket and EventSource clients' tokens came in ?token=.
	waitFor(t, "the WebSocket's request in nginx's access log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		return bytes.Contains(b, []byte("GET /ws/15 "))
	})
	if b, _ := os.ReadFile(filepath.Join(dir, "access.log")); bytes.Contains(b, []byte("token")) || bytes.Contains(b, []byte(tok(15)[:20])) {
		t.Fatalf("a token in nginx's access log:\n%s", b)
	}
}
