package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// marker is a secret no log may hold.
func marker(t *testing.T) string {
	var b [8]byte
	rand.Read(b[:])
	return "MARKER" + hex.EncodeToString(b[:])
}

// rawRequest writes head to addr and reads what comes back within wait.
func rawRequest(t *testing.T, addr, head string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(head))
	c.SetReadDeadline(time.Now().Add(wait))
	b, _ := io.ReadAll(c)
	return string(b)
}

// Requests the gateway cannot parse (fasthttp logs them), a head cut off
// by the head timeout, bad tokens in every place, and NATS URLs with
// passwords: no secret of them reaches a log, at debug level.
func TestNoSecretInLogs(t *testing.T) {
	s := startSecured(t, "-log-level", "debug")
	m := marker(t)
	heads := []string{
		// A byte no header may have.
		"GET /test/1?token=" + m + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + m + "\r\nCookie: comet_token=" + m + "\r\nX-Bad\x01: y\r\n\r\n",
		// No Host.
		"GET /sse/1?token=" + m + " HTTP/1.1\r\nAuthorization: Bearer " + m + "\r\n\r\n",
		// Two Content-Lengths.
		"POST /poll/1?token=" + m + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\nAuthorization: Bearer " + m + "\r\n\r\nab",
		// Not HTTP at all, after a token.
		"GET /ws/1?token=" + m + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + m + "\r\n\r\n",
		"\x16\x03\x01 " + m + "\r\n\r\n",
		// Bad tokens in each place, well formed requests.
		"GET /test/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + m + "\r\n\r\n",
		"GET /sse/1?token=" + m + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll/1 HTTP/1.1\r\nHost: x\r\nCookie: comet_token=" + m + "\r\n\r\n",
	}
	for _, h := range heads {
		rawRequest(t, s.gwAddr, h, 2*time.Second)
	}
	// A head that never ends: the 1 s head timeout cuts it off.
	rawRequest(t, s.gwAddr, "GET /sse/1?token="+m+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+m+"\r\n", 3*time.Second)

	// NATS URLs with a password in them, refused by the server: the
	// error says so without the password.
	for _, bin := range []string{"gateway", "msggen"} {
		args := []string{"-nats", "nats://comet:" + m + "@" + s.natsAddr}
		if bin == "gateway" {
			args = append(args, "-addr", freePort(t), "-admin", "off", "-connect-timeout", "1s")
		} else {
			args = append(args, "-n", "1", "-max", "1")
		}
		out, err := runCmd(t, s.bin+"/"+bin, args...)
		if err == nil {
			t.Fatalf("%s with a wrong NATS password started:\n%s", bin, out)
		}
		if strings.Contains(out, m) {
			t.Errorf("%s logged the NATS password:\n%s", bin, out)
		}
		if !strings.Contains(out, "redacted") && !strings.Contains(strings.ToLower(out), "authorization") {
			t.Errorf("%s: no sign of the refusal:\n%s", bin, out)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, p := range []*proc{s.gw, s.router} {
		if out := p.out.String(); strings.Contains(out, m) {
			i := strings.Index(out, m)
			t.Errorf("%s logged a secret: ...%s...", p.name, out[max(0, i-300):min(len(out), i+100)])
		}
	}
	if !strings.Contains(s.gw.out.String(), "fasthttp") {
		t.Errorf("the gateway logged none of the requests it could not parse (the test's premise):\n%s", s.gw.out)
	}
}

// A stranger's nats-server that dials the cluster port of a router run
// with `router nats-auth`'s configuration is refused: it never becomes a
// route and reads nothing. A router that would open its cluster port
// beyond loopback without such a configuration refuses to start; with
// it, it starts.
func TestRogueRouteRefused(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	if out, err := runCmd(t, bin+"/router", "nats-auth", "-dir", dir); err != nil {
		t.Fatalf("nats-auth: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "nats-auth.conf")

	// Beyond loopback: refused without the cluster secret, started with
	// it. (0.0.0.0 on this machine reaches only loopback here.)
	plain := writeFile(t, t.TempDir(), "plain.conf", []byte("authorization { token: \"a-token-of-this-test-0123\" }\n"))
	out, err := runCmd(t, bin+"/router", "-nats-addr", freePort(t), "-admin", "off", "-nats-config", plain, "-nats-cluster", "0.0.0.0:"+port(freePort(t)))
	if err == nil || !strings.Contains(out, "cluster authorization") {
		t.Fatalf("a router with an open cluster port beyond loopback: %v\n%s", err, out)
	}
	out, err = runCmd(t, bin+"/router", "-nats-addr", freePort(t), "-admin", "off", "-nats-config", conf, "-nats-monitor", "0.0.0.0:"+port(freePort(t)))
	if err == nil || !strings.Contains(out, "monitoring address") {
		t.Fatalf("a router with a monitor beyond loopback: %v\n%s", err, out)
	}

	// Beyond loopback with the secret: it gets past the check and listens.
	wport := port(freePort(t))
	wide := start(t, bin+"/router", "-nats-addr", freePort(t), "-admin", "off", "-nats-config", conf,
		"-nats-nkey", filepath.Join(dir, "router.nk"), "-nats-cluster", "0.0.0.0:"+wport, "-nats-routes", "nats://127.0.0.1:"+wport)
	waitFor(t, "the router listening for routes beyond loopback", func() bool {
		return strings.Contains(wide.out.String(), "Listening for route connections on 0.0.0.0")
	})
	syscall.Kill(wide.cmd.Process.Pid, syscall.SIGKILL) // it waits for peers it will never have

	// Three routers on the secret, and a stranger's server dialing one.
	c := startClusterOf(t, bin, t.TempDir(), 3, func(int) []string {
		return []string{"-nats-config", conf, "-nats-nkey", filepath.Join(dir, "router.nk")}
	})
	admin, clusterAddr := c.admins[0], strings.TrimPrefix(c.routes[0], "nats://")
	waitFor(t, "routers up", func() bool {
		for _, a := range c.admins {
			if getJSON("http://"+a+"/stats", new(clusterStats)) != nil {
				return false
			}
		}
		return true
	})
	rogue, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, ServerName: "rogue",
		Cluster: server.ClusterOpts{Name: "comet", Host: "127.0.0.1", Port: -1},
		Routes:  server.RoutesFromStr("nats://127.0.0.1:" + port(clusterAddr)),
	})
	if err != nil {
		t.Fatal(err)
	}
	go rogue.Start()
	defer rogue.Shutdown()
	if !rogue.ReadyForConnections(5 * time.Second) {
		t.Fatal("rogue server not ready")
	}
	nc, err := nats.Connect(rogue.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync(">")
	nc.Flush()
	// The router sends to its gateways' subjects; an admin send goes out
	// on comet.v3.down.* were any gateway there. Give the route time to
	// be tried (nats-server retries every second).
	for i := 0; i < 3; i++ {
		resp, err := http.Post("http://"+admin+"/send/555", "text/plain", strings.NewReader("secret body"))
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(time.Second)
	}
	if n := rogue.NumRoutes(); n != 0 {
		t.Fatalf("the rogue server has %d routes to the cluster", n)
	}
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("the rogue server read %s: %q", m.Subject, m.Data)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// Admin APIs without a token answer neither web pages (CSRF: any site
// could post to a loopback API) nor a Host that is not a loopback name
// (DNS rebinding); with a token, the scheme is case-insensitive.
// Connections are capped and idle ones closed.
func TestAdminRefusesPagesAndStrangers(t *testing.T) {
	bin := binDir(t)
	p := startPair(t, bin, nil, nil)
	base := "http://" + p.routerAdmin
	for _, c := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int
	}{
		{"stats", "GET", "/stats", nil, 200},
		{"a page's broadcast", "POST", "/broadcast", map[string]string{"Origin": "https://evil.example"}, 403},
		{"a page's send", "POST", "/send/1", map[string]string{"Origin": "null"}, 403},
		{"a rebound name", "GET", "/stats", map[string]string{"Host": "evil.example:8001"}, 403},
		{"a rebound name's pprof", "GET", "/debug/pprof/cmdline", map[string]string{"Host": "evil.example"}, 403},
		{"localhost", "GET", "/stats", map[string]string{"Host": "localhost:8001"}, 200},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader("x"))
		for k, v := range c.header {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s %q, want %d", c.name, resp.Status, body, c.status)
		}
	}

	// The token's scheme in any case; a wrong token of any length 401.
	s := startSecured(t)
	for _, c := range []struct {
		authz  string
		status int
	}{
		{"Bearer " + s.adminTok, 200}, {"bearer " + s.adminTok, 200}, {"BEARER " + s.adminTok, 200},
		{"Bearer " + s.adminTok + "x", 401}, {"Bearer x", 401}, {"Basic " + s.adminTok, 401}, {"", 401},
	} {
		req, _ := http.NewRequest("GET", "http://"+s.gwAdmin+"/stats", nil)
		if c.authz != "" {
			req.Header.Set("Authorization", c.authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("Authorization %.12q...: %s, want %d", c.authz, resp.Status, c.status)
		}
	}

	// 100 keep-alive connections: at most 64 are served at once (this
	// test's own HTTP client may hold one or two idle), the others wait
	// unread in the listen queue. (internal/obs tests that idle ones
	// are closed.)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	served := 0
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", s.routerAdmin)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		wait := time.Second // those within the cap answer at once
		if i >= 64 {
			wait = 100 * time.Millisecond
		}
		c.SetReadDeadline(time.Now().Add(wait))
		var b [12]byte
		if n, _ := io.ReadFull(c, b[:]); n == 12 && string(b[:]) == "HTTP/1.1 401" {
			served++
		}
	}
	if served < 60 || served > 64 {
		t.Errorf("%d of 100 held connections served at once, want the cap of 64", served)
	}
}

// A secret file that others may read is refused with the reason; with
// -allow-open-secrets it is read.
func TestOpenSecretFileRefused(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("a-secret-of-more-than-32-bytes-0123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-addr", freePort(t), "-admin", "off", "-nats", "nats://" + freePort(t), "-connect-timeout", "1s", "-auth-secret-file", secret}
	out, err := runCmd(t, bin+"/gateway", args...)
	if err == nil || !strings.Contains(out, "readable or writable by group or others (mode 0644)") {
		t.Fatalf("a world-readable secret: %v\n%s", err, out)
	}
	out, _ = runCmd(t, bin+"/gateway", append(args, "-allow-open-secrets")...)
	if strings.Contains(out, "readable or writable") || !strings.Contains(out, "connect to nats") {
		t.Fatalf("with -allow-open-secrets the gateway should read the secret and go on to NATS:\n%s", out)
	}
}

// The direct path (a chunked stream read from the accepted socket)
// decides a page's origin as fasthttp's path does: another site's page
// is refused 403 on both.
func TestDirectPathChecksOrigin(t *testing.T) {
	bin := binDir(t)
	for _, noDirect := range []bool{false, true} {
		gwArgs := []string{"-allow-origin", "https://app.example"}
		if noDirect {
			gwArgs = append(gwArgs, "-no-direct")
		}
		p := startPair(t, bin, nil, gwArgs)
		for origin, want := range map[string]string{"https://evil.example": "HTTP/1.1 403", "https://app.example": "HTTP/1.1 200", "": "HTTP/1.1 200"} {
			h := "GET /test/123 HTTP/1.1\r\nHost: x\r\n"
			if origin != "" {
				h += "Origin: " + origin + "\r\n"
			}
			got := rawRequest(t, p.gwAddr, h+"\r\n", 500*time.Millisecond)
			if !strings.HasPrefix(got, want) {
				t.Errorf("no-direct=%t, Origin %q: %.60q, want %s", noDirect, origin, got, want)
			}
		}
	}
}

// The real gateway process against five clients of each hostile kind
// (bench/hostile, as make bench-hostile runs it at size) while a good
// WebSocket client asks for pings: every attacker is ended by the
// gateway, each the way its kind should be, and the good client's round
// trips stay quick throughout.
func TestHostileClientsAgainstTheGateway(t *testing.T) {
	bin := binDir(t)
	p := startPair(t, bin, nil, []string{"-ws-message-timeout", "2s", "-head-timeout", "2s", "-max-pending", "65536", "-write-timeout", "3s", "-tcp-user-timeout", "2s", "-ws-request-rate", "1000"})
	out := filepath.Join(t.TempDir(), "hostile.json")
	h := start(t, bin+"/hostile", "-addr", p.gwAddr, "-n", "5", "-duration", "12s", "-spread", "200ms", "-summary", out)

	c, err := net.Dial("tcp", p.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /ws/7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	var worst time.Duration
	buf := make([]byte, 64<<10)
	for i := 0; i < 40; i++ {
		req := []byte(fmt.Sprintf(`{"op":"ping","ref":%d}`, i))
		frame := append([]byte{0x81, 0x80 | byte(len(req)), 0, 0, 0, 0}, req...)
		t0 := time.Now()
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		want := []byte(fmt.Sprintf(`"ref":%d,`, i))
		got := []byte{}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !strings.Contains(string(got), string(want)) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("good client: %v after %d round trips", err, i)
			}
			got = append(got, buf[:n]...)
		}
		worst = max(worst, time.Since(t0))
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("hostile did not stop")
	}
	var fates map[string]struct {
		Ended  map[string]int
		Open   int
		Failed int
	}
	readJSON(t, out, &fates)
	want := map[string][]string{
		"flooder": {"ws 1008"}, "pinger": {"ws 1008"}, "fragment": {"ws 1008"},
		"slowloris": {"closed", "reset", "http 400", "http 408"}, "bighead": {"http 431", "reset", "closed"},
		"nonreader": {"reset", "closed"},
	}
	for kind, hows := range want {
		f := fates[kind]
		ended := 0
		for how, n := range f.Ended {
			if !slices.Contains(hows, how) {
				t.Errorf("%s: %d ended %q, want one of %q", kind, n, how, hows)
			}
			ended += n
		}
		if ended != 5 || f.Open != 0 || f.Failed != 0 {
			t.Errorf("%s: %d of 5 ended, %d open, %d failed (%v)", kind, ended, f.Open, f.Failed, f.Ended)
		}
	}
	if worst > 2*time.Second {
		t.Errorf("the good client's slowest ping round trip beside the attackers: %s", worst)
	}
	t.Logf("good client's slowest round trip beside 30 attackers: %s; fates %+v", worst, fates)
}

// A router whose admin address is taken exits non-zero within seconds
// and leaves no temporary store behind.
func TestRouterAdminPortTaken(t *testing.T) {
	bin := binDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tmp := t.TempDir()
	cmd := exec.Command(bin+"/router", "-nats-addr", freePort(t), "-admin", ln.Addr().String())
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("router with its admin address taken: %v\n%s", err, out)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("took %s to exit", d)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
