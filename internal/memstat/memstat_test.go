package memstat

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestParsers(t *testing.T) {
	if v, err := parseStatusRSS([]byte("Name:\tx\nVmRSS:\t  13572 kB\nThreads: 3\n")); err != nil || v != 13572 {
		t.Fatalf("rss %d %v", v, err)
	}
	if _, err := parseStatusRSS([]byte("Name: x\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
	if v, err := parseSockstat([]byte("sockets: used 18\nTCP: inuse 7 orphan 0 tw 2 alloc 7 mem 9947\nUDP: inuse 0 mem 1\n"), 4096); err != nil || v != 9947*4 {
		t.Fatalf("sockstat %d %v", v, err)
	}
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F40 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F40 0200007F:A1B3 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:A1B2 0100007F:1F40 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0200007F:1F40 0100007F:1234 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
`
	addrs := map[netip.AddrPort]bool{netip.MustParseAddrPort("127.0.0.1:8000"): true}
	n, err := scanEstablished(bufio.NewReader(strings.NewReader(tcp)), addrs)
	if err != nil || n != 2 {
		t.Fatalf("established = %d, %v; want 2", n, err)
	}
	if a, ok := parseProcAddr([]byte("0000000000000000FFFF00000100007F:1F40")); !ok || a != netip.MustParseAddrPort("127.0.0.1:8000") {
		t.Fatalf("v6-mapped: %v %v", a, ok)
	}
}

func TestSelf(t *testing.T) {
	if SelfRSSKB() <= 0 {
		t.Fatal("no RSS for this process")
	}
	exe, _ := os.Executable()
	_ = exe
	if len(FindPids("definitely-not-a-process")) != 0 {
		t.Fatal("found a process that does not exist")
	}
	if _, err := TCPMemKB(); err != nil {
		t.Fatal(err)
	}
	if _, err := Established(map[netip.AddrPort]bool{}); err != nil {
		t.Fatal(err)
	}
}

// TestEstablishedCountsRealConnections: both ways of counting see the
// connections made to a real listener, and only those.
func TestEstablishedCountsRealConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addrs := map[netip.AddrPort]bool{netip.MustParseAddrPort(ln.Addr().String()): true}
	n1, err1 := establishedDiag(addrs)
	n2, err2 := establishedProc(addrs)
	if err1 != nil || err2 != nil || n1 != 5 || n2 != 5 {
		t.Fatalf("diag %d %v, proc %d %v; want 5", n1, err1, n2, err2)
	}
}
