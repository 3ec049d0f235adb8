package hub

import (
	"math"
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
			h.table.Each(func(sl *slot) {
				v := &sl.V
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
			sc.trim()
		}
	}
}
