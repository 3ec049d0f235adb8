// Package longpoll holds what resumable clients (long-poll and SSE) need:
// cursors, the router's retention window of every id's recent messages,
// and the encodings of the long-poll answer.
//
// Every message sent to an id that has a resumable client gets a position
// (Epoch, Seq) in that id's sequence: Seq counts from 1, and Epoch names
// one life of the id's history, so that a history that was lost (the
// router restarted, or the id was idle past its grace period) never
// passes for one that was kept.
package longpoll

import (
	"errors"
	"strconv"
)

// Cursor is a position in an id's message sequence: the last message a
// client has. The zero Cursor means "none: start from now".
type Cursor struct {
	Epoch uint64
	Seq   uint64
}

// IsZero reports whether c is the zero Cursor.
func (c Cursor) IsZero() bool { return c.Epoch == 0 }

// Append appends c's text form, "<epoch in hex>-<seq in decimal>", or
// nothing for the zero Cursor.
func (c Cursor) Append(b []byte) []byte {
	if c.IsZero() {
		return b
	}
	b = strconv.AppendUint(b, c.Epoch, 16)
	b = append(b, '-')
	return strconv.AppendUint(b, c.Seq, 10)
}

func (c Cursor) String() string { return string(c.Append(nil)) }

// Errors of ParseCursor.
var (
	ErrCursorForm  = errors.New("longpoll: cursor must look like 1a2b3c-42 (hex epoch, dash, decimal position)")
	ErrCursorEpoch = errors.New("longpoll: cursor epoch must be 1 to 16 hex digits, not zero")
	ErrCursorSeq   = errors.New("longpoll: cursor position must be a decimal number below 2^64")
)

// ParseCursor parses the text form written by Cursor.Append. The empty
// string is the zero Cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	dash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			dash = i
			break
		}
	}
	if dash <= 0 || dash == len(s)-1 {
		return Cursor{}, ErrCursorForm
	}
	es, ss := s[:dash], s[dash+1:]
	if len(es) > 16 || !allDigits(es, true) {
		return Cursor{}, ErrCursorEpoch
	}
	epoch, err := strconv.ParseUint(es, 16, 64)
	if err != nil || epoch == 0 {
		return Cursor{}, ErrCursorEpoch
	}
	if len(ss) > 20 || !allDigits(ss, false) {
		return Cursor{}, ErrCursorSeq
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil {
		return Cursor{}, ErrCursorSeq
	}
	return Cursor{Epoch: epoch, Seq: seq}, nil
}

func allDigits(s string, hex bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}
