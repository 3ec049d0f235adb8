package ws

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Close codes (RFC 6455 section 7.4.1) the gateway sends.
const (
	CloseNormal      uint16 = 1000
	CloseGoingAway   uint16 = 1001
	CloseProtocol    uint16 = 1002
	CloseUnsupported uint16 = 1003
	CloseNoStatus    uint16 = 1005 // never sent: a close frame without a code
	CloseInvalidData uint16 = 1007
	ClosePolicy      uint16 = 1008
	CloseTooBig      uint16 = 1009
	CloseInternal    uint16 = 1011
	CloseRestart     uint16 = 1012 // service restart: come back (to another process, or this one restarted)
	CloseTryLater    uint16 = 1013
)

// Error is a client's breach of the protocol: the connection is closed
// with Code, and Reason (at most 123 bytes) in the close frame.
type Error struct {
	Code   uint16
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("ws: %d %s", e.Code, e.Reason) }

func protoErr(format string, args ...any) *Error {
	return &Error{Code: CloseProtocol, Reason: fmt.Sprintf(format, args...)}
}

// Frame is one frame a client sent: its payload unmasked, in place in
// the input it was read from.
type Frame struct {
	Fin     bool
	Op      byte
	Payload []byte
}

// MaxHeader is the longest frame header: 2 bytes, 8 of length, 4 of mask.
const MaxHeader = 14

// ParseFrame reads the client frame at the start of p and unmasks its
// payload in place. n is the bytes it took; n == 0 with a nil error means
// p holds only part of a frame (read more). A frame whose payload passes
// maxPayload is an error (1009) as soon as its header is read, so a
// client cannot make the gateway hold more than maxPayload + MaxHeader of
// one frame.
//
// Client frames must be masked; reserved bits (no extension is
// negotiated), unknown opcodes, fragmented or long control frames are
// errors (1002).
func ParseFrame(p []byte, maxPayload int) (f Frame, n int, err *Error) {
	if len(p) < 2 {
		return f, 0, nil
	}
	b0, b1 := p[0], p[1]
	f.Fin = b0&0x80 != 0
	f.Op = b0 & 0x0F
	if b0&0x70 != 0 {
		return f, 0, protoErr("reserved bits set")
	}
	switch f.Op {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !f.Fin {
			return f, 0, protoErr("fragmented control frame")
		}
	default:
		return f, 0, protoErr("unknown opcode %d", f.Op)
	}
	if b1&0x80 == 0 {
		return f, 0, protoErr("client frame not masked")
	}
	hl := 2
	length := uint64(b1 & 0x7F)
	switch length {
	case 126:
		if len(p) < 4 {
			return f, 0, nil
		}
		length, hl = uint64(binary.BigEndian.Uint16(p[2:])), 4
	case 127:
		if len(p) < 10 {
			return f, 0, nil
		}
		length, hl = binary.BigEndian.Uint64(p[2:]), 10
		if length>>63 != 0 {
			return f, 0, protoErr("frame length has its high bit set")
		}
	}
	if f.Op >= OpClose && length > 125 {
		return f, 0, protoErr("control frame longer than 125 bytes")
	}
	if length > uint64(maxPayload) {
		return f, 0, &Error{Code: CloseTooBig, Reason: fmt.Sprintf("frame of %d bytes; at most %d", length, maxPayload)}
	}
	if len(p) < hl+4+int(length) {
		return f, 0, nil
	}
	mask := p[hl : hl+4]
	f.Payload = p[hl+4 : hl+4+int(length)]
	Unmask(f.Payload, [4]byte(mask), 0)
	return f, hl + 4 + int(length), nil
}

// Unmask xors p with the mask, starting at offset off of the masking
// key's cycle.
func Unmask(p []byte, mask [4]byte, off int) {
	if len(p) >= 8 {
		// Eight bytes at a time, the key rotated to off.
		var k [8]byte
		for i := range k {
			k[i] = mask[(off+i)&3]
		}
		k8 := binary.LittleEndian.Uint64(k[:])
		for len(p) >= 8 {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k8)
			p = p[8:]
		}
	}
	for i := range p {
		p[i] ^= mask[(off+i)&3]
	}
}

// AppendFrame appends a server frame (final, unmasked) of op holding
// payload.
func AppendFrame(b []byte, op byte, payload []byte) []byte {
	b = AppendHeader(b, op, len(payload))
	return append(b, payload...)
}

// AppendHeader appends the header of a final, unmasked server frame of
// op whose payload is n bytes.
func AppendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// AppendClientFrame appends a client's frame (what a browser sends):
// first byte b0 (FIN and opcode), the payload masked with mask (a zero
// mask leaves it as is). For clients and tests; the gateway's own frames
// are AppendFrame's.
func AppendClientFrame(b []byte, b0 byte, payload []byte, mask [4]byte) []byte {
	b = append(b, b0)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	if mask != [4]byte{} {
		Unmask(b[start:], mask, 0)
	}
	return b
}

// AppendClose appends a close frame with code and reason (clipped to the
// 123 bytes a control frame leaves, on a UTF-8 boundary).
func AppendClose(b []byte, code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b = AppendHeader(b, OpClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, reason...)
}

// ParseClose reads a close frame's payload: its code (CloseNoStatus if
// it has none) or an error for a payload of one byte, a code no endpoint
// may send (1002), or a reason that is not UTF-8 (1007).
func ParseClose(p []byte) (uint16, *Error) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, nil
	case len(p) == 1:
		return 0, protoErr("close frame of 1 byte")
	}
	code := binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return 0, protoErr("close code %d", code)
	}
	if !utf8.Valid(p[2:]) {
		return 0, &Error{Code: CloseInvalidData, Reason: "close reason is not UTF-8"}
	}
	return code, nil
}

// validCloseCode: the codes an endpoint may send in a close frame
// (RFC 6455 7.4, and the IANA registry's 1012 to 1014).
func validCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}
