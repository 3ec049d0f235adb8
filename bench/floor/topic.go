package main

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/chunked"
)

// topic is the floor for a topic at load: count messages at rate a
// second, numbered and stamped as msggen -topics -numbered -stamp makes
// them ("Fake message Num = K seq=S t=NANOS"), written to every member
// socket in tight loops of write(2), gathered: every gather, the
// messages due since the last tick go to each member in one write. A
// message is stamped with the time it was due, so what floodtest
// measures is the gathering and the writing, as for the gateway from
// msggen's stamp. A tick that finds the last one's writes still going
// is late, and the next one carries more: the floor slows down rather
// than queue, and says how often (late_ticks).
//
// Every member has had only its welcome, so message k is "Recvd msg #k"
// on every socket: one buffer serves them all. What a full socket does
// not take is kept for it and written first at the next tick (the
// stream must stay whole), and counted (partial).
type topic struct {
	fds     []int
	threads int
	count   int
	rate    float64
	gather  time.Duration
	align   time.Duration // the first message is due on a multiple of it (the processes' common start)

	writes  atomic.Uint64
	partial atomic.Uint64
	late    int
}

// run writes the messages and returns once every byte is written or ctx
// ends. Processes side by side (SO_REUSEPORT, started by one signal)
// start on the same multiple of align, 1 s to 1 s + align away, so
// message k is the same one, due at the same time, in all.
func (t *topic) run(ctx context.Context) error {
	period := time.Duration(float64(time.Second) / t.rate)
	start := time.Now().Add(time.Second).Truncate(t.align).Add(t.align)
	parts := split(t.fds, t.threads)
	pend := make([]map[int][]byte, len(parts)) // per thread: what a socket did not take
	for i := range pend {
		pend[i] = map[int][]byte{}
	}
	var batch []byte
	var body, msg []byte
	done := 0
	for done < t.count || pending(pend) {
		next := time.Now().Truncate(t.gather).Add(t.gather)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
		now := time.Now()
		batch = batch[:0]
		for done < t.count && !start.Add(time.Duration(done)*period).After(now) {
			due := start.Add(time.Duration(done) * period)
			done++
			msg = strconv.AppendInt(append(msg[:0], "Fake message Num = "...), int64(t.count-done+1), 10)
			msg = strconv.AppendInt(append(msg, " seq="...), int64(done), 10)
			msg = strconv.AppendInt(append(msg, " t="...), due.UnixNano(), 10)
			body = chunked.AppendHTMLMessage(body[:0], uint64(done), chunked.AppendHTMLEscaped(nil, msg))
			batch = chunked.AppendChunk(batch, body)
		}
		if len(batch) == 0 && !pending(pend) {
			continue
		}
		var wg sync.WaitGroup
		for i, part := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				t.write(part, batch, pend[i])
			}()
		}
		wg.Wait()
		if time.Since(next) > t.gather {
			t.late++
		}
	}
	return nil
}

// write writes b to every socket of part, after what each did not take
// before (kept in pend).
func (t *topic) write(part []int, b []byte, pend map[int][]byte) {
	var writes, partial uint64
	for _, fd := range part {
		p := b
		old, held := pend[fd]
		if held {
			p = append(old, b...)
		}
		if len(p) == 0 {
			continue
		}
		n, err := unix.Write(fd, p)
		writes++
		switch {
		case err == unix.EAGAIN:
			n = 0
		case err != nil: // the client is gone: nothing more to keep for it
			delete(pend, fd)
			continue
		}
		switch {
		case n == len(p) && held:
			delete(pend, fd)
		case n < len(p):
			partial++
			pend[fd] = append([]byte(nil), p[n:]...)
		}
	}
	t.writes.Add(writes)
	t.partial.Add(partial)
}

// pending reports whether any socket has bytes it did not take yet.
func pending(pend []map[int][]byte) bool {
	for _, m := range pend {
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// split cuts fds into n parts of near-equal size.
func split(fds []int, n int) [][]int {
	n = max(n, 1)
	per := (len(fds) + n - 1) / n
	parts := make([][]int, 0, n)
	for i := 0; i < n; i++ {
		parts = append(parts, fds[min(i*per, len(fds)):min((i+1)*per, len(fds))])
	}
	return parts
}
