package flood

import (
	"bytes"
	"testing"
)

// TestLastIndex: the backward scan agrees with bytes.LastIndex, marks
// at either end, repeated, overlapping or missing included.
func TestLastIndex(t *testing.T) {
	for _, tt := range []struct{ b, mark string }{
		{"Recvd msg #3: 'hi seq=7 t=1712'", " t="},
		{"Recvd msg #3: 'hi seq=7 t=1712'", " seq="},
		{" t=1 t=2", " t="},
		{" t=", " t="},
		{"t=", " t="},
		{"", " t="},
		{"aaaa", "aa"},
		{"no mark here", " seq="},
		{" seq= seq=", " seq="},
	} {
		if got, want := lastIndex([]byte(tt.b), []byte(tt.mark)), bytes.LastIndex([]byte(tt.b), []byte(tt.mark)); got != want {
			t.Errorf("lastIndex(%q, %q) = %d, want %d", tt.b, tt.mark, got, want)
		}
	}
}

// TestStatusProblem: a 503 is "busy" (dialed again with -retry or
// -resume), any other status "status".
func TestStatusProblem(t *testing.T) {
	for _, tt := range []struct {
		at   uint16
		rest string
		want string
	}{
		{0, "HTTP/1.1 503 Service Unavailable\r\n", ErrBusy},
		{9, "503 Service Unavailable\r\n", ErrBusy},
		{9, "404 Not Found\r\n", ErrStatus},
		{0, "HTTP/1.1 404 Not Found\r\n", ErrStatus},
		{5, "0 200 OK", ErrStatus},
	} {
		if got := statusProblem(tt.at, []byte(tt.rest)); got != tt.want {
			t.Errorf("statusProblem(%d, %q) = %s, want %s", tt.at, tt.rest, got, tt.want)
		}
	}
	if !retryable(ErrBusy) || !resumable(ErrBusy) || retryable(ErrStatus) {
		t.Error("busy must be dialed again, status not")
	}
}
