package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/wire"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path  string
		route route
		id    int64
		err   error
	}{
		{"/", routeIndex, 0, nil},
		{"/test/123", routeStream, 123, nil},
		{"/test/-4", routeStream, -4, nil},
		{"/test/0", routeStream, 0, nil},
		{"/test/9223372036854775807", routeStream, 9223372036854775807, nil},
		{"/test/", routeStream, 0, ids.ErrEmpty},
		{"/test", routeStream, 0, ids.ErrEmpty},
		{"/test/abc", routeStream, 0, ids.ErrSyntax},
		{"/test/12/", routeStream, 0, ids.ErrSyntax},
		{"/test/9223372036854775808", routeStream, 0, ids.ErrRange},
		{"/poll/7", routePoll, 7, nil},
		{"/poll/", routePoll, 0, ids.ErrEmpty},
		{"/poll", routePoll, 0, ids.ErrEmpty},
		{"/poll/x", routePoll, 0, ids.ErrSyntax},
		{"/sse/-1", routeSSE, -1, nil},
		{"/sse", routeSSE, 0, ids.ErrEmpty},
		{"/sse/1.5", routeSSE, 0, ids.ErrSyntax},
		{"/ws/5", routeWS, 5, nil},
		{"/ws", routeWS, 0, ids.ErrEmpty},
		{"/ws/a", routeWS, 0, ids.ErrSyntax},
		{"/demo", routeDemo, 0, nil},
		{"/demo/", routeNotFound, 0, nil},
		{"/comet.js", routeLibrary, 0, nil},
		{"/comet.jsx", routeNotFound, 0, nil},
		{"", routeNotFound, 0, nil},
		{"/tests/1", routeNotFound, 0, nil},
		{"/TEST/1", routeNotFound, 0, nil},
		{"//", routeNotFound, 0, nil},
	}
	for _, tt := range tests {
		rt, id, err := parseRoute([]byte(tt.path))
		if rt != tt.route || id != tt.id || !errors.Is(err, tt.err) {
			t.Errorf("parseRoute(%q) = %v, %d, %v; want %v, %d, %v", tt.path, rt, id, err, tt.route, tt.id, tt.err)
		}
	}
}

// FuzzRoute: no path crashes the router of requests; a stream route either
// has an id that formats back into the same path or an error.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/", "/test/1", "/test/", "/test/-9223372036854775808", "/test/\x00", "/x", "/poll/3", "/sse/-2", "/ws/5", "/ws", "/demo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, id, err := parseRoute([]byte(path))
		prefix := ""
		if rt >= routeClient {
			prefix = clientKinds[rt.kind()].prefix
		}
		if prefix == "" && err != nil {
			t.Fatalf("route %v without an id has error %v", rt, err)
		}
		if prefix != "" && err == nil {
			back, err2 := ids.Parse(path[len(prefix):])
			if err2 != nil || back != id {
				t.Fatalf("%q: id %d does not round trip (%v)", path, id, err2)
			}
		}
	})
}

// FuzzParseTopics: ?topics= gives valid, distinct topic names, at most
// MaxConnTopics, or an error; never a crash.
func FuzzParseTopics(f *testing.F) {
	for _, s := range []string{"lobby", "a,b,a", "a.b:c_d-9,x", "", ",", "a,,b", "a b", "é", strings.Repeat("t,", 70)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arg []byte) {
		topics, err := parseTopics(arg)
		if err != nil {
			return
		}
		if len(topics) > wire.MaxConnTopics {
			t.Fatalf("%d topics", len(topics))
		}
		seen := map[string]bool{}
		for _, tp := range topics {
			if !wire.ValidTopic([]byte(tp)) || seen[tp] {
				t.Fatalf("%q gave %q", arg, topics)
			}
			seen[tp] = true
		}
		if len(arg) > 0 && len(topics) == 0 {
			t.Fatalf("%q gave no topics and no error", arg)
		}
	})
}
