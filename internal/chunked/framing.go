package chunked

import (
	"strconv"
)

// AppendChunk appends one HTTP/1.1 chunk holding the concatenation of
// parts: the size in hex, CRLF, the data, CRLF. A chunk with no data would
// end the body, so AppendChunk with empty parts appends nothing.
func AppendChunk(b []byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return b
	}
	b = strconv.AppendUint(b, uint64(n), 16)
	b = append(b, '\r', '\n')
	for _, p := range parts {
		b = append(b, p...)
	}
	return append(b, '\r', '\n')
}

// LastChunk ends a chunked body (no trailers).
const LastChunk = "0\r\n\r\n"

// AppendHTMLEscaped appends s with &, <, >, " and ' replaced by entities
// (the same set as html.EscapeString).
func AppendHTMLEscaped(b, s []byte) []byte {
	last := 0
	for i, c := range s {
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}

// The HTML format: what the original's feed/3 wrote for every message.
var (
	htmlMsgPrefix = []byte("Recvd msg #")
	htmlMsgMiddle = []byte(": '")
	htmlMsgSuffix = []byte("'<br/>\n")
)

// AppendHTMLMessage appends the body of message number n in the HTML
// format, `Recvd msg #N: 'MSG'<br/>` and a newline, where escaped is the
// message already HTML-escaped.
func AppendHTMLMessage(b []byte, n uint64, escaped []byte) []byte {
	b = append(b, htmlMsgPrefix...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, htmlMsgMiddle...)
	b = append(b, escaped...)
	return append(b, htmlMsgSuffix...)
}

// AppendWelcome appends the body of the first chunk of a stream.
func AppendWelcome(b []byte, id int64) []byte {
	b = append(b, "Comet gateway welcomes you! Your Id: "...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, "<br/>\n"...)
}

// StreamHeader is the response head of a chunked HTML stream.
const StreamHeader = "HTTP/1.1 200 OK\r\n" +
	"Server: comet-gateway\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"\r\n"

// StreamHeader10 is the response head for an HTTP/1.0 client, which has no
// chunked encoding: the body is the messages themselves, ended by closing
// the connection.
const StreamHeader10 = "HTTP/1.0 200 OK\r\n" +
	"Server: comet-gateway\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Connection: close\r\n" +
	"\r\n"
