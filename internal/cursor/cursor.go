package cursor

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

// Errors of Parse.
var (
	ErrForm  = errors.New("cursor: must look like 1a2b3c-42 (hex epoch, dash, decimal position)")
	ErrEpoch = errors.New("cursor: epoch must be 1 to 16 hex digits, not zero")
	ErrSeq   = errors.New("cursor: position must be a decimal number below 2^64")
)

// Parse parses the text form written by Cursor.Append. The empty
// string is the zero Cursor.
func Parse(s string) (Cursor, error) {
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
		return Cursor{}, ErrForm
	}
	es, ss := s[:dash], s[dash+1:]
	if len(es) > 16 || !allDigits(es, true) {
		return Cursor{}, ErrEpoch
	}
	epoch, err := strconv.ParseUint(es, 16, 64)
	if err != nil || epoch == 0 {
		return Cursor{}, ErrEpoch
	}
	if len(ss) > 20 || !allDigits(ss, false) {
		return Cursor{}, ErrSeq
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil {
		return Cursor{}, ErrSeq
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
