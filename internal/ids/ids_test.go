package ids

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"123", 123, nil},
		{"0", 0, nil},
		{"-5", -5, nil},
		{"007", 7, nil},
		{"9223372036854775807", 9223372036854775807, nil},
		{"-9223372036854775808", -9223372036854775808, nil},
		{"9223372036854775808", 0, ErrRange},
		{"99999999999999999999999", 0, ErrRange},
		{"", 0, ErrEmpty},
		{"-", 0, ErrSyntax},
		{"+5", 0, ErrSyntax},
		{"abc", 0, ErrSyntax},
		{"12a", 0, ErrSyntax},
		{" 1", 0, ErrSyntax},
		{"1/", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{"1_000", 0, ErrSyntax},
		{"１", 0, ErrSyntax},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error has a newline: %q", tt.in, err)
		}
	}
}

// FuzzParse: never panics, agrees with strconv on what it accepts, and what
// it accepts formats back to the same number.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "-1", "+1", "", "9223372036854775808", "0x1", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") && !strings.ContainsAny(s, "\r\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		ref, rerr := strconv.ParseInt(s, 10, 64)
		if rerr != nil || ref != v {
			t.Fatalf("Parse(%q) = %d but strconv says %d, %v", s, v, ref, rerr)
		}
		back, _ := Parse(strconv.FormatInt(v, 10))
		if back != v {
			t.Fatalf("round trip %d -> %d", v, back)
		}
	})
}
