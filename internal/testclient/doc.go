// Package testclient is the HTTP stream client the tests share: a real TCP
// connection that sends GET /test/{id} and reads the chunked response chunk
// by chunk, checking the framing.
package testclient
