package gateway_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/cometgw/comet/internal/auth"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/testclient"
	"github.com/cometgw/comet/internal/ws"
)

// wsClient is a WebSocket client of the gateway (coder/websocket).
type wsClient struct {
	t       *testing.T
	c       *websocket.Conn
	backlog []string // frames read while looking for another kind
}

func dialWS(t *testing.T, addr, path string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+path, &websocket.DialOptions{Subprotocols: []string{ws.Protocol}})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

// next reads the next frame.
func (w *wsClient) next() string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return string(b)
}

// find returns the next frame, read before or now, that is a control
// frame (JSON) or not; the others stay in the backlog, in order.
func (w *wsClient) find(control bool) string {
	w.t.Helper()
	for i, f := range w.backlog {
		if strings.HasPrefix(f, "{") == control {
			w.backlog = append(w.backlog[:i], w.backlog[i+1:]...)
			return f
		}
	}
	for {
		f := w.next()
		if strings.HasPrefix(f, "{") == control {
			return f
		}
		w.backlog = append(w.backlog, f)
	}
}

// message reads up to the next message and returns its cursor and text.
func (w *wsClient) message() (cur, msg string) {
	w.t.Helper()
	cur, msg, _ = strings.Cut(w.find(false), "\n")
	return cur, msg
}

// control reads up to the next JSON frame.
func (w *wsClient) control() map[string]any {
	w.t.Helper()
	{
		f := w.find(true)
		var m map[string]any
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			w.t.Fatalf("control frame %q: %v", f, err)
		}
		return m
	}
}

func (w *wsClient) request(req string) map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		w.t.Fatalf("write: %v", err)
	}
	return w.control()
}

// A WebSocket gets every message sent to its id as a text frame with its
// position, and resumes from a position like an SSE stream: what was
// sent while it was away, once and in order, then live messages.
// The first socket's upgrade (no query, no Origin) is served by the
// direct path, the resuming ones by fasthttp; with NoDirect all by
// fasthttp: both behave alike.
func TestWebSocketDeliveryAndResume(t *testing.T) {
	for _, noDirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-direct=%t", noDirect), func(t *testing.T) { testWSDeliveryAndResume(t, noDirect) })
	}
}

func testWSDeliveryAndResume(t *testing.T, noDirect bool) {
	r, g := startSystem(t, gateway.Config{NoDirect: noDirect})
	addr := g.Addr().String()
	c := dialWS(t, addr, "/ws/5")
	if m := c.control(); m["type"] != "resumed" || m["missed"] != false {
		t.Fatalf("first frame %v", m)
	}
	if n := delivered(t, r, 5, "one"); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	cur, msg := c.message()
	if msg != "one" || !strings.HasSuffix(cur, "-1") {
		t.Fatalf("got %q %q", cur, msg)
	}
	c.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, "logout", 5*time.Second, func() bool { return r.Stats().Conns == 0 })
	for i := 2; i <= 4; i++ {
		r.Send(5, []byte(fmt.Sprintf("away %d", i)))
	}
	c2 := dialWS(t, addr, "/ws/5?cursor="+cur)
	if m := c2.control(); m["type"] != "resumed" || m["cursor"] != cur || m["missed"] != false {
		t.Fatalf("resumed %v", m)
	}
	for i := 2; i <= 4; i++ {
		if _, msg := c2.message(); msg != fmt.Sprintf("away %d", i) {
			t.Fatalf("catch-up %d: %q", i, msg)
		}
	}
	if n := delivered(t, r, 5, "live ünïcode"); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	if cur, msg := c2.message(); msg != "live ünïcode" || !strings.HasSuffix(cur, "-5") {
		t.Fatalf("live: %q %q", cur, msg)
	}
	// A cursor of another epoch: missed, and what is kept.
	c3 := dialWS(t, addr, "/ws/5?cursor=1-1")
	if m := c3.control(); m["missed"] != true {
		t.Fatalf("stale cursor: %v", m)
	}
}

// Clients publish into the topics they are in and get the router's
// account of the copies; they join and leave topics; what they may not
// do gets an error reply and nothing is sent.
func TestWebSocketRequests(t *testing.T) {
	r, g := startSystem(t, gateway.Config{WSSend: true})
	addr := g.Addr().String()
	a := dialWS(t, addr, "/ws/1?topics=lobby")
	b := dialWS(t, addr, "/ws/2")
	a.control()
	b.control()
	if m := b.request(`{"op":"join","topics":["lobby","news"],"ref":7}`); m["type"] != "reply" || m["ref"] != 7.0 {
		t.Fatalf("join: %v", m)
	}
	waitFor(t, "joins at the router", 5*time.Second, func() bool { return r.Presence("lobby").Conns == 2 })

	m := a.request(`{"op":"publish","topic":"lobby","data":"hi all","ref":1}`)
	if m["type"] != "reply" || m["delivered"] != 2.0 || m["dropped"] != nil {
		t.Fatalf("publish reply %v", m)
	}
	if _, msg := a.message(); msg != "hi all" {
		t.Fatalf("publisher got %q", msg)
	}
	if _, msg := b.message(); msg != "hi all" {
		t.Fatalf("member got %q", msg)
	}
	if m := a.request(`{"op":"publish","topic":"news","data":"x","ref":2}`); m["type"] != "error" || !strings.Contains(m["error"].(string), "not in topic news") {
		t.Fatalf("publish outside: %v", m)
	}
	if m := b.request(`{"op":"send","id":1,"data":"direct","ref":3}`); m["delivered"] != 1.0 {
		t.Fatalf("send: %v", m)
	}
	if _, msg := a.message(); msg != "direct" {
		t.Fatalf("send got %q", msg)
	}
	if m := b.request(`{"op":"send","id":99,"data":"nobody"}`); m["void"] != true {
		t.Fatalf("send to nobody: %v", m)
	}
	if m := b.request(`{"op":"leave","topics":["lobby"],"ref":4}`); m["type"] != "reply" {
		t.Fatalf("leave: %v", m)
	}
	waitFor(t, "leave at the router", 5*time.Second, func() bool { return r.Presence("lobby").Conns == 1 })
	if m := a.request(`{"op":"publish","topic":"lobby","data":"after","ref":5}`); m["delivered"] != 1.0 {
		t.Fatalf("publish after leave: %v", m)
	}
	for _, tt := range []struct{ req, want string }{
		{`not json`, "not a request"},
		{`{"op":"fly"}`, "unknown op"},
		{`{"op":"publish","topic":"bad topic!","data":"x"}`, "not a topic"},
		{`{"op":"publish","topic":"lobby"}`, "needs a topic and data"},
		{`{"op":"join","topics":["a b"]}`, "not a topic"},
		{`{"op":"send","id":1,"data":"x","extra":1}`, "unknown field"},
	} {
		if m := b.request(tt.req); m["type"] != "error" || !strings.Contains(m["error"].(string), tt.want) {
			t.Errorf("%s: %v", tt.req, m)
		}
	}
	if m := b.request(`{"op":"ping","ref":9}`); m["type"] != "reply" || m["ref"] != 9.0 {
		t.Fatalf("ping: %v", m)
	}
	st := g.Stats().ClientRequests
	if st.Sent != 4 || st.Acked != 4 || st.Refused != 3 || st.Waiting != 0 {
		t.Fatalf("client request stats %+v", st)
	}
}

// Sending to ids is off by default.
func TestWebSocketSendNeedsPermission(t *testing.T) {
	_, g := startSystem(t, gateway.Config{})
	c := dialWS(t, g.Addr().String(), "/ws/1")
	c.control() // resumed
	if m := c.request(`{"op":"send","id":2,"data":"x"}`); m["type"] != "error" || !strings.Contains(m["error"].(string), "may not send") {
		t.Fatalf("send: %v", m)
	}
}

// rawWS is a client that writes frames by hand (protocol breaches).
type rawWS struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	wait time.Duration // how long read waits for a frame; 0: 5 s
}

func dialRaw(t *testing.T, addr, path string) *rawWS {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, key)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("upgrade: %q %v", status, err)
	}
	accept := ""
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(l, "Sec-WebSocket-Accept: "); ok {
			accept = strings.TrimSpace(v)
		}
	}
	if accept != ws.AcceptKey([]byte(key)) {
		t.Fatalf("accept %q", accept)
	}
	return &rawWS{t: t, c: c, br: br}
}

// frame writes a client frame: masked unless unmasked.
func (r *rawWS) frame(b0 byte, payload []byte, masked bool) {
	b := ws.AppendClientFrame(nil, b0, payload, [4]byte{1, 2, 3, 4})
	if !masked { // the same frame without its mask bit and key, in clear
		b[1] &^= 0x80
		hl := len(b) - len(payload) - 4
		b = append(b[:hl], payload...)
	}
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read reads a server frame (unmasked).
func (r *rawWS) read() (op byte, payload []byte, err error) {
	wait := r.wait
	if wait == 0 {
		wait = 5 * time.Second
	}
	r.c.SetReadDeadline(time.Now().Add(wait))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("server frame masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(r.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(r.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return h[0] & 0x0F, payload, err
}

// closeCode reads frames up to a close frame and returns its code, then
// checks the connection ends.
func (r *rawWS) closeCode() uint16 {
	r.t.Helper()
	for {
		op, p, err := r.read()
		if err != nil {
			r.t.Fatalf("no close frame: %v", err)
		}
		if op == ws.OpClose {
			if len(p) < 2 {
				r.t.Fatalf("close frame %x", p)
			}
			if _, err := r.br.ReadByte(); err != io.EOF {
				r.t.Fatalf("connection still open after close: %v", err)
			}
			return binary.BigEndian.Uint16(p)
		}
	}
}

// Every breach of RFC 6455 closes the socket with its code, counted, and
// the gateway goes on serving.
func TestWebSocketProtocolBreaches(t *testing.T) {
	for _, noDirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-direct=%t", noDirect), func(t *testing.T) { testWSProtocolBreaches(t, noDirect) })
	}
}

func testWSProtocolBreaches(t *testing.T, noDirect bool) {
	_, g := startSystem(t, gateway.Config{WSMaxMessage: 1000, NoDirect: noDirect})
	addr := g.Addr().String()
	big := make([]byte, 1001)
	for _, tt := range []struct {
		name string
		send func(r *rawWS)
		want uint16
	}{
		{"unmasked", func(r *rawWS) { r.frame(0x81, []byte(`{"op":"ping"}`), false) }, ws.CloseProtocol},
		{"reserved bits", func(r *rawWS) { r.frame(0xC1, []byte(`{}`), true) }, ws.CloseProtocol},
		{"unknown opcode", func(r *rawWS) { r.frame(0x83, nil, true) }, ws.CloseProtocol},
		{"fragmented ping", func(r *rawWS) { r.frame(0x09, nil, true) }, ws.CloseProtocol},
		{"long ping", func(r *rawWS) { r.frame(0x89, make([]byte, 126), true) }, ws.CloseProtocol},
		{"continuation first", func(r *rawWS) { r.frame(0x80, []byte("x"), true) }, ws.CloseProtocol},
		{"text inside fragments", func(r *rawWS) { r.frame(0x01, []byte("{"), true); r.frame(0x81, []byte("}"), true) }, ws.CloseProtocol},
		{"bad UTF-8", func(r *rawWS) { r.frame(0x81, []byte{'"', 0xff, '"'}, true) }, ws.CloseInvalidData},
		{"UTF-8 split badly across fragments", func(r *rawWS) { r.frame(0x01, []byte{0xe2, 0x82}, true); r.frame(0x80, []byte{'x'}, true) }, ws.CloseInvalidData},
		{"too big", func(r *rawWS) { r.frame(0x81, big, true) }, ws.CloseTooBig},
		{"too big in fragments", func(r *rawWS) { r.frame(0x01, big[:600], true); r.frame(0x80, big[:600], true) }, ws.CloseTooBig},
		{"binary", func(r *rawWS) { r.frame(0x82, []byte{1, 2}, true) }, ws.CloseUnsupported},
		{"close of one byte", func(r *rawWS) { r.frame(0x88, []byte{3}, true) }, ws.CloseProtocol},
		{"close code 1005", func(r *rawWS) { r.frame(0x88, []byte{0x03, 0xED}, true) }, ws.CloseProtocol},
		{"close reason not UTF-8", func(r *rawWS) { r.frame(0x88, []byte{0x03, 0xE8, 0xff}, true) }, ws.CloseInvalidData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, addr, "/ws/1")
			tt.send(r)
			if got := r.closeCode(); got != tt.want {
				t.Fatalf("close code %d, want %d", got, tt.want)
			}
		})
	}
	// The client sees the close before the session's end is counted.
	waitFor(t, "15 closed for protocol", 5*time.Second, func() bool { return g.Hub().Stats().Closed["protocol"] == 15 })
}

// A fragmented request with a ping between its fragments: the pong comes
// at once, then the reply; a close is echoed with its code.
func TestWebSocketFragmentsPingAndClose(t *testing.T) {
	_, g := startSystem(t, gateway.Config{})
	r := dialRaw(t, g.Addr().String(), "/ws/1")
	if op, p, err := r.read(); err != nil || op != ws.OpText || !strings.HasPrefix(string(p), `{"type":"resumed"`) {
		t.Fatalf("first frame %d %q %v", op, p, err)
	}
	r.frame(0x01, []byte(`{"op":"pi`), true)
	r.frame(0x89, []byte("are you there"), true)
	r.frame(0x00, []byte(`ng",`), true)
	r.frame(0x80, []byte(`"ref":3}`), true)
	var got []string
	for len(got) < 2 {
		op, p, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", op, p))
	}
	if got[0] != "10 are you there" || got[1] != `1 {"type":"reply","ref":3,"op":"ping"}` {
		t.Fatalf("frames %q", got)
	}
	r.frame(0x88, []byte{0x0F, 0xA0, 'b', 'y', 'e'}, true) // 4000
	if code := r.closeCode(); code != 4000 {
		t.Fatalf("close echoed %d", code)
	}
}

// A client that does not answer pings is closed; one that does is kept.
func TestWebSocketPing(t *testing.T) {
	_, g := startSystem(t, gateway.Config{WSPing: 200 * time.Millisecond, WSPongWait: 300 * time.Millisecond})
	addr := g.Addr().String()
	live := dialWS(t, addr, "/ws/1")
	go func() {
		for { // reading answers pings
			if _, _, err := live.c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	deaf := dialRaw(t, addr, "/ws/2")
	op, _, err := deaf.read()
	for err == nil && op != ws.OpPing {
		op, _, err = deaf.read()
	}
	if err != nil {
		t.Fatalf("no ping: %v", err)
	}
	waitFor(t, "the deaf client closed", 5*time.Second, func() bool { return g.Hub().Stats().Closed["timeout"] == 1 })
	time.Sleep(time.Second)
	if open := g.Stats().Streams.OpenWS; open != 1 {
		t.Fatalf("open WebSockets %d, want the one that answers pings", open)
	}
}

// What is not an upgrade, or asks what the gateway does not speak, is
// refused with a reason.
func TestWebSocketBadUpgrades(t *testing.T) {
	_, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	for _, tt := range []struct {
		head   string
		status string
		reason string
	}{
		{"Connection: close\r\n", "400", "Upgrade: websocket missing"},
		{"Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "426", "speaks 13"},
		{"Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n", "400", "16 bytes"},
		{"Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n", "400", "comet.v1"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /ws/1 HTTP/1.1\r\nHost: x\r\n%s\r\n", tt.head)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(b), tt.reason) { // the answer, whether or not the connection stays open
			n, err := c.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.Close()
		if !strings.Contains(string(b), " "+tt.status+" ") || !strings.Contains(string(b), tt.reason) {
			t.Errorf("%q: %q", tt.head, b)
		}
	}
}

// A WebSocket client that never reads is evicted like a slow stream:
// its pending output passes the bound, it is closed, and the acks say
// which copies were dropped as slow; other clients are not held up.
func TestWebSocketThatNeverReads(t *testing.T) {
	r, g := startSystem(t, gateway.Config{Hub: hub.Config{MaxPending: 64 << 10, SendBuffer: 4096}})
	addr := g.Addr().String()
	deaf := dialRaw(t, addr, "/ws/1")
	deaf.c.(*net.TCPConn).SetReadBuffer(4096)
	live := dialWS(t, addr, "/ws/2")
	live.control()
	waitFor(t, "logins", 5*time.Second, func() bool { return r.Stats().Conns == 2 })
	body := strings.Repeat("x", 16<<10)
	var slow uint64
	for i := 0; i < 200 && slow == 0; i++ {
		res, err := r.Send(1, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		slow += res.Tally.Slow
	}
	if slow != 1 {
		t.Fatalf("copies dropped as slow: %d", slow)
	}
	if n := delivered(t, r, 2, "still here"); n != 1 {
		t.Fatalf("the other client: %d", n)
	}
	if _, msg := live.message(); msg != "still here" {
		t.Fatalf("the other client got %q", msg)
	}
	waitFor(t, "one closed slow", 5*time.Second, func() bool { return g.Hub().Stats().Closed["slow"] == 1 })
}

// A WebSocket client renews its token without reconnecting ({"op":
// "auth"}): the socket then lives past the first token's expiry. A token
// for another id, or one that does not verify, is refused with its
// reason and changes nothing; a socket that does not renew ends at its
// token's expiry (1008).
func TestWebSocketTokenRenewal(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	key := []byte("a secret of at least thirty-two bytes, for tests")
	if err := os.WriteFile(secret, key, 0o600); err != nil {
		t.Fatal(err)
	}
	r, g := startSystem(t, gateway.Config{Auth: auth.Config{SecretFile: secret}})
	tok := func(id int64, life time.Duration) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": fmt.Sprint(id), "exp": time.Now().Add(life).Unix()}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	addr := g.Addr().String()
	c := dialWS(t, addr, "/ws/1?token="+tok(1, 2*time.Second))
	c.control() // resumed
	if m := c.request(`{"op":"auth","token":"` + tok(2, time.Hour) + `","ref":1}`); m["type"] != "error" || !strings.Contains(m["error"].(string), "token is for id 2") {
		t.Fatalf("another id's token: %v", m)
	}
	if m := c.request(`{"op":"auth","token":"not.a.token","ref":2}`); m["type"] != "error" {
		t.Fatalf("a bad token: %v", m)
	}
	if m := c.request(`{"op":"auth","token":"` + tok(1, time.Hour) + `","ref":3}`); m["type"] != "reply" || m["ref"] != 3.0 {
		t.Fatalf("renewal: %v", m)
	}
	other := dialRaw(t, addr, "/ws/2?token="+tok(2, 2*time.Second))
	time.Sleep(3500 * time.Millisecond) // past the first tokens' expiry
	if n := delivered(t, r, 1, "still here"); n != 1 {
		t.Fatalf("delivered %d to the renewed socket", n)
	}
	if _, msg := c.message(); msg != "still here" {
		t.Fatalf("got %q", msg)
	}
	if code := other.closeCode(); code != ws.ClosePolicy {
		t.Fatalf("the socket that did not renew: close %d, want %d", code, ws.ClosePolicy)
	}
}

// TestWebSocketRequestsWhileNoRouterRuns: a publish made while no router
// is subscribed (one stopped, the next not up yet, as in a takeover) is
// sent again every 100 ms until one takes it, for up to 5 s; past that
// the client is told no router runs, and nothing was sent.
func TestWebSocketRequestsWhileNoRouterRuns(t *testing.T) {
	ns, r1, stop1, g := startOnOwnNATS(t)
	a := dialWS(t, g.Addr().String(), "/ws/1?topics=lobby")
	a.control() // resumed
	waitFor(t, "the socket in the lobby", 5*time.Second, func() bool { return r1.Presence("lobby").Conns == 1 })
	stop1()
	write := func(req string) {
		t.Helper()
		if err := a.c.Write(context.Background(), websocket.MessageText, []byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"op":"publish","topic":"lobby","data":"across","ref":1}`)
	time.Sleep(time.Second)
	_, stop2 := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	if m := a.control(); m["type"] != "reply" || m["ref"] != 1.0 {
		t.Fatalf("the publish made while no router ran: %v", m)
	}
	if st := g.Stats().ClientRequests; st.Retried < 5 || st.Acked != 1 || st.Failed != 0 {
		t.Errorf("client request stats %+v: want it sent again about ten times, then acked", st)
	}

	stop2()
	start := time.Now()
	write(`{"op":"publish","topic":"lobby","data":"nobody","ref":2}`)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, b, err := a.c.Read(ctx)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			continue // a message
		}
		if m["type"] != "error" || m["ref"] != 2.0 || !strings.Contains(m["error"].(string), "no router is running") {
			t.Fatalf("with no router: %v", m)
		}
		break
	}
	if took := time.Since(start); took < 4*time.Second {
		t.Errorf("told after %s, before the 5 s of trying", took)
	}
}

// TestDrainEndsEveryKind: Drain turns the gateway not ready and ends each
// kind of client its own way: a WebSocket with 1012 and a hint, an SSE
// stream with a retry: first, a long-poll with its answer, a chunked
// stream with its last chunk.
func TestDrainEndsEveryKind(t *testing.T) {
	_, g := startSystem(t, gateway.Config{DrainPeriod: 400 * time.Millisecond, DrainMinRate: 1})
	addr := g.Addr().String()
	waitFor(t, "ready", 5*time.Second, func() bool { return g.Ready() == nil })
	w := dialWS(t, addr, "/ws/1")
	w.control() // resumed
	resp, err := http.Get("http://" + addr + "/sse/2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sseLines := bufio.NewReader(resp.Body)
	if line, _ := sseLines.ReadString('\n'); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("SSE stream began %q", line)
	}
	stream := testclient.Open(t, addr, 3)
	poll := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/poll/4?timeout=30s")
		if err != nil {
			poll <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		poll <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	waitFor(t, "four sessions", 5*time.Second, func() bool { return g.Hub().Len() == 4 })

	drained := make(chan struct{})
	go func() { g.Drain(); close(drained) }()
	waitFor(t, "not ready while draining", 5*time.Second, func() bool {
		err := g.Ready()
		return err != nil && strings.Contains(err.Error(), "draining")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = w.c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusCode(ws.CloseRestart) || !strings.Contains(err.Error(), "reconnect in") {
		t.Errorf("WebSocket ended with %v; want 1012 and a hint", err)
	}
	rest, err := io.ReadAll(sseLines) // to the stream's end
	if err != nil || !strings.Contains(string(rest), "retry: ") {
		t.Errorf("SSE stream's last bytes %q (%v); want a retry:", rest, err)
	}
	if got := stream.Next(5 * time.Second); got != "" || !stream.Done() {
		t.Errorf("chunked stream: %q, ended %v", got, stream.Done())
	}
	select {
	case got := <-poll:
		if !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"cursor"`) {
			t.Errorf("long-poll answered %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Error("the long-poll was not answered")
	}
	<-drained
	// The long-poll's session ends as answered (its answer was written).
	if n, a := g.Hub().Closes(hub.ReasonDrained), g.Hub().Closes(hub.ReasonAnswered); n != 3 || a != 1 {
		t.Errorf("%d sessions closed drained and %d answered, want 3 and the long-poll", n, a)
	}
}
