// Package ws is the WebSocket kind of session, GET /ws/{id} (RFC 6455):
// an upgraded connection on the hub's raw-descriptor path, with no
// goroutine and no buffer while it is idle, that gets a text frame per
// message carrying the message's position, resumes like an EventSource
// stream (?cursor=, and missed when messages are gone), and takes a small
// protocol of client frames (publish, send, join, leave; protocol.go).
//
// frame.go reads client frames and writes server frames, handshake.go
// checks an upgrade request and answers it, kind.go is the hub.Kind.
package ws
