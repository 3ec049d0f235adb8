package flood

import "testing"

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
