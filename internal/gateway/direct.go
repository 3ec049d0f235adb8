package gateway

import (
	"bytes"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/peerlimit"
	"github.com/cometgw/comet/internal/ws"
)

// The direct path: a chunked stream request (GET /test/{id}, nothing
// else in it that needs fasthttp), or a WebSocket upgrade (GET /ws/{id}
// with a valid upgrade, no query, no Origin, no client tokens), is read
// straight from the accepted socket and handed to the hub, without Go's
// poller, a goroutine or a request context. The listening socket defers accept until the request
// has arrived (TCP_DEFER_ACCEPT), so one read gets it. Every other
// request, and one that has not arrived yet, goes to fasthttp as usual,
// with the bytes already read in front of the connection. With client
// tokens, a request whose Authorization: Bearer token is valid for its
// id (and that has no Origin to check) is served here too; any other,
// token elsewhere or none or invalid, goes to fasthttp, which answers
// or refuses it.

var (
	getStream   = []byte("GET /test/")
	getWS       = []byte("GET /ws/")
	http11Tail  = []byte(" HTTP/1.1\r\n")
	http10Tail  = []byte(" HTTP/1.0\r\n")
	headEnd     = []byte("\r\n\r\n")
	crlf        = []byte("\r\n")
	hdrHost     = []byte("host")
	hdrLength   = []byte("content-length")
	hdrEncoding = []byte("transfer-encoding")
	hdrExpect   = []byte("expect")
	hdrAuthz    = []byte("authorization")
	hdrOrigin   = []byte("origin")
	hdrUpgrade  = []byte("upgrade")
	hdrConn     = []byte("connection")
	hdrWSVer    = []byte("sec-websocket-version")
	hdrWSKey    = []byte("sec-websocket-key")
	hdrWSProto  = []byte("sec-websocket-protocol")
)

// streamRequest is what the direct path takes from a request.
type streamRequest struct {
	id     int64
	ws     bool // GET /ws/{id}: up holds its upgrade headers
	http10 bool
	authz  []byte // the Authorization header's value, if any
	origin bool   // it has an Origin header
	up     ws.Upgrade
}

// parseStreamRequest reports whether req is exactly one complete request
// that the direct path may serve: GET /test/{id} in HTTP/1.1 or 1.0, or
// GET /ws/{id} in HTTP/1.1, the id valid, no body and nothing after the
// head. Anything else (a bad id, a query, a body, more bytes) is left to
// fasthttp, which answers it. An upgrade's headers are noted, not
// checked (ws.Check).
func parseStreamRequest(req []byte) (r streamRequest, ok bool) {
	if !bytes.HasSuffix(req, headEnd) {
		return r, false
	}
	var rest []byte
	switch {
	case bytes.HasPrefix(req, getStream):
		rest = req[len(getStream):]
	case bytes.HasPrefix(req, getWS):
		rest, r.ws = req[len(getWS):], true
	default:
		return r, false
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return r, false
	}
	id, err := ids.Parse(string(rest[:sp]))
	if err != nil {
		return r, false
	}
	r.id = id
	switch line := rest[sp:]; {
	case bytes.HasPrefix(line, http11Tail):
	case bytes.HasPrefix(line, http10Tail) && !r.ws:
		r.http10 = true
	default:
		return r, false
	}
	head := rest[sp+len(http11Tail)-2:] // from the request line's CR LF
	if bytes.Index(head, headEnd) != len(head)-len(headEnd) {
		return r, false // a second request after this one
	}
	valid, host := plainHeaders(head[2:len(head)-2], &r)
	if !valid || !r.http10 && !host {
		return r, false // odd headers or a body; or HTTP/1.1 without Host, which fasthttp answers 400
	}
	return r, true
}

// plainHeaders reports whether lines (header lines, each ended by CR LF)
// are plain "Name: value" lines: a token name, then a value without
// control characters, none announcing a body (Content-Length,
// Transfer-Encoding, Expect); anything unusual goes to fasthttp. And it
// reports whether one of them is a Host with a plain host[:port] value.
// It notes an Authorization (one) and an Origin in r, and the upgrade
// headers of a WebSocket request (one each).
func plainHeaders(lines []byte, r *streamRequest) (valid, host bool) {
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
		case bytes.EqualFold(name, hdrAuthz):
			if r.authz != nil {
				return false, false
			}
			r.authz = bytes.Trim(value, " \t")
		case bytes.EqualFold(name, hdrOrigin):
			r.origin = true
		case r.ws:
			if !noteUpgrade(&r.up, name, value) {
				return false, false
			}
		}
	}
	return true, host
}

// noteUpgrade keeps a WebSocket upgrade header's value in u; false if it
// is there twice (fasthttp's to answer, it joins or picks).
func noteUpgrade(u *ws.Upgrade, name, value []byte) bool {
	var f *[]byte
	switch {
	case bytes.EqualFold(name, hdrUpgrade):
		f = &u.Upgrade
	case bytes.EqualFold(name, hdrConn):
		f = &u.Connection
	case bytes.EqualFold(name, hdrWSVer):
		f = &u.Version
	case bytes.EqualFold(name, hdrWSKey):
		f = &u.Key
	case bytes.EqualFold(name, hdrWSProto):
		f = &u.Protocols
	default:
		return true
	}
	if *f != nil {
		return false
	}
	*f = bytes.Trim(value, " \t")
	return true
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

// direct takes an accepted socket (counted as peer in the per-address
// limits): a stream request goes to the hub and direct returns nil;
// anything else comes back as a net.Conn for fasthttp (nil too if the
// socket is already gone).
func (g *Gateway) direct(fd int, peer peerlimit.Ref, buf []byte) net.Conn {
	n, err := unix.Read(fd, buf)
	if n > 0 {
		if r, ok := parseStreamRequest(buf[:n]); ok {
			if r.ws {
				if g.directWS(fd, peer, r) {
					return nil
				}
			} else if exp, ok := g.directAccess(r); ok {
				if err := g.hub.OpenFD(fd, hub.Request{Kind: kindStream, ID: r.id, HTTP10: r.http10, Expires: exp, Peer: uint32(peer)}); err != nil {
					g.log.Warn("stream not opened", zap.Int64("id", r.id), zap.Error(err))
				}
				return nil
			}
		}
	} else if n == 0 || err != unix.EAGAIN && err != unix.EINTR {
		unix.Close(fd) // closed or reset before it said anything
		g.release(peer)
		return nil
	}
	var prefix []byte
	if n > 0 {
		prefix = append([]byte(nil), buf[:n]...)
	}
	return g.clientConn(fd, peer, prefix)
}

// directWS opens a WebSocket for an upgrade the direct path read, if it
// may: without client tokens, with no Origin to check, a valid upgrade
// (any other is fasthttp's to answer or refuse, see handleWS). It
// grants what handleWS grants a client without tokens.
func (g *Gateway) directWS(fd int, peer peerlimit.Ref, r streamRequest) bool {
	if g.access.verifier != nil || r.origin {
		return false
	}
	head, uerr := ws.Check(r.up)
	if uerr != nil {
		return false
	}
	req := hub.Request{Kind: kindWS, ID: r.id, Head: head, Perm: g.wsPerm(true), Peer: uint32(peer)}
	if err := g.hub.OpenFD(fd, req); err != nil {
		g.log.Warn("WebSocket not opened", zap.Int64("id", r.id), zap.Error(err))
	}
	return true
}

// directAccess lets a direct stream request in if it has no Origin to
// check (one that has goes to fasthttp, where access.check decides it as
// it decides every request): without client tokens, always; with them,
// if its Bearer token is good for its id.
func (g *Gateway) directAccess(r streamRequest) (time.Time, bool) {
	if r.origin {
		return time.Time{}, false
	}
	if g.access.verifier == nil {
		return time.Time{}, true
	}
	if r.authz == nil {
		return time.Time{}, false
	}
	return g.access.verifyDirect(r.authz, r.id)
}

// release gives back a connection's count in the per-address limits.
func (g *Gateway) release(peer peerlimit.Ref) {
	if g.peers != nil {
		g.peers.Release(peer)
	}
}

// clientConn makes a socket the gateway owns as a raw descriptor a
// net.Conn for fasthttp (see fdConn), with prefix (bytes already read)
// in front and the connection's peer count; nil if it cannot (fd and
// the count are then given up).
func (g *Gateway) clientConn(fd int, peer peerlimit.Ref, prefix []byte) net.Conn {
	c := g.fdConn(fd)
	if c == nil {
		g.release(peer)
		return nil
	}
	if prefix == nil && peer == 0 {
		return c
	}
	cc := &clientConn{Conn: c, prefix: prefix, peers: g.peers}
	cc.peer.Store(uint32(peer))
	return cc
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

// clientConn is a client connection as fasthttp gets it from the
// gateway: the bytes the direct path read before the rest of it, and its
// count in the per-address limits, given back when it closes, unless the
// hub took it over with the socket (takePeer).
type clientConn struct {
	net.Conn
	prefix []byte
	peer   atomic.Uint32
	peers  *peerlimit.Table
}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *clientConn) Close() error {
	if p := c.peer.Swap(0); p != 0 {
		c.peers.Release(peerlimit.Ref(p))
	}
	return c.Conn.Close()
}

// SyscallConn lets a hijacked clientConn give up its socket (the hub's
// takeFD), as the connection under it would.
func (c *clientConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// takePeer takes a hijacked connection's peer count, which the hub
// keeps with the session from then on (hub.Request.Peer).
func takePeer(c net.Conn) uint32 {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	if cc, ok := c.(*clientConn); ok {
		return cc.peer.Swap(0)
	}
	return 0
}
