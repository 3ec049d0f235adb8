package gateway

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
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
		rt, fid, err := parseRoute(r.URI().Path())
		if rt != routeStream || err != nil || fid != id {
			t.Fatalf("%q: fasthttp's path %q routes to %v %d %v; direct: id %d", req, r.URI().Path(), rt, fid, err, id)
		}
		if fa := r.Header.Peek("Authorization"); sr.authz != nil && string(fa) != string(sr.authz) {
			t.Fatalf("%q: fasthttp's Authorization %q, direct %q", req, fa, sr.authz)
		}
		if fo := r.Header.Peek("Origin"); (len(fo) > 0) != sr.origin && len(fo) > 0 {
			t.Fatalf("%q: fasthttp sees Origin %q, direct does not", req, fo)
		}
	})
}
