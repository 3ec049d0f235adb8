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
)

var errWrongKind = errors.New("gateway: frame of the wrong kind on the down subject")

var streamPrefix = []byte("/test/")

// parseRoute maps a (normalized) request path to its route and, for a
// stream, its id. A stream path with a bad id returns routeStream and the
// error, which the handler answers with 400.
func parseRoute(path []byte) (route, int64, error) {
	switch {
	case len(path) == 1 && path[0] == '/':
		return routeIndex, 0, nil
	case bytes.HasPrefix(path, streamPrefix):
		id, err := ids.Parse(string(path[len(streamPrefix):]))
		return routeStream, id, err
	case bytes.Equal(path, streamPrefix[:len(streamPrefix)-1]):
		return routeStream, 0, ids.ErrEmpty
	}
	return routeNotFound, 0, nil
}
