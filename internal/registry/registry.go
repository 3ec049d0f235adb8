package registry

import (
	"slices"
	"sync"
	"sync/atomic"
)

const shardCount = 64

// Conn names one client connection: the router's number for the gateway
// instance that holds it and that gateway's number for the connection.
type Conn struct {
	GW   uint32
	Conn uint64
}

type idShard struct {
	mu sync.RWMutex
	m  map[int64][]Conn
}

type connShard struct {
	mu sync.Mutex
	m  map[Conn][]int64
}

// Registry is safe for concurrent use within the rule in the package doc.
type Registry struct {
	ids   [shardCount]idShard
	conns [shardCount]connShard
	nIDs  atomic.Int64
	nConn atomic.Int64
	pairs atomic.Int64
	// onIdle, if set, hears of every id that lost its last conn;
	// onActive of every id that got its first.
	onIdle, onActive func(id int64)
}

// OnIdle makes Logout and LogoutGateway call f (with no lock held) for
// every id that loses its last conn. Call it before any other method.
func (r *Registry) OnIdle(f func(id int64)) { r.onIdle = f }

// OnActive makes Login call f (with no lock held) for every id that gets
// its first conn. Call it before any other method.
func (r *Registry) OnActive(f func(id int64)) { r.onActive = f }

// New returns an empty registry.
func New() *Registry {
	r := &Registry{}
	for i := range r.ids {
		r.ids[i].m = make(map[int64][]Conn)
		r.conns[i].m = make(map[Conn][]int64)
	}
	return r
}

func idShardOf(id int64) int {
	// Fibonacci hashing spreads sequential ids over the shards.
	return int((uint64(id) * 0x9E3779B97F4A7C15) >> 58)
}

func connShardOf(c Conn) int {
	return int(((c.Conn ^ uint64(c.GW)<<40) * 0x9E3779B97F4A7C15) >> 58)
}

// Login records that c is logged in as id. It reports whether c was new
// (held no id before) and whether the pair was new (false for a repeated
// login, which changes nothing).
func (r *Registry) Login(id int64, c Conn) (newConn, newPair bool) {
	cs := &r.conns[connShardOf(c)]
	cs.mu.Lock()
	ids, had := cs.m[c]
	if slices.Contains(ids, id) {
		cs.mu.Unlock()
		return false, false
	}
	cs.m[c] = append(ids, id)
	cs.mu.Unlock()
	if !had {
		r.nConn.Add(1)
	}
	r.pairs.Add(1)

	is := &r.ids[idShardOf(id)]
	is.mu.Lock()
	conns, ok := is.m[id]
	is.m[id] = append(conns, c)
	is.mu.Unlock()
	if !ok {
		r.nIDs.Add(1)
		if r.onActive != nil {
			r.onActive(id)
		}
	}
	return !had, true
}

// Logout removes every id c holds and returns how many there were.
func (r *Registry) Logout(c Conn) int {
	cs := &r.conns[connShardOf(c)]
	cs.mu.Lock()
	ids, ok := cs.m[c]
	delete(cs.m, c)
	cs.mu.Unlock()
	if !ok {
		return 0
	}
	r.nConn.Add(-1)
	for _, id := range ids {
		r.removePair(id, c)
	}
	return len(ids)
}

func (r *Registry) removePair(id int64, c Conn) {
	is := &r.ids[idShardOf(id)]
	is.mu.Lock()
	conns := is.m[id]
	idle := false
	if i := slices.Index(conns, c); i >= 0 {
		conns[i] = conns[len(conns)-1]
		conns = conns[:len(conns)-1]
		r.pairs.Add(-1)
		if len(conns) == 0 {
			delete(is.m, id)
			r.nIDs.Add(-1)
			idle = true
		} else {
			is.m[id] = conns
		}
	}
	is.mu.Unlock()
	if idle && r.onIdle != nil {
		r.onIdle(id)
	}
}

// Held reports whether any conn is logged in as id.
func (r *Registry) Held(id int64) bool {
	is := &r.ids[idShardOf(id)]
	is.mu.RLock()
	_, ok := is.m[id]
	is.mu.RUnlock()
	return ok
}

// LogoutGateway removes every conn of gateway gw and returns how many.
func (r *Registry) LogoutGateway(gw uint32) int {
	type gone struct {
		c   Conn
		ids []int64
	}
	var all []gone
	for i := range r.conns {
		cs := &r.conns[i]
		cs.mu.Lock()
		for c, ids := range cs.m {
			if c.GW == gw {
				all = append(all, gone{c, ids})
				delete(cs.m, c)
			}
		}
		cs.mu.Unlock()
	}
	r.nConn.Add(-int64(len(all)))
	for _, g := range all {
		for _, id := range g.ids {
			r.removePair(id, g.c)
		}
	}
	return len(all)
}

// Lookup appends to dst every conn logged in as id and returns it. The
// copy is made under the shard lock, so the caller may write to the conns
// without holding anything.
func (r *Registry) Lookup(id int64, dst []Conn) []Conn {
	is := &r.ids[idShardOf(id)]
	is.mu.RLock()
	dst = append(dst, is.m[id]...)
	is.mu.RUnlock()
	return dst
}

// IDs appends to dst the ids c is logged in as.
func (r *Registry) IDs(c Conn, dst []int64) []int64 {
	cs := &r.conns[connShardOf(c)]
	cs.mu.Lock()
	dst = append(dst, cs.m[c]...)
	cs.mu.Unlock()
	return dst
}

// Stats is a snapshot of the registry's size.
type Stats struct {
	Conns int64 `json:"conns"` // conns holding at least one id
	IDs   int64 `json:"ids"`   // ids held by at least one conn
	Pairs int64 `json:"pairs"` // (id, conn) logins
}

// Stats returns the registry's size.
func (r *Registry) Stats() Stats {
	return Stats{Conns: r.nConn.Load(), IDs: r.nIDs.Load(), Pairs: r.pairs.Load()}
}
