package peerlimit

import (
	"net/netip"
	"sync"
	"testing"
)

func TestConnsPerAddress(t *testing.T) {
	tb := New(Limits{Conns: 2})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	r1, why := tb.Admit(a)
	r2, _ := tb.Admit(a)
	if r1 == 0 || r2 == 0 || why != "" {
		t.Fatalf("first two refused: %v %v %q", r1, r2, why)
	}
	if r, why := tb.Admit(a); r != 0 || why != CodeConns {
		t.Fatalf("third: %v %q, want refused %s", r, why, CodeConns)
	}
	if r, _ := tb.Admit(b); r == 0 {
		t.Fatal("another address refused")
	}
	tb.Release(r1)
	if r, _ := tb.Admit(a); r == 0 {
		t.Fatal("refused after a release")
	}
	if st := tb.Stats(); st.RefusedConns != 1 || st.Addrs != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRatePerAddress(t *testing.T) {
	now := int64(100)
	tb := New(Limits{Rate: 3})
	tb.now = func() int64 { return now }
	a := netip.MustParseAddr("198.51.100.7")
	for i := range 3 {
		r, why := tb.Admit(a)
		if r == 0 {
			t.Fatalf("connection %d refused: %s", i, why)
		}
		tb.Release(r) // short connections still count in the window
	}
	if r, why := tb.Admit(a); r != 0 || why != CodeRate {
		t.Fatalf("fourth in a second: %v %q", r, why)
	}
	now++
	if r, _ := tb.Admit(a); r == 0 {
		t.Fatal("refused in the next second")
	}
	if st := tb.Stats(); st.RefusedRate != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEntriesFreed(t *testing.T) {
	now := int64(1)
	tb := New(Limits{Conns: 5, Rate: 100})
	tb.now = func() int64 { return now }
	var refs []Ref
	for i := range 1000 {
		r, _ := tb.Admit(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		refs = append(refs, r)
	}
	for _, r := range refs {
		tb.Release(r)
	}
	now++
	tb.Admit(netip.MustParseAddr("10.9.9.9"))
	if st := tb.Stats(); st.Addrs != 1 {
		t.Fatalf("%d addresses kept after every connection closed and their second passed, want 1", st.Addrs)
	}
	if len(tb.ents) > 1000 {
		t.Fatalf("%d entries", len(tb.ents))
	}
}

func TestIPv6ByPrefix(t *testing.T) {
	tb := New(Limits{Conns: 1})
	if r, _ := tb.Admit(netip.MustParseAddr("2001:db8:1:2::1")); r == 0 {
		t.Fatal("first refused")
	}
	if r, _ := tb.Admit(netip.MustParseAddr("2001:db8:1:2:ffff::9")); r != 0 {
		t.Fatal("same /64 admitted past the limit")
	}
	if r, _ := tb.Admit(netip.MustParseAddr("2001:db8:1:3::1")); r == 0 {
		t.Fatal("another /64 refused")
	}
	if r, _ := tb.Admit(netip.MustParseAddr("::ffff:192.0.2.1")); r == 0 {
		t.Fatal("mapped v4 refused")
	}
	if tb.Conns(netip.MustParseAddr("192.0.2.1")) != 1 {
		t.Fatal("mapped v4 not counted as v4")
	}
	if r, why := tb.Admit(netip.Addr{}); r != 0 || why != "" {
		t.Fatal("an invalid address should pass uncounted")
	}
}

func TestConcurrent(t *testing.T) {
	tb := New(Limits{Conns: 1 << 20})
	a := netip.MustParseAddr("192.0.2.1")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				r, _ := tb.Admit(a)
				tb.Release(r)
			}
		}()
	}
	wg.Wait()
	if n := tb.Conns(a); n != 0 {
		t.Fatalf("%d left open", n)
	}
}
