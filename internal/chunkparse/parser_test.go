package chunkparse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/cometgw/comet/internal/chunked"
)

func feedAll(t testing.TB, in []byte, step int) ([]string, *Parser, error) {
	t.Helper()
	var p Parser
	var out []string
	for len(in) > 0 {
		n := min(step, len(in))
		if err := p.Feed(in[:n], func(d []byte) { out = append(out, string(d)) }); err != nil {
			return out, &p, err
		}
		in = in[n:]
	}
	return out, &p, nil
}

func TestParser(t *testing.T) {
	body := string(chunked.AppendChunk(nil, []byte("hello"))) + string(chunked.AppendChunk(nil, []byte(strings.Repeat("z", 300)))) + chunked.LastChunk
	tests := []struct {
		name   string
		in     string
		chunks []string
		done   bool
		err    error
	}{
		{"two chunks and end", body, []string{"hello", strings.Repeat("z", 300)}, true, nil},
		{"extension", "3;name=v\r\nabc\r\n0\r\n\r\n", []string{"abc"}, true, nil},
		{"trailer", "1\r\na\r\n0\r\nX-T: 1\r\n\r\n", []string{"a"}, true, nil},
		{"unfinished", "5\r\nhel", nil, false, nil},
		{"upper hex", "A\r\n0123456789\r\n", []string{"0123456789"}, false, nil},
		{"bad size", "xyz\r\n", nil, false, ErrChunkSize},
		{"empty size", "\r\n", nil, false, ErrChunkSize},
		{"missing LF", "1\rx", nil, false, ErrChunkSize},
		{"no CRLF after data", "1\r\nab", []string{"a"}, false, ErrChunkCRLF},
		{"too large", "fffffff\r\n", nil, false, ErrChunkTooLarge},
		{"after end", "0\r\n\r\nx", nil, true, ErrAfterEnd},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 2, 7, 1 << 20} {
			got, p, err := feedAll(t, []byte(tt.in), step)
			if !errors.Is(err, tt.err) {
				t.Errorf("%s/step=%d: err = %v, want %v", tt.name, step, err, tt.err)
				continue
			}
			if strings.Join(got, "|") != strings.Join(tt.chunks, "|") {
				t.Errorf("%s/step=%d: chunks = %q, want %q", tt.name, step, got, tt.chunks)
			}
			if p.Done() != tt.done {
				t.Errorf("%s/step=%d: done = %v", tt.name, step, p.Done())
			}
		}
	}
}

// FuzzParser feeds arbitrary bytes in arbitrary steps: the parser never
// panics, gives the same chunks whatever the steps, and whatever it accepts
// as a complete body net/http's chunked reader decodes to the same data.
func FuzzParser(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("3;x=y\r\nabc\r\n0\r\nA: b\r\n\r\n"), uint8(2))
	f.Add(chunked.AppendChunk(nil, []byte("Recvd msg #1: 'x'<br/>\n")), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		whole, p1, err1 := feedAll(t, in, len(in)+1)
		parts, _, err2 := feedAll(t, in, int(step)+1)
		if (err1 == nil) != (err2 == nil) || strings.Join(whole, "\x00") != strings.Join(parts, "\x00") {
			t.Fatalf("step changes the result: %q %v vs %q %v", whole, err1, parts, err2)
		}
		if err1 != nil || !p1.Done() {
			return
		}
		ref, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(in))))
		if err != nil {
			t.Fatalf("parser accepted what net/http rejects: %v", err)
		}
		if string(ref) != strings.Join(whole, "") {
			t.Fatalf("data differs: ours %q, net/http %q", strings.Join(whole, ""), ref)
		}
	})
}
