// Package chunked is the comet stream of the original series, GET
// /test/{id}: an HTML page that never ends, one HTTP/1.1 chunk per
// message ("Recvd msg #N: 'MSG'<br/>"), and the chunk framing that the
// SSE stream uses too.
//
// Stream is its hub.Kind; framing.go has the chunk and message formats.
// The client side of chunked bodies (a parser) is package chunkparse.
package chunked
