package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// The daemons these tests start listen on ports chosen here. A port
// from the kernel's ephemeral range can be taken, between the choice and
// the daemon's bind, by any connection some test (of this package or of
// another one running at the same time) opens: the daemon then fails
// with "address already in use". So where it may (root), TestMain
// reserves a block of ports for the run (net.ipv4.ip_local_reserved_ports:
// never handed out as ephemeral ports, still free to bind) and puts the
// setting back at the end; elsewhere ports come from the kernel as before.
const (
	reservedFrom  = 21000
	reservedCount = 2000
	reservedFile  = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

var (
	portsReserved bool
	nextPort      atomic.Int32
)

func TestMain(m *testing.M) {
	restore := reservePorts()
	code := m.Run()
	restore()
	os.Exit(code)
}

// reservePorts adds reservedFrom.. to the reserved ports if it can, and
// returns what puts the old setting back.
func reservePorts() (restore func()) {
	old, err := os.ReadFile(reservedFile)
	if err != nil || os.Geteuid() != 0 {
		return func() {}
	}
	was := strings.TrimSpace(string(old))
	block := fmt.Sprintf("%d-%d", reservedFrom, reservedFrom+reservedCount-1)
	want := block
	if was != "" {
		want = was + "," + block
	}
	if err := os.WriteFile(reservedFile, []byte(want), 0o644); err != nil {
		return func() {}
	}
	portsReserved = true
	nextPort.Store(int32(os.Getpid() % reservedCount)) // runs in turn start apart
	return func() {
		// Take out our block only (another run may have added its own
		// meanwhile; the kernel merges what is written).
		cur, err := os.ReadFile(reservedFile)
		if err != nil {
			return
		}
		var keep []string
		for _, part := range strings.Split(strings.TrimSpace(string(cur)), ",") {
			if part != "" && part != block {
				keep = append(keep, part)
			}
		}
		os.WriteFile(reservedFile, []byte(strings.Join(keep, ",")+"\n"), 0o644)
	}
}

// freePort returns a loopback address with a port free to listen on: one
// of the reserved block when TestMain could reserve it, else one the
// kernel picks.
func freePort(t *testing.T) string {
	t.Helper()
	if portsReserved {
		for range reservedCount {
			p := reservedFrom + int(nextPort.Add(1))%reservedCount
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			if ln, err := net.Listen("tcp", addr); err == nil {
				ln.Close()
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
