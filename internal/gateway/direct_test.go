package gateway

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/ws"
)

func TestParseStreamRequest(t *testing.T) {
	tests := []struct {
		req    string
		id     int64
		http10 bool
		ok     bool
	}{
		{"GET /test/5 HTTP/1.1\r\nHost: x\r\n\r\n", 5, false, true},
		{"GET /test/-7 HTTP/1.1\r\nhost: y\r\n\r\n", -7, false, true},
		{"GET /test/-7 HTTP/1.1\r\n\r\n", 0, false, false}, // HTTP/1.1 without Host
		{"GET /test/7 HTTP/1.1\r\nHost: x\nY: b\r\n\r\n", 0, false, false},
		{"GET /test/7 HTTP/1.1\r\nHost : x\r\n\r\n", 0, false, false},
		{"GET /test/9 HTTP/1.0\r\n\r\n", 9, true, true},
		{"GET /test/9 HTTP/1.1\r\nUser-Agent: a\r\nAccept: */*\r\nHost: h\r\n\r\n", 9, false, true},
		{"GET /test/9 HTTP/1.1\r\nHost: x\r\n", 0, false, false},                        // incomplete
		{"GET /test/9 HTTP/1.1\r\n\r\nGET /test/9 HTTP/1.1\r\n\r\n", 0, false, false},   // pipelined
		{"GET /test/9 HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 0, false, false},          // a body
		{"GET /test/9 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n", 0, false, false}, // a body
		{"GET /test/9 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", 0, false, false},       // 100-continue
		{"GET /test/9?x=1 HTTP/1.1\r\n\r\n", 0, false, false},                           // a query
		{"GET /test/x HTTP/1.1\r\n\r\n", 0, false, false},                               // bad id: fasthttp says 400
		{"GET /test/ HTTP/1.1\r\n\r\n", 0, false, false},
		{"GET /test/1/2 HTTP/1.1\r\n\r\n", 0, false, false},
		{"HEAD /test/1 HTTP/1.1\r\n\r\n", 0, false, false},
		{"GET /test/1 HTTP/2.0\r\n\r\n", 0, false, false},
		{"GET /test/1  HTTP/1.1\r\n\r\n", 0, false, false},
		{"GET /poll/1 HTTP/1.1\r\n\r\n", 0, false, false},
		{"GET /ws/4 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 4, false, true}, // its upgrade checked later
		{"GET /ws/4 HTTP/1.0\r\nUpgrade: websocket\r\n\r\n", 0, false, false},
		{"GET /ws/4?cursor=1-1 HTTP/1.1\r\nHost: x\r\n\r\n", 0, false, false},
		{"GET /ws/4 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nupgrade: h2c\r\n\r\n", 0, false, false}, // twice
		{"GET /test/3 HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", 3, false, true},
		{"GET /test/3 HTTP/1.1\r\nHost: localhost:8000\r\n\r\n", 3, false, true},
		{"GET /test/3 HTTP/1.1\r\nHost: :80\r\n\r\n", 0, false, false},
		{"GET /test/3 HTTP/1.1\r\nHost: a b\r\n\r\n", 0, false, false},
		{"", 0, false, false},
	}
	for _, tt := range tests {
		r, ok := parseStreamRequest([]byte(tt.req))
		if ok != tt.ok || ok && (r.id != tt.id || r.http10 != tt.http10) {
			t.Errorf("%q: %d %v %v; want %d %v %v", tt.req, r.id, r.http10, ok, tt.id, tt.http10, tt.ok)
		}
	}
}

// An upgrade's headers are noted for ws.Check, whatever their case and
// spaces.
func TestParseStreamRequestUpgrade(t *testing.T) {
	r, ok := parseStreamRequest([]byte("GET /ws/5 HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Version:13\r\nsec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\nSec-WebSocket-Protocol: comet.v1\r\n\r\n"))
	if !ok || !r.ws || r.id != 5 {
		t.Fatalf("%v %+v", ok, r)
	}
	u := r.up
	if string(u.Upgrade) != "WebSocket" || string(u.Connection) != "keep-alive, Upgrade" || string(u.Version) != "13" ||
		string(u.Key) != "dGhlIHNhbXBsZSBub25jZQ==" || string(u.Protocols) != "comet.v1" {
		t.Fatalf("%q", u)
	}
	if r, ok := parseStreamRequest([]byte("GET /test/5 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")); !ok || r.ws || r.up.Upgrade != nil {
		t.Fatalf("a stream's Upgrade header noted: %v %+v", ok, r)
	}
}

// The direct path notes the token and the Origin a request carries; two
// Authorization headers are fasthttp's to answer.
func TestParseStreamRequestToken(t *testing.T) {
	r, ok := parseStreamRequest([]byte("GET /test/5 HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer abc.def.ghi \r\n\r\n"))
	if !ok || string(r.authz) != "Bearer abc.def.ghi" || r.origin {
		t.Fatalf("%v %q %v", ok, r.authz, r.origin)
	}
	r, ok = parseStreamRequest([]byte("GET /test/5 HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n"))
	if !ok || r.authz != nil || !r.origin {
		t.Fatalf("%v %q %v", ok, r.authz, r.origin)
	}
	if _, ok := parseStreamRequest([]byte("GET /test/5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n")); ok {
		t.Fatal("two Authorization headers taken")
	}
}

// FuzzParseStreamRequest: what the direct path takes, fasthttp parses as
// the same request: GET, path /test/{id}, same protocol version, no body,
// and the whole input is that one request.
func FuzzParseStreamRequest(f *testing.F) {
	for _, s := range []string{
		"GET /test/5 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /test/9 HTTP/1.0\r\n\r\n",
		"GET /test/1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "GET /test/1 HTTP/1.1\r\n\r\n\r\n",
		"GET /test/1 HTTP/1.1\r\nX: a\nY: b\r\n\r\n",
		"GET /ws/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		sr, ok := parseStreamRequest(req)
		if !ok {
			return
		}
		id, http10 := sr.id, sr.http10
		var r fasthttp.Request
		br := bufio.NewReader(bytes.NewReader(req))
		if err := r.Read(br); err != nil {
			t.Fatalf("%q taken by the direct path, but fasthttp: %v", req, err)
		}
		if !r.Header.IsGet() || r.Header.IsHTTP11() == http10 || len(r.Body()) != 0 || br.Buffered() != 0 {
			t.Fatalf("%q: fasthttp reads %s %q http11=%v body %q, %d bytes left; direct: id %d http10 %v",
				req, r.Header.Method(), r.URI().Path(), r.Header.IsHTTP11(), r.Body(), br.Buffered(), id, http10)
		}
		want := routeStream
		if sr.ws {
			want = routeWS
		}
		rt, fid, err := parseRoute(r.URI().Path())
		if rt != want || err != nil || fid != id {
			t.Fatalf("%q: fasthttp's path %q routes to %v %d %v; direct: id %d", req, r.URI().Path(), rt, fid, err, id)
		}
		if fa := r.Header.Peek("Authorization"); sr.authz != nil && string(fa) != string(sr.authz) {
			t.Fatalf("%q: fasthttp's Authorization %q, direct %q", req, fa, sr.authz)
		}
		if fo := r.Header.Peek("Origin"); (len(fo) > 0) != sr.origin && len(fo) > 0 {
			t.Fatalf("%q: fasthttp sees Origin %q, direct does not", req, fo)
		}
		if !sr.ws {
			return
		}
		for _, h := range []struct {
			name   string
			direct []byte
		}{{"Upgrade", sr.up.Upgrade}, {"Connection", sr.up.Connection}, {"Sec-WebSocket-Version", sr.up.Version},
			{"Sec-WebSocket-Key", sr.up.Key}, {"Sec-WebSocket-Protocol", sr.up.Protocols}} {
			if _, ok := ws.Check(sr.up); ok == nil && string(r.Header.Peek(h.name)) != string(h.direct) {
				t.Fatalf("%q: fasthttp's %s %q, direct %q", req, h.name, r.Header.Peek(h.name), h.direct)
			}
		}
	})
}
