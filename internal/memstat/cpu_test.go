package memstat

import "testing"

func TestParseCPUTimes(t *testing.T) {
	idle, total, err := parseCPUTimes([]byte("cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || idle != 840 || total != 1000 {
		t.Fatalf("%d %d %v", idle, total, err)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5", "cpu 1 2"} {
		if _, _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var b Busy
	if f := b.Sample(); f != 1 {
		t.Fatalf("first sample %v", f)
	}
	if f := b.Sample(); f < 0 || f > 1 {
		t.Fatalf("second sample %v", f)
	}
}
