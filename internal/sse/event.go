package sse

// AppendEvent appends one text/event-stream event: an `id:` line with
// id (if any), then msg as `data:` lines, one per line of msg (CR LF, CR
// and LF all end a line, as EventSource reads them), then the blank line
// that dispatches the event. An empty msg is one empty data line.
func AppendEvent(b, id, msg []byte) []byte {
	if len(id) > 0 {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	start := 0
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c == '\n' || c == '\r' {
			b = append(b, "data: "...)
			b = append(b, msg[start:i]...)
			b = append(b, '\n')
			if c == '\r' && i+1 < len(msg) && msg[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	b = append(b, "data: "...)
	b = append(b, msg[start:]...)
	return append(b, '\n', '\n')
}

// The response head of an EventSource stream: the status line and
// these lines, the CORS lines the gateway is configured with, then the
// transfer lines (HTTP/1.1: chunked encoding; HTTP/1.0: none, the body
// ends when the connection closes).
const (
	status11  = "HTTP/1.1 200 OK\r\n"
	status10  = "HTTP/1.0 200 OK\r\n"
	headLines = "Server: comet-gateway\r\n" +
		"Content-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache, no-store\r\n"
	tail11 = "Transfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n\r\n"
	tail10 = "Connection: close\r\n\r\n"
)

// AppendHead appends the response head of an EventSource stream with the
// header lines cors (each ended by CR LF; may be empty).
func AppendHead(b []byte, cors string, http10 bool) []byte {
	if http10 {
		return append(append(append(append(b, status10...), headLines...), cors...), tail10...)
	}
	return append(append(append(append(b, status11...), headLines...), cors...), tail11...)
}
