package ids

import (
	"errors"
	"fmt"
	"strconv"
)

// Parse errors; the error text is one line fit for a 400 response.
var (
	ErrEmpty  = errors.New("ids: empty id")
	ErrSyntax = errors.New("ids: not a decimal integer")
	ErrRange  = errors.New("ids: out of the int64 range")
)

// Parse parses s as an id: an optional '-' and 1 to 19 decimal digits
// within the int64 range. No '+', spaces, hex or other bases.
func Parse(s string) (int64, error) {
	if s == "" {
		return 0, ErrEmpty
	}
	digits := s
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, clip(s))
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w: %q", ErrSyntax, clip(s))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrRange, clip(s))
	}
	return v, nil
}

// clip bounds how much of a bad id is echoed back.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
