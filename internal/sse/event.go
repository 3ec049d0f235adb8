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

// Header is the response head of an EventSource stream.
const Header = "HTTP/1.1 200 OK\r\n" +
	"Server: comet-gateway\r\n" +
	"Content-Type: text/event-stream; charset=utf-8\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"\r\n"

// Header10 is Header for an HTTP/1.0 client: no chunked encoding,
// the body ends when the connection closes.
const Header10 = "HTTP/1.0 200 OK\r\n" +
	"Server: comet-gateway\r\n" +
	"Content-Type: text/event-stream; charset=utf-8\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Connection: close\r\n" +
	"\r\n"
