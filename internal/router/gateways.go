package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometgw/comet/internal/wire"
)

// peer is a gateway the router knows: its name, down subject and the
// index its logins carry in the registry.
type peer struct {
	name     string
	subject  string
	idx      uint32
	instance uint64
	lastSeen atomic.Int64
	// conns is written with members.mu held; the send path reads it
	// (a broadcast's copies).
	conns atomic.Int64
	// The fields below are only touched with members.mu held.
	mismatches int
	resyncAt   time.Time // when a resync was last asked; zero when none pending
	server     string    // the NATS server it is connected to (server record)

	nextSeq atomic.Uint64 // the last down frame number given
	// The flow fields below are guarded by flows.mu.
	flights  map[uint64]flight // by frame number
	inflight int64             // their bytes: the window in use
	gone     bool              // forgotten: its flights were counted lost
	// suspect is the newest frame failed at the deliver timeout whose
	// done record has not come (0: none): slow, or lost. Its late done
	// record clears it (slow); a done record of a later frame first
	// sets lost (a frame was lost on the way: ask for the sessions).
	suspect uint64
	lost    bool
}

// gateways is the table of the gateways the router knows, by name and by
// the index their logins carry. Its lock guards the maps only: a peer's
// fields are guarded as peer says.
type gateways struct {
	mu     sync.RWMutex
	byName map[string]*peer
	byIdx  map[uint32]*peer
	last   uint32 // the last index given
}

func newGateways() *gateways {
	return &gateways{byName: make(map[string]*peer), byIdx: make(map[uint32]*peer)}
}

// add makes a peer for gateway name's instance, with an index never given
// before.
func (g *gateways) add(name string, instance uint64) *peer {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last++
	gw := &peer{name: name, subject: wire.DownSubject(name), idx: g.last, instance: instance, flights: make(map[uint64]flight)}
	g.byName[name] = gw
	g.byIdx[gw.idx] = gw
	return gw
}

// remove drops gw (a later instance of the same name stays).
func (g *gateways) remove(gw *peer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byName[gw.name] == gw {
		delete(g.byName, gw.name)
	}
	delete(g.byIdx, gw.idx)
}

// named returns gateway name, or nil.
func (g *gateways) named(name string) *peer {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.byName[name]
}

// at returns the gateway of index idx, or nil (forgotten).
func (g *gateways) at(idx uint32) *peer {
	g.mu.RLock()
	gw := g.byIdx[idx]
	g.mu.RUnlock()
	return gw
}

// all returns the gateways known now.
func (g *gateways) all() []*peer {
	g.mu.RLock()
	defer g.mu.RUnlock()
	gws := make([]*peer, 0, len(g.byIdx))
	for _, gw := range g.byIdx {
		gws = append(gws, gw)
	}
	return gws
}

// each calls f for every gateway, with the table's lock held (f takes
// no other lock but flows.mu, which may be held around each).
func (g *gateways) each(f func(gw *peer) bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, gw := range g.byIdx {
		if !f(gw) {
			return
		}
	}
}

// len is the number of gateways known.
func (g *gateways) len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.byIdx)
}
