package fdtable

import "testing"

func TestTable(t *testing.T) {
	tb := New[int](8)
	if tb.Limit() != 0 || tb.Open(8) != nil || tb.Open(-1) != nil {
		t.Fatal("empty table")
	}
	s := tb.Open(3)
	s.V = 30
	key, gen := s.Key(), s.Gen()
	s.Unlock()
	if !s.IsOpen() || gen&1 != 1 || key != uint64(gen)<<32|3 || tb.Limit() != 4 {
		t.Fatalf("open: gen %d key %x limit %d", gen, key, tb.Limit())
	}
	if got := tb.LookupKey(key); got == nil || got.V != 30 || got.FD() != 3 {
		t.Fatalf("lookup: %v", got)
	} else {
		tb.Free(got)
		got.Unlock()
	}
	if tb.LookupKey(key) != nil || tb.Lookup(3, gen+1) != nil {
		t.Fatal("a freed slot is found")
	}
	// The descriptor is reused: the old key stays dead.
	s = tb.Open(3)
	s.Unlock()
	if tb.LookupKey(key) != nil || tb.LookupKey(s.Key()) == nil {
		t.Fatal("reused descriptor")
	} else {
		s.Unlock()
	}
	// Open over a slot its owner never freed: the old key dies too.
	old := s.Key()
	s = tb.Open(3)
	s.Unlock()
	if tb.LookupKey(old) != nil {
		t.Fatal("the unfreed owner's key still finds the slot")
	}
	tb.Open(1).Unlock()
	var fds []int
	tb.Each(func(s *Slot[int]) { fds = append(fds, s.FD()) })
	if len(fds) != 2 || fds[0] != 1 || fds[1] != 3 {
		t.Fatalf("each: %v", fds)
	}
}
