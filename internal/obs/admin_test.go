package obs

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
)

// An admin server holds at most MaxAdminConns connections at once and
// closes idle ones.
func TestAdminConnectionsBounded(t *testing.T) {
	old := AdminIdleTimeout
	AdminIdleTimeout = 2 * time.Second
	defer func() { AdminIdleTimeout = old }()
	a, err := ListenAdmin("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	served := 0
	for range MaxAdminConns + 20 {
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var b [12]byte
		if n, _ := io.ReadFull(c, b[:]); n == 12 {
			served++
		}
	}
	if served != MaxAdminConns {
		t.Fatalf("%d served at once, want %d", served, MaxAdminConns)
	}
	// The idle ones close, and the waiting ones are served then.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("connection %d not closed when idle: %v", i, err)
		}
		if i >= MaxAdminConns && len(b) == 0 {
			t.Fatalf("connection %d waiting past the cap was never served", i)
		}
	}
}
