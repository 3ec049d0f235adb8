package fifo

import "testing"

func TestCompact(t *testing.T) {
	q := make([]*int, 0, 100000)
	for i := range 3000 {
		v := i
		q = append(q, &v)
	}
	if got, head := Compact(q, 1000); len(got) != 3000 || head != 1000 {
		t.Fatal("compacted a front of 1,000")
	}
	if got, head := Compact(q, 1400); len(got) != 3000 || head != 1400 {
		t.Fatal("compacted a front under half")
	}
	got, head := Compact(q, 2000)
	if head != 0 || len(got) != 1000 || *got[0] != 2000 || *got[999] != 2999 {
		t.Fatalf("after compacting: head %d, %d entries", head, len(got))
	}
	if cap(got) > 4*1000+4096 {
		t.Fatalf("kept %d of room for 1,000", cap(got))
	}
	if q[1000] != nil || q[2999] != nil {
		t.Fatal("the old slice's tail still holds pointers")
	}
}
