package memstat

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// CPUTimes reads the machine's CPU time from /proc/stat (every CPU
// together, in clock ticks): the idle part (idle and iowait) and the
// total.
func CPUTimes() (idle, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseCPUTimes(b)
}

func parseCPUTimes(b []byte) (idle, total uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, errors.New("memstat: /proc/stat: no cpu line")
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, errors.New("memstat: /proc/stat: bad cpu field " + strconv.Quote(string(v)))
		}
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is in user
			total += n
		}
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total, nil
}

// Busy tracks how busy the machine's CPUs are between two readings.
type Busy struct{ idle, total uint64 }

// Sample reads /proc/stat and returns the fraction of CPU time that was
// idle since the previous Sample (1 on the first, or if it cannot tell).
func (b *Busy) Sample() float64 {
	idle, total, err := CPUTimes()
	if err != nil || total <= b.total {
		return 1
	}
	frac := 1.0
	if b.total > 0 {
		frac = float64(idle-b.idle) / float64(total-b.total)
	}
	b.idle, b.total = idle, total
	return frac
}
