package cursor

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Cursor
		err  error
	}{
		{"", Cursor{}, nil},
		{"1-0", Cursor{1, 0}, nil},
		{"abcdef0123456789-18446744073709551615", Cursor{0xabcdef0123456789, 18446744073709551615}, nil},
		{"ABC-7", Cursor{0xabc, 7}, nil},
		{"0-5", Cursor{}, ErrEpoch},
		{"-5", Cursor{}, ErrForm},
		{"5-", Cursor{}, ErrForm},
		{"5", Cursor{}, ErrForm},
		{"g-1", Cursor{}, ErrEpoch},
		{"+1-1", Cursor{}, ErrEpoch},
		{"1abcdef01234567890-1", Cursor{}, ErrEpoch},
		{"1-18446744073709551616", Cursor{}, ErrSeq},
		{"1--1", Cursor{}, ErrSeq},
		{"1-1-1", Cursor{}, ErrSeq},
		{"1-+1", Cursor{}, ErrSeq},
		{"1- 1", Cursor{}, ErrSeq},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != strings.ToLower(tt.in) {
			t.Errorf("%q formats back as %q", tt.in, got.String())
		}
	}
}

// FuzzCursor: no input crashes the parser; what parses formats back into
// something that parses to the same cursor.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"", "1-0", "ff-9", "0-0", "1-", "x", "1-99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(c.String())
		if err != nil || back != c {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, c, c.String(), back, err)
		}
	})
}
