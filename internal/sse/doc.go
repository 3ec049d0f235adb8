// Package sse is the EventSource kind of session, GET /sse/{id}: a
// text/event-stream in chunks, one event per message whose id is the
// message's cursor, so that a browser's EventSource resumes by itself
// (Last-Event-ID) after a cut.
//
// Stream is its hub.Kind; event.go has the event format and the response
// heads.
package sse
