package gateway

import (
	"bytes"
	"net"
	"os"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/ids"
)

// The direct path: a chunked stream request (GET /test/{id}, nothing
// else in it that needs fasthttp) is read straight from the accepted
// socket and handed to the hub, without Go's poller, a goroutine or a
// request context. The listening socket defers accept until the request
// has arrived (TCP_DEFER_ACCEPT), so one read gets it. Every other
// request, and one that has not arrived yet, goes to fasthttp as usual,
// with the bytes already read in front of the connection.

var (
	getStream   = []byte("GET /test/")
	http11Tail  = []byte(" HTTP/1.1\r\n")
	http10Tail  = []byte(" HTTP/1.0\r\n")
	headEnd     = []byte("\r\n\r\n")
	crlf        = []byte("\r\n")
	hdrHost     = []byte("host")
	hdrLength   = []byte("content-length")
	hdrEncoding = []byte("transfer-encoding")
	hdrExpect   = []byte("expect")
)

// parseStreamRequest reports whether req is exactly one complete request
// that the direct path may serve: GET /test/{id} in HTTP/1.1 or 1.0, the
// id valid, no body and nothing after the head. Anything else (a bad id,
// a query, a body, more bytes) is left to fasthttp, which answers it.
func parseStreamRequest(req []byte) (id int64, http10, ok bool) {
	if !bytes.HasPrefix(req, getStream) || !bytes.HasSuffix(req, headEnd) {
		return 0, false, false
	}
	rest := req[len(getStream):]
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return 0, false, false
	}
	id, err := ids.Parse(string(rest[:sp]))
	if err != nil {
		return 0, false, false
	}
	switch line := rest[sp:]; {
	case bytes.HasPrefix(line, http11Tail):
	case bytes.HasPrefix(line, http10Tail):
		http10 = true
	default:
		return 0, false, false
	}
	head := rest[sp+len(http11Tail)-2:] // from the request line's CR LF
	if bytes.Index(head, headEnd) != len(head)-len(headEnd) {
		return 0, false, false // a second request after this one
	}
	valid, host := plainHeaders(head[2 : len(head)-2])
	if !valid || !http10 && !host {
		return 0, false, false // odd headers or a body; or HTTP/1.1 without Host, which fasthttp answers 400
	}
	return id, http10, true
}

// plainHeaders reports whether lines (header lines, each ended by CR LF)
// are plain "Name: value" lines: a token name, then a value without
// control characters, none announcing a body (Content-Length,
// Transfer-Encoding, Expect); anything unusual goes to fasthttp. And it
// reports whether one of them is a Host with a plain host[:port] value.
func plainHeaders(lines []byte) (valid, host bool) {
	for len(lines) > 0 {
		end := bytes.Index(lines, crlf)
		if end <= 0 {
			return false, false
		}
		line := lines[:end]
		lines = lines[end+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false, false
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if !isTokenChar(c) {
				return false, false
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false, false
			}
		}
		switch {
		case bytes.EqualFold(name, hdrLength), bytes.EqualFold(name, hdrEncoding), bytes.EqualFold(name, hdrExpect):
			return false, false
		case bytes.EqualFold(name, hdrHost):
			h := bytes.Trim(value, " \t")
			if host || len(h) == 0 || !plainHost(h) {
				return false, false // empty, repeated or odd: fasthttp's call
			}
			host = true
		}
	}
	return true, host
}

// plainHost reports whether h is name[:port] or [v6 address][:port].
func plainHost(h []byte) bool {
	name := h
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && (h[0] != '[' || i > bytes.IndexByte(h, ']')) {
		port := h[i+1:]
		if len(port) == 0 || len(port) > 5 {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
		name = h[:i]
	}
	if len(name) == 0 {
		return false
	}
	if name[0] == '[' {
		if len(name) < 3 || name[len(name)-1] != ']' {
			return false
		}
		for _, c := range name[1 : len(name)-1] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
		return true
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// direct takes an accepted socket: a stream request goes to the hub and
// direct returns nil; anything else comes back as a net.Conn for
// fasthttp (nil too if the socket is already gone).
func (g *Gateway) direct(fd int, buf []byte) net.Conn {
	n, err := unix.Read(fd, buf)
	if n > 0 {
		if id, http10, ok := parseStreamRequest(buf[:n]); ok {
			if err := g.hub.OpenFD(fd, hub.Request{Kind: kindStream, ID: id, HTTP10: http10}); err != nil {
				g.log.Warn("stream not opened", zap.Int64("id", id), zap.Error(err))
			}
			return nil
		}
	} else if n == 0 || err != unix.EAGAIN && err != unix.EINTR {
		unix.Close(fd) // closed or reset before it said anything
		return nil
	}
	c := g.fdConn(fd)
	if c == nil {
		return nil
	}
	if n > 0 {
		return &prefixConn{Conn: c, prefix: append([]byte(nil), buf[:n]...)}
	}
	return c
}

// fdConn makes a socket the gateway owns as a raw descriptor (the direct
// path's fallback, a long-poll handed back) a net.Conn for fasthttp, or
// nil if it cannot (fd is closed either way). net.FileConn sets Go's
// default keep-alive (probes after 15 s) over what the socket inherited
// from the listening socket, so the gateway's is put back.
func (g *Gateway) fdConn(fd int) net.Conn {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		g.log.Warn("connection lost taking it back from a raw descriptor", zap.Error(err))
		return nil
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if g.cfg.TCPKeepAlive <= 0 {
			tc.SetKeepAlive(false)
		} else {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: g.cfg.TCPKeepAlive, Interval: keepAliveInterval, Count: keepAliveCount})
		}
	}
	return c
}

// prefixConn gives fasthttp the bytes the direct path read before the
// rest of the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// SyscallConn lets a hijacked prefixConn give up its socket (the hub's
// takeFD), as the connection under it would.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}
