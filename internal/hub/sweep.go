package hub

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/cometgw/comet/internal/memstat"
)

// sweeper refreshes the hub's clock, closes sessions whose pending output
// has made no progress for Config.WriteTimeout, and gives every other
// session its kind's Tick (heartbeats, deadlines).
func (h *Hub) sweeper() {
	defer h.loops.Done()
	every := max(min(h.cfg.WriteTimeout/4, 250*time.Millisecond), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var sc scratch
	var cpu memstat.Busy
	var lastSec uint32
	var holders []holder
	stalled := h.cfg.InputTimeout > 0
	stallSec := uint32(max(h.cfg.InputTimeout/time.Second, 1))
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			nowNS := now.UnixNano()
			h.clock.Store(nowNS)
			// Writes cost CPU whatever they carry: how much the
			// machine has to spare sets the writers' delay (adapt).
			h.idle.Store(math.Float64bits(cpu.Sample()))
			h.sweeps.Add(1)
			limit := nowNS - int64(h.cfg.WriteTimeout)
			nowSec := uint32(now.Unix())
			newSec := nowSec != lastSec
			lastSec = nowSec
			over := h.inputs != nil && h.held.Load() > h.cfg.InputBudget
			holders = holders[:0]
			h.table.Each(func(sl *slot) {
				v := &sl.V
				if newSec && v.flags&flagThrottled != 0 {
					Session{h, sl, &sc}.ResumeInput()
					if !sl.IsOpen() {
						return
					}
				}
				if h.inputs != nil && h.readers[v.kind] != nil {
					if in := h.inputs.peek(sl.FD()); in != nil {
						if stalled && v.flags&flagPaused == 0 && nowSec >= in.since+stallSec {
							h.finish(sl, &sc, ReasonStalled)
							return
						}
						if over && in.size >= keepInput {
							holders = append(holders, holder{sl.Key(), in.size})
						}
					}
				}
				if v.out != nil && v.flags&flagHeld == 0 {
					// Output a writer gathered (flagDirty) goes out at the
					// end of its round or write delay: not stuck.
					if v.clock < limit && v.flags&flagDirty == 0 {
						h.close(sl, ReasonTimeout)
					}
					return
				}
				if v.expires != 0 && nowSec >= v.expires {
					// Its output written (a session with output pending
					// is above), it ends as at shutdown: the client sees
					// the stream end and comes back with a new token.
					h.finish(sl, &sc, ReasonExpired)
					return
				}
				h.kinds[v.kind].Tick(Session{h, sl, &sc}, nowNS)
			})
			if len(holders) > 0 {
				h.shed(holders, &sc)
			}
			sc.trim()
		}
	}
}

// holder is a session holding input, and how much (inbuf.size).
type holder struct {
	conn uint64
	size int32
}

// shed ends the largest holders of input until what the hub holds is
// back within Config.InputBudget.
func (h *Hub) shed(hs []holder, sc *scratch) {
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Compare(b.size, a.size) })
	for _, c := range hs {
		if h.held.Load() <= h.cfg.InputBudget {
			return
		}
		if sl := h.table.LookupKey(c.conn); sl != nil {
			h.finish(sl, sc, ReasonInputBudget)
			sl.Unlock()
		}
	}
}
