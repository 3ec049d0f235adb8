package gateway

import (
	"bytes"
	"errors"

	"github.com/cometgw/comet/internal/ids"
)

// route is what a request path names.
type route uint8

const (
	routeNotFound route = iota
	routeIndex          // "/"
	routeStream         // "/test/{id}"
	routePoll           // "/poll/{id}"
	routeSSE            // "/sse/{id}"
	routeDemo           // "/demo"
	routeWS             // "/ws/{id}"
)

var errWrongKind = errors.New("gateway: frame of the wrong kind on the down subject")

var idRoutes = []struct {
	prefix []byte
	route  route
}{
	{[]byte("/test/"), routeStream},
	{[]byte("/poll/"), routePoll},
	{[]byte("/sse/"), routeSSE},
	{[]byte("/ws/"), routeWS},
}

// parseRoute maps a (normalized) request path to its route and, for a
// client route, its id. A client path with a bad id returns its route and
// the error, which the handler answers with 400.
func parseRoute(path []byte) (route, int64, error) {
	switch {
	case len(path) == 1 && path[0] == '/':
		return routeIndex, 0, nil
	case string(path) == "/demo":
		return routeDemo, 0, nil
	}
	for _, r := range idRoutes {
		if bytes.HasPrefix(path, r.prefix) {
			id, err := ids.Parse(string(path[len(r.prefix):]))
			return r.route, id, err
		}
		if bytes.Equal(path, r.prefix[:len(r.prefix)-1]) {
			return r.route, 0, ids.ErrEmpty
		}
	}
	return routeNotFound, 0, nil
}
