package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
)

// secured is a router and a gateway run as they would be beyond
// loopback: client tokens (an HS256 secret and an RSA public key), a
// token on NATS, tokens on both admin APIs, one allowed origin, a short
// head deadline.
type secured struct {
	bin                           string
	dir                           string
	secret                        []byte
	rsa                           *rsa.PrivateKey
	natsAddr, routerAdmin, gwAddr string
	gwAdmin, adminTok             string
	files                         map[string]string
	router, gw                    *proc
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startSecured(t *testing.T, gatewayArgs ...string) *secured {
	s := &secured{bin: binDir(t), dir: t.TempDir(), files: map[string]string{}}
	s.secret = []byte("e2e-secret-e2e-secret-e2e-secret-0123")
	var err error
	if s.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&s.rsa.PublicKey)
	s.files["secret"] = writeFile(t, s.dir, "secret", append(append([]byte{}, s.secret...), '\n'))
	s.files["keys"] = writeFile(t, s.dir, "keys.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "k1"}, Bytes: der}))
	s.files["nats"] = writeFile(t, s.dir, "nats.token", []byte("nats-token-of-this-test\n"))
	s.adminTok = "admin-token-of-this-test"
	s.files["admin"] = writeFile(t, s.dir, "admin.token", []byte(s.adminTok+"\n"))
	s.natsAddr, s.routerAdmin, s.gwAddr, s.gwAdmin = freePort(t), freePort(t), freePort(t), freePort(t)
	s.router = start(t, s.bin+"/router", "-nats-addr", s.natsAddr, "-admin", s.routerAdmin,
		"-nats-token-file", s.files["nats"], "-admin-token-file", s.files["admin"])
	s.gw = start(t, s.bin+"/gateway", append([]string{"-addr", s.gwAddr, "-admin", s.gwAdmin, "-nats", "nats://" + s.natsAddr, "-name", "secured",
		"-nats-token-file", s.files["nats"], "-admin-token-file", s.files["admin"],
		"-auth-secret-file", s.files["secret"], "-auth-keys", s.files["keys"],
		"-allow-origin", "https://app.example", "-head-timeout", "1s"}, gatewayArgs...)...)
	waitFor(t, "gateway registered", func() bool {
		var st struct{ Gateways int }
		s.admin("http://"+s.routerAdmin+"/stats", &st)
		return st.Gateways == 1
	})
	// The gateway registers with the router before its admin server
	// listens: wait for that too.
	waitFor(t, "gateway admin listening", func() bool {
		c, err := net.Dial("tcp", s.gwAdmin)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// admin GETs an admin API with the token.
func (s *secured) admin(url string, v any) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+s.adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// hs signs claims with the HS256 secret; a token without "exp" gets one
// an hour away (the gateway asks every token to expire), unless claims
// has "exp": nil.
func (s *secured) hs(t *testing.T, claims jwt.MapClaims) string {
	withExp(claims)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *secured) rs(t *testing.T, kid string, claims jwt.MapClaims) string {
	withExp(claims)
	tk := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tk.Header["kid"] = kid
	tok, err := tk.SignedString(s.rsa)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func exp(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// withExp gives claims an "exp" an hour away if they have none, and
// takes out an "exp" of nil (a token that never expires).
func withExp(claims jwt.MapClaims) {
	e, ok := claims["exp"]
	switch {
	case !ok:
		claims["exp"] = exp(time.Hour)
	case e == nil:
		delete(claims, "exp")
	}
}

// stream opens GET path with the request shaped by prep, and returns the
// response and a function that waits for text in its body.
func stream(t *testing.T, url string, prep func(*http.Request)) (*http.Response, func(string) bool) {
	req, _ := http.NewRequest("GET", url, nil)
	if prep != nil {
		prep(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	var mu sync.Mutex
	var got strings.Builder
	go func() {
		r := bufio.NewReader(resp.Body)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return resp, func(want string) bool {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := strings.Contains(got.String(), want)
			mu.Unlock()
			if ok {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
}

// TestAttacks is docs/SECURITY.md's table: each attack against real
// processes is refused with its status and reason and counted, nothing
// crashes, and a client with a valid token is unaffected throughout.
func TestAttacks(t *testing.T) {
	s := startSecured(t)
	base := "http://" + s.gwAddr
	good := s.hs(t, jwt.MapClaims{"sub": "1", "exp": exp(time.Hour)})
	resp, has := stream(t, base+"/test/1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) })
	if resp.StatusCode != 200 || !has("Your Id: 1") {
		t.Fatalf("a valid token: %s", resp.Status)
	}

	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	pubPEM, _ := os.ReadFile(s.files["keys"])
	type attack struct {
		name   string
		prep   func(*http.Request)
		path   string
		status int
		reason string
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	attacks := []attack{
		{"no token", nil, "/test/1", 401, "no token"},
		{"a token for another id", bearer(s.hs(t, jwt.MapClaims{"sub": "2", "exp": exp(time.Hour)})), "/test/1", 403, "token is for id 2, not 1"},
		{"expired", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "exp": exp(-time.Minute)})), "/sse/1", 401, "token expired"},
		{"not yet valid", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "nbf": exp(time.Hour)})), "/poll/1", 401, "token not valid yet"},
		{"issued in the future", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "iat": exp(time.Hour)})), "/sse/1", 401, "token not valid yet"},
		{"no exp (never expires)", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "exp": nil})), "/test/1", 401, "token has no exp"},
		{"a year's token", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "exp": exp(365 * 24 * time.Hour)})), "/test/1", 401, "token expires in"},
		{"a critical extension", bearer(func() string {
			tk := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "1", "exp": exp(time.Hour)})
			tk.Header["crit"] = []string{"b64"}
			tok, _ := tk.SignedString(s.secret)
			return tok
		}()), "/test/1", 401, "token names critical extensions"},
		{"alg none", bearer(b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."), "/test/1", 401, "token algorithm not accepted"},
		{"HS256 signed with the RSA public key", bearer(func() string {
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "1"}).SignedString(pubPEM)
			return tok
		}()), "/test/1", 401, "token signature invalid"},
		{"tampered signature", bearer(parts[0] + "." + parts[1] + "." + b64([]byte("not the signature at all, really"))), "/test/1", 401, "token signature invalid"},
		{"tampered payload", bearer(parts[0] + "." + b64([]byte(`{"sub":"1","exp":9999999999}`)) + "." + parts[2]), "/test/1", 401, "token signature invalid"},
		{"unknown kid", bearer(s.rs(t, "k9", jwt.MapClaims{"sub": "1"})), "/test/1", 401, `token unverifiable: no RS256 key with kid "k9"`},
		// A request head is at most 4 KB (fasthttp's read buffer): a
		// longer one is answered 431, or reset while the client is still
		// sending it.
		{"a 64 KB token", bearer(strings.Repeat("A", 64<<10)), "/test/1", 431, ""},
		{"an 8 KB token in the query", nil, "/test/1?token=" + strings.Repeat("A", 8<<10), 431, ""},
		{"token in the wrong place (X-Token)", func(r *http.Request) { r.Header.Set("X-Token", good) }, "/test/1", 401, "no token"},
		{"token in a Basic header", func(r *http.Request) { r.SetBasicAuth("1", good) }, "/test/1", 401, "Authorization is not a Bearer token"},
		{"a page of another origin", func(r *http.Request) { bearer(good)(r); r.Header.Set("Origin", "https://evil.example") }, "/sse/1", 403, "origin https://evil.example not allowed"},
		{"a topic not in the token", bearer(s.hs(t, jwt.MapClaims{"sub": "1", "topics": []string{"lobby"}})), "/sse/1?topics=lobby,secret", 403, "token does not allow topic secret"},
		{"a topic with no topics claim", bearer(good), "/test/1?topics=lobby", 403, "token does not allow topic lobby"},
		// Browsers check no CORS answer for a WebSocket: the gateway
		// checks the page's origin itself.
		{"a cross-site WebSocket upgrade", func(r *http.Request) {
			wsUpgrade(r)
			r.AddCookie(&http.Cookie{Name: "comet_token", Value: good})
			r.Header.Set("Origin", "https://evil.example")
		}, "/ws/1", 403, "origin https://evil.example not allowed"},
		{"a WebSocket without a token", wsUpgrade, "/ws/1", 401, "no token"},
	}
	for _, a := range attacks {
		req, _ := http.NewRequest("GET", base+a.path, nil)
		if a.prep != nil {
			a.prep(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil && a.status == 431 && strings.Contains(err.Error(), "connection reset") {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != a.status || !strings.HasPrefix(string(body), a.reason) {
			t.Errorf("%s: %s %q, want %d %q", a.name, resp.Status, body, a.status, a.reason)
		}
		if a.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", a.name)
		}
	}

	// Valid tokens in each place and of each kind open streams.
	for _, v := range []struct {
		name, path string
		prep       func(*http.Request)
		want       string
	}{
		{"RS256 in ?token= (EventSource)", "/sse/3?token=" + s.rs(t, "k1", jwt.MapClaims{"sub": "3", "exp": exp(time.Hour)}), nil, "retry:"},
		{"HS256 in the cookie", "/test/4", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "comet_token", Value: s.hs(t, jwt.MapClaims{"sub": "4"})})
		}, "Your Id: 4"},
		{"a topic in the token", "/sse/6?topics=lobby", func(r *http.Request) {
			bearer(s.hs(t, jwt.MapClaims{"sub": "6", "topics": []string{"lobby", "news"}}))(r)
		}, "retry:"},
		{"any topic (\"*\")", "/test/7?topics=anything", func(r *http.Request) {
			bearer(s.hs(t, jwt.MapClaims{"sub": "7", "topics": []string{"*"}}))(r)
		}, "Your Id: 7"},
		{"the allowed origin", "/sse/5", func(r *http.Request) {
			bearer(s.hs(t, jwt.MapClaims{"sub": "5"}))(r)
			r.Header.Set("Origin", "https://app.example")
		}, "retry:"},
	} {
		resp, has := stream(t, base+v.path, v.prep)
		if resp.StatusCode != 200 || !has(v.want) {
			t.Errorf("%s: %s", v.name, resp.Status)
		}
		if v.name == "the allowed origin" && (resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true") {
			t.Errorf("CORS head: %v", resp.Header)
		}
	}

	// A page of the allowed origin may ask to send its token in a header
	// (the CORS preflight); another site may not.
	for origin, status := range map[string]int{"https://app.example": 204, "https://evil.example": 403} {
		req, _ := http.NewRequest("OPTIONS", base+"/sse/1", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status || status == 204 && !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight from %s: %s %v", origin, resp.Status, resp.Header)
		}
	}

	// A sender without the NATS token is refused by NATS; with it, its
	// message reaches the client that stayed connected through it all.
	if out, err := runCmd(t, s.bin+"/msggen", "-nats", "nats://"+s.natsAddr, "-n", "1", "-max", "1"); err == nil || !strings.Contains(strings.ToLower(out), "authorization violation") {
		t.Errorf("msggen without credentials: %v\n%s", err, out)
	}
	if out, err := runCmd(t, s.bin+"/msggen", "-nats", "nats://"+s.natsAddr, "-nats-token-file", s.files["nats"], "-n", "1", "-max", "1", "-numbered"); err != nil {
		t.Fatalf("msggen with the token: %v\n%s", err, out)
	}
	if !has("seq=1") {
		t.Error("the valid client did not get the message sent after the attacks")
	}

	// The admin APIs ask for their token.
	for _, u := range []string{"http://" + s.routerAdmin + "/stats", "http://" + s.gwAdmin + "/stats"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 401 {
			t.Errorf("%s without the admin token: %v %v", u, resp.Status, err)
		}
		resp.Body.Close()
	}
	if out, err := runCmd(t, s.bin+"/router", "send", "-admin", s.routerAdmin, "1", "hi"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("router send without the admin token: %v\n%s", err, out)
	}
	if out, err := runCmd(t, s.bin+"/router", "send", "-admin", s.routerAdmin, "-admin-token-file", s.files["admin"], "1", "by admin"); err != nil {
		t.Errorf("router send with the admin token: %v\n%s", err, out)
	}
	if !has("by admin") {
		t.Error("the admin's send did not arrive")
	}

	// Every refusal is counted by reason.
	var st struct {
		Refused map[string]uint64 `json:"refused"`
	}
	if code, err := s.admin("http://"+s.gwAdmin+"/stats", &st); code != 200 || err != nil {
		t.Fatalf("gateway stats: %d %v", code, err)
	}
	want := map[string]uint64{"no_token": 3, "forbidden_id": 1, "expired": 1, "not_yet_valid": 2, "algorithm": 1, "no_exp": 1, "lifetime": 1, "crit": 1,
		"signature": 3, "unverifiable": 1, "scheme": 1, "origin": 3, "forbidden_topic": 2}
	for code, n := range want {
		if st.Refused[code] != n {
			t.Errorf("refused %s: %d, want %d (all: %v)", code, st.Refused[code], n, st.Refused)
		}
	}
}

// wsUpgrade makes r a WebSocket upgrade request.
func wsUpgrade(r *http.Request) {
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

// TestTokenExpiryEndsStream: a stream ends when its token expires; the
// client sees a clean end and may come back with a new token.
func TestTokenExpiryEndsStream(t *testing.T) {
	s := startSecured(t)
	tok := s.hs(t, jwt.MapClaims{"sub": "9", "exp": exp(2 * time.Second)})
	start := time.Now()
	resp, has := stream(t, "http://"+s.gwAddr+"/test/9", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
	if resp.StatusCode != 200 || !has("Your Id: 9") {
		t.Fatalf("%s", resp.Status)
	}
	waitFor(t, "the stream closed as expired", func() bool {
		var st struct {
			Streams struct {
				Closed map[string]uint64 `json:"closed"`
			} `json:"streams"`
		}
		s.admin("http://"+s.gwAdmin+"/stats", &st)
		return st.Streams.Closed["expired"] == 1
	})
	if d := time.Since(start); d < 1*time.Second || d > 6*time.Second {
		t.Errorf("closed after %s, the token lived 2s", d)
	}
}

// TestSlowloris: connections that send their request head one byte at a
// time are closed at the head deadline and leave nothing behind.
func TestSlowloris(t *testing.T) {
	s := startSecured(t)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("COMET_SLOWLORIS")); err == nil && v > 0 {
		n = v
	}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.gwAddr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	head := "GET /test/1 HTTP/1.1\r\nHost: x\r\n"
	closed := make([]bool, n)
	open := n
	started := time.Now()
	for i := 0; open > 0 && time.Since(started) < 15*time.Second; i++ {
		for j, c := range conns {
			if closed[j] {
				continue
			}
			if _, err := c.Write([]byte{head[i%len(head)]}); err != nil {
				closed[j] = true
				open--
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	elapsed := time.Since(started)
	if open > 0 {
		t.Fatalf("%d of %d slow connections still open after %s (head deadline 1s)", open, n, elapsed)
	}
	t.Logf("%d connections sending a byte every 250ms: all closed within %s", n, elapsed.Round(10*time.Millisecond))
	var st struct {
		Streams struct {
			Open int64 `json:"open"`
		} `json:"streams"`
	}
	s.admin("http://"+s.gwAdmin+"/stats", &st)
	if st.Streams.Open != 0 {
		t.Errorf("%d sessions open", st.Streams.Open)
	}
	// The gateway still serves.
	resp, has := stream(t, "http://"+s.gwAddr+"/test/1", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+s.hs(t, jwt.MapClaims{"sub": "1"}))
	})
	if resp.StatusCode != 200 || !has("Your Id: 1") {
		t.Fatalf("after the slow connections: %s", resp.Status)
	}
}

// TestConnectionFloodFromOneAddress: one address opening 400 streams
// with valid tokens holds 100 (-max-conns-per-addr); the rest are
// answered 429 and counted; a client elsewhere is unaffected, and the
// address gets its room back as its connections close.
func TestConnectionFloodFromOneAddress(t *testing.T) {
	s := startSecured(t, "-max-conns-per-addr", "100")
	tok := "Bearer " + s.hs(t, jwt.MapClaims{"sub": "7"})
	good, has := stream(t, "http://"+s.gwAddr+"/test/1", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+s.hs(t, jwt.MapClaims{"sub": "1"}))
	})
	if good.StatusCode != 200 || !has("Your Id: 1") {
		t.Fatalf("a good client: %s", good.Status)
	}
	flood := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	statuses := map[int]int{}
	for range 400 {
		c, err := flood.Dial("tcp", s.gwAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET /test/7 HTTP/1.1\r\nHost: x\r\nAuthorization: "+tok+"\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(conns), err)
		}
		statuses[resp.StatusCode]++
	}
	if statuses[200] != 100 || statuses[429] != 300 {
		t.Fatalf("flood answered %v, want 100 200s and 300 429s", statuses)
	}
	if out, err := runCmd(t, s.bin+"/router", "send", "-admin", s.routerAdmin, "-admin-token-file", s.files["admin"], "1", "through the flood"); err != nil || !has("through the flood") {
		t.Fatalf("the good client during the flood: %v\n%s", err, out)
	}
	var st struct {
		Refused map[string]uint64 `json:"refused"`
		Streams struct {
			Open int64 `json:"open"`
		} `json:"streams"`
	}
	s.admin("http://"+s.gwAdmin+"/stats", &st)
	if st.Refused["addr_conns"] != 300 || st.Streams.Open != 101 {
		t.Fatalf("refused %v, %d open; want 300 addr_conns, 101 open", st.Refused, st.Streams.Open)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, "the flood's streams closed", func() bool {
		s.admin("http://"+s.gwAdmin+"/stats", &st)
		return st.Streams.Open == 1
	})
	c, err := flood.Dial("tcp", s.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /test/7 HTTP/1.1\r\nHost: x\r\nAuthorization: "+tok+"\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the address after its connections closed: %v %v", resp, err)
	}
}

// TestRefusesToStartExposed: a gateway on an address beyond loopback
// without token keys, and a router with an exposed admin API or NATS
// without tokens, refuse to start and say why.
func TestRefusesToStartExposed(t *testing.T) {
	bin := binDir(t)
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{"gateway", []string{"-addr", "0.0.0.0:0", "-admin", "off"}, "is not a loopback address and no token keys are given"},
		{"gateway", []string{"-admin", "0.0.0.0:0"}, "give -admin-token-file, or -insecure-open"},
		{"router", []string{"-admin", "0.0.0.0:0", "-nats-addr", "127.0.0.1:0"}, "give -admin-token-file, or -insecure-open"},
		{"router", []string{"-admin", "off", "-nats-addr", "0.0.0.0:0"}, "give -nats-token-file or -nats-config (router nats-auth), or -insecure-open"},
		{"gateway", []string{"-auth-secret-file", "/nonexistent/secret"}, "no such file"},
	} {
		out, err := runCmd(t, bin+"/"+c.bin, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s %v: %v\n%s", c.bin, c.args, err, out)
		}
	}
}

// TestNATSRoles: with `router nats-auth`'s NKeys and permissions on the
// embedded NATS, each role does its part and nothing else: a sender
// sends; a sender cannot pose as a gateway (log in, read deliveries) or
// as a router (deliver to clients); a gateway's key cannot send; a
// stranger cannot connect.
func TestNATSRoles(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	if out, err := runCmd(t, bin+"/router", "nats-auth", "-dir", dir); err != nil {
		t.Fatalf("nats-auth: %v\n%s", err, out)
	}
	key := func(role string) string { return filepath.Join(dir, role+".nk") }
	p := startPair(t, bin, []string{"-nats-config", filepath.Join(dir, "nats-auth.conf"), "-nats-nkey", key("router")},
		[]string{"-name", "roles", "-nats-nkey", key("gateway")})
	natsAddr, routerAdmin, gwAddr := p.natsAddr, p.routerAdmin, p.gwAddr
	_, has := stream(t, "http://"+gwAddr+"/test/1", nil)
	if !has("Your Id: 1") {
		t.Fatal("no stream")
	}
	waitRouter(t, routerAdmin, "login", func(st routerStats) bool { return st.Conns == 1 })
	msggen := func(args ...string) (string, error) {
		return runCmd(t, bin+"/msggen", append([]string{"-nats", "nats://" + natsAddr, "-n", "1", "-max", "1", "-numbered", "-ack-timeout", "2s"}, args...)...)
	}
	if out, err := msggen("-nats-nkey", key("sender")); err != nil || !strings.Contains(out, "delivered 1 ") {
		t.Fatalf("msggen as sender: %v\n%s", err, out)
	}
	if !has("seq=1") {
		t.Fatal("the sender's message did not arrive")
	}
	if out, err := msggen("-nats-nkey", key("gateway")); err == nil || !strings.Contains(strings.ToLower(out), "permissions violation") {
		t.Errorf("msggen with the gateway's key: %v\n%s", err, out)
	}
	if out, err := msggen(); err == nil || !strings.Contains(strings.ToLower(out), "authorization violation") {
		t.Errorf("msggen without a key: %v\n%s", err, out)
	}

	// A sender's key posing as a gateway and as a router.
	violations := make(chan string, 8)
	opt, err := nats.NkeyOptionFromSeed(key("sender"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+natsAddr, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err.Error()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Subscribe("comet.v3.down.roles", func(*nats.Msg) {})
	nc.Publish("comet.v3.up", []byte("a forged login"))
	nc.Publish("comet.v3.down.roles", []byte("a forged delivery"))
	nc.Flush()
	seen := map[string]bool{}
	for len(seen) < 3 {
		select {
		case v := <-violations:
			seen[v] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("permission violations seen: %v, want 3", seen)
		}
	}
	for v := range seen {
		if !strings.Contains(strings.ToLower(v), "permissions violation") {
			t.Errorf("unexpected error %q", v)
		}
	}
	var st struct {
		BadFrames uint64 `json:"bad_frames"`
		Conns     int    `json:"conns"`
	}
	getJSON("http://"+routerAdmin+"/stats", &st)
	if st.BadFrames != 0 || st.Conns != 1 {
		t.Errorf("router after the forgeries: %+v", st)
	}
}
