package ws

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
)

// Protocol is the subprotocol the gateway speaks (the client protocol of
// protocol.go); a client may ask for it in Sec-WebSocket-Protocol, or
// ask for none.
const Protocol = "comet.v1"

// UpgradeError is an upgrade request the gateway refuses: the HTTP status
// and a one-line reason.
type UpgradeError struct {
	Status int
	Reason string
}

func (e *UpgradeError) Error() string { return e.Reason }

// Upgrade is what a WebSocket upgrade request asks, as its headers say.
type Upgrade struct {
	Upgrade, Connection, Version, Key, Protocols []byte
}

// Check checks an upgrade request (RFC 6455 4.2.1) and returns the head
// lines of its answer: Sec-WebSocket-Accept, and Sec-WebSocket-Protocol
// if the client asked for Protocol. A request asking only for other
// subprotocols is refused (400), as is one without a 16-byte key; a
// version other than 13 gets 426 with the version the gateway speaks
// (the caller adds Sec-WebSocket-Version: 13).
func Check(u Upgrade) (head string, err *UpgradeError) {
	if !hasToken(u.Upgrade, "websocket") {
		return "", &UpgradeError{http.StatusBadRequest, "Upgrade: websocket missing: /ws/{id} is a WebSocket endpoint"}
	}
	if !hasToken(u.Connection, "upgrade") {
		return "", &UpgradeError{http.StatusBadRequest, "Connection: Upgrade missing"}
	}
	if string(bytes.TrimSpace(u.Version)) != "13" {
		return "", &UpgradeError{http.StatusUpgradeRequired, fmt.Sprintf("Sec-WebSocket-Version %q: this gateway speaks 13", clip(string(u.Version)))}
	}
	key := bytes.TrimSpace(u.Key)
	if k, err := base64.StdEncoding.DecodeString(string(key)); err != nil || len(k) != 16 {
		return "", &UpgradeError{http.StatusBadRequest, "Sec-WebSocket-Key is not 16 bytes in base64"}
	}
	head = "Sec-WebSocket-Accept: " + AcceptKey(key) + "\r\n"
	if len(bytes.TrimSpace(u.Protocols)) > 0 {
		if !hasToken(u.Protocols, Protocol) {
			return "", &UpgradeError{http.StatusBadRequest, fmt.Sprintf("Sec-WebSocket-Protocol %q: this gateway speaks %s (or ask for none)", clip(string(u.Protocols)), Protocol)}
		}
		head += "Sec-WebSocket-Protocol: " + Protocol + "\r\n"
	}
	return head, nil
}

// AcceptKey is the Sec-WebSocket-Accept of key.
func AcceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// AppendHandshake appends the 101 answer with the head lines head.
func AppendHandshake(b []byte, head string) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nServer: comet-gateway\r\n"...)
	b = append(b, head...)
	return append(b, "\r\n"...)
}

// hasToken reports whether the comma-separated header value v holds
// token t (ASCII case-insensitive).
func hasToken(v []byte, t string) bool {
	for _, part := range bytes.Split(v, []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(part), []byte(t)) {
			return true
		}
	}
	return false
}
