package hub

// lingering is a writer's sessions whose output waits for its write delay,
// as a min-heap by due time (unix nanos): a round looks only at the ones
// that are due.
type lingering struct {
	h     []due
	bytes int // output held back, as it was when each session was added
}

type due struct {
	at    int64
	key   uint64
	bytes int
}

// push adds session key, due at at, holding n bytes.
func (l *lingering) push(at int64, key uint64, n int) {
	l.h = append(l.h, due{at, key, n})
	l.bytes += n
	for i := len(l.h) - 1; i > 0; {
		p := (i - 1) / 2
		if l.h[p].at <= l.h[i].at {
			break
		}
		l.h[p], l.h[i] = l.h[i], l.h[p]
		i = p
	}
}

// next is the earliest due time; ok is false when none waits.
func (l *lingering) next() (at int64, ok bool) {
	if len(l.h) == 0 {
		return 0, false
	}
	return l.h[0].at, true
}

// pop removes and returns the earliest.
func (l *lingering) pop() due {
	top := l.h[0]
	n := len(l.h) - 1
	l.h[0] = l.h[n]
	l.h = l.h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && l.h[c+1].at < l.h[c].at {
			c++
		}
		if l.h[i].at <= l.h[c].at {
			break
		}
		l.h[i], l.h[c] = l.h[c], l.h[i]
		i = c
	}
	l.bytes -= top.bytes
	if cap(l.h) > 1<<16 && n < cap(l.h)/4 {
		l.h = append(make([]due, 0, 2*n+16), l.h...)
	}
	return top
}
