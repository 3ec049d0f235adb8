//go:build linux

package flood

import (
	"slices"
	"time"
)

// Clients dialed again: after a close the server made (with -resume, a
// resumable kind keeps its cursor), and the sweep that dials them.

// again queues c to be dialed again, with what it carries over.
func (e *Engine) again(c *conn) {
	e.retryMu.Lock()
	e.retries = append(e.retries, redial{idx: c.idx, lastSeq: c.lastSeq, epoch: c.epoch, pos: c.pos, due: time.Now().Add(e.cfg.Retry).UnixNano()})
	e.retryMu.Unlock()
}

// resumable says whether a resumable client that ended this way dials
// again (Config.Resume): the server or the network ended it, not a
// check of what it sent.
func resumable(kind string) bool {
	switch kind {
	case ErrConnect, ErrTimeout, ErrReset, ErrPeerShut, ErrEnded, ErrBusy:
		return true
	}
	return false
}

// retryable says whether a client that failed this way before its
// response head tries again (Config.Retry): the network or the server
// was too busy, not an answer it gave.
func retryable(kind string) bool {
	switch kind {
	case ErrConnect, ErrTimeout, ErrReset, ErrPeerShut, ErrBusy:
		return true
	}
	return false
}

// redial dials again the clients that failed whose Config.Retry has
// passed (each its own moment after it ended, as a browser's EventSource
// does), as many as the connect window has room for; the others wait for
// the next call.
func (e *Engine) redial() {
	now := time.Now().UnixNano()
	e.retryMu.Lock()
	due := 0
	for due < len(e.retries) && e.retries[due].due <= now {
		due++
	}
	n := min(due, e.cfg.MaxConnecting-int(e.connecting.Load()))
	if n <= 0 {
		e.retryMu.Unlock()
		return
	}
	again := slices.Clone(e.retries[:n])
	e.retries = slices.Delete(e.retries, 0, n)
	e.retryMu.Unlock()
	e.redialed.Add(uint64(n))
	for _, r := range again {
		if err := e.dialAs(r); err != nil {
			return // out of descriptors: counted by the ramp's error
		}
	}
}

// sweep dials again the clients whose retry is due (every 20 ms) and
// closes those that did not get a response head in time (every second).
func (e *Engine) sweep(stop <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var lastCheck time.Time
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if e.cfg.Retry > 0 {
			e.redial()
		}
		if time.Since(lastCheck) < time.Second {
			continue
		}
		lastCheck = time.Now()
		if e.connecting.Load() == 0 {
			continue
		}
		limit := int32((time.Since(e.start) - e.cfg.ConnectTimeout) / time.Second)
		e.conns.Each(func(sl *client) {
			if c := &sl.V; (c.state == stConnecting || c.state == stHead) && c.started < limit {
				e.closeLocked(sl, ErrTimeout)
			}
		})
	}
}
