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
	routeDemo           // "/demo"
	routeLibrary        // "/comet.js"
	routeClient         // the first client route: routeClient+kind is clientKinds[kind]'s
)

// The client routes, one per kind (clientKinds).
const (
	routeStream = routeClient + kindStream // "/test/{id}"
	routeSSE    = routeClient + kindSSE    // "/sse/{id}"
	routePoll   = routeClient + kindPoll   // "/poll/{id}"
	routeWS     = routeClient + kindWS     // "/ws/{id}"
)

// kind is the kind of client a client route serves (rt >= routeClient).
func (rt route) kind() int { return int(rt - routeClient) }

var errWrongKind = errors.New("gateway: frame of the wrong kind on the down subject")

// parseRoute maps a (normalized) request path to its route and, for a
// client route, its id. A client path with a bad id returns its route and
// the error, which the handler answers with 400.
func parseRoute(path []byte) (route, int64, error) {
	switch {
	case len(path) == 1 && path[0] == '/':
		return routeIndex, 0, nil
	case string(path) == "/demo":
		return routeDemo, 0, nil
	case string(path) == "/comet.js":
		return routeLibrary, 0, nil
	}
	for k, c := range clientKinds {
		if bytes.HasPrefix(path, []byte(c.prefix)) {
			id, err := ids.Parse(string(path[len(c.prefix):]))
			return routeClient + route(k), id, err
		}
		if string(path) == c.prefix[:len(c.prefix)-1] {
			return routeClient + route(k), 0, ids.ErrEmpty
		}
	}
	return routeNotFound, 0, nil
}
