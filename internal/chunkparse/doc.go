// Package chunkparse is the client side of HTTP/1.1 chunked bodies: an
// incremental Parser, 24 bytes per stream, that floodtest keeps for every
// client it holds and the test client for its one stream. It checks the
// framing strictly (it is fuzzed against net/http's own chunked reader).
package chunkparse
