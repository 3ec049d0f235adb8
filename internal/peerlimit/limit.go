// Package peerlimit bounds what one client address may take of a
// gateway: its open connections, and the connections it may open per
// second. The gateway asks Admit for every accepted connection and
// gives the Ref back with Release when the socket is finally closed,
// whoever holds it then (the HTTP server or the hub).
//
// IPv6 clients are counted by their /64 (one subscriber's usual
// allocation, which they could otherwise spread connections over);
// IPv4, and IPv4-mapped IPv6, by the whole address.
package peerlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits per client address; zero means no limit.
type Limits struct {
	// Conns bounds the connections open at once.
	Conns int
	// Rate bounds the new connections per second (a fixed one-second
	// window).
	Rate int
}

// Enabled reports whether any limit is set.
func (l Limits) Enabled() bool { return l.Conns > 0 || l.Rate > 0 }

// Ref names an admitted connection's address entry; 0 is none (a
// connection admitted while no limit is set, or not counted).
type Ref uint32

// Why a connection was refused: Code names the counter, Reason is the
// one-line answer.
const (
	CodeConns = "addr_conns"
	CodeRate  = "addr_rate"
)

// Table counts connections by client address. Its memory is one entry
// per address with a connection open, or one opened within the last
// second; nothing per connection beyond the Ref its holder keeps.
type Table struct {
	lim   Limits
	now   func() int64 // unix seconds
	mu    sync.Mutex
	index map[netip.Addr]uint32 // -> ents index
	ents  []entry
	free  []uint32
	swept int64

	refusedConns, refusedRate atomic.Uint64
}

type entry struct {
	key   netip.Addr
	conns int32 // open
	sec   int64 // the window n counts in
	n     int32 // opened in sec
	used  bool
}

// New returns a Table enforcing lim.
func New(lim Limits) *Table {
	return &Table{lim: lim, now: func() int64 { return time.Now().Unix() }, index: make(map[netip.Addr]uint32)}
}

// Key is the address a connection from a is counted under.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// AddrOf is a net.Addr's IP, or the zero Addr.
func AddrOf(na net.Addr) netip.Addr {
	if ta, ok := na.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr()
	}
	return netip.Addr{}
}

// Admit counts a new connection from a, or refuses it with the code of
// the limit it would pass (CodeConns, CodeRate). An invalid address (not
// an IP connection) is admitted uncounted.
func (t *Table) Admit(a netip.Addr) (Ref, string) {
	if !a.IsValid() {
		return 0, ""
	}
	k := Key(a)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if now != t.swept {
		t.sweep(now)
	}
	i, ok := t.index[k]
	if !ok {
		i = t.alloc(k)
	}
	e := &t.ents[i]
	if e.sec != now {
		e.sec, e.n = now, 0
	}
	switch {
	case t.lim.Conns > 0 && int(e.conns) >= t.lim.Conns:
		t.refusedConns.Add(1)
		return 0, CodeConns
	case t.lim.Rate > 0 && int(e.n) >= t.lim.Rate:
		t.refusedRate.Add(1)
		return 0, CodeRate
	}
	e.conns++
	e.n++
	return Ref(i + 1), ""
}

// Release gives back a connection Admit counted. Release(0) does
// nothing.
func (t *Table) Release(r Ref) {
	if r == 0 {
		return
	}
	i := uint32(r - 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(i) >= len(t.ents) || !t.ents[i].used || t.ents[i].conns <= 0 {
		return // not ours: never happens, and never corrupts the counts
	}
	t.ents[i].conns--
	t.drop(i)
}

// drop frees entry i if nothing needs it: no connection open, and no
// rate window to keep (the sweep frees those a second later).
func (t *Table) drop(i uint32) {
	e := &t.ents[i]
	if e.conns == 0 && (t.lim.Rate <= 0 || e.n == 0) {
		t.release(i)
	}
}

func (t *Table) alloc(k netip.Addr) uint32 {
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = uint32(len(t.ents))
		t.ents = append(t.ents, entry{})
	}
	t.ents[i] = entry{key: k, used: true}
	t.index[k] = i
	return i
}

func (t *Table) release(i uint32) {
	delete(t.index, t.ents[i].key)
	t.ents[i] = entry{}
	t.free = append(t.free, i)
}

// sweep frees the entries whose only use was a past second's rate
// window. Once a second at most, from Admit.
func (t *Table) sweep(now int64) {
	t.swept = now
	if t.lim.Rate <= 0 {
		return
	}
	for i := range t.ents {
		if e := &t.ents[i]; e.used && e.conns == 0 && e.sec != now {
			t.release(uint32(i))
		}
	}
}

// Stats are a Table's counts.
type Stats struct {
	Addrs        int    `json:"addrs"` // addresses with an entry
	RefusedConns uint64 `json:"refused_conns"`
	RefusedRate  uint64 `json:"refused_rate"`
}

// Stats returns the table's counts.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	n := len(t.index)
	t.mu.Unlock()
	return Stats{Addrs: n, RefusedConns: t.refusedConns.Load(), RefusedRate: t.refusedRate.Load()}
}

// Conns is the number of open connections counted for a's key.
func (t *Table) Conns(a netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[Key(a)]; ok {
		return int(t.ents[i].conns)
	}
	return 0
}
