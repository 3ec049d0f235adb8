package fdtable

import (
	"sync"
	"sync/atomic"
)

// Slot is one descriptor's entry: a lock, the generation, the descriptor
// and the owner's state V. The Slot's own fields take 16 bytes.
type Slot[T any] struct {
	mu  sync.Mutex
	gen uint32
	fd  int32
	V   T
}

// Lock and Unlock guard V and the slot's open state.
func (s *Slot[T]) Lock()   { s.mu.Lock() }
func (s *Slot[T]) Unlock() { s.mu.Unlock() }

// IsOpen reports whether a connection holds the slot.
func (s *Slot[T]) IsOpen() bool { return s.gen&1 == 1 }

// FD is the slot's descriptor.
func (s *Slot[T]) FD() int { return int(s.fd) }

// Gen is the slot's generation (odd while open).
func (s *Slot[T]) Gen() uint32 { return s.gen }

// Key names the connection in the slot: generation << 32 | descriptor.
func (s *Slot[T]) Key() uint64 { return uint64(s.gen)<<32 | uint64(uint32(s.fd)) }

// Table holds one Slot per possible descriptor.
type Table[T any] struct {
	slots []Slot[T]
	high  atomic.Int64 // the highest descriptor ever opened
}

// New returns a table for descriptors 0 <= fd < n. Its memory is
// reserved, not touched: a slot's page becomes resident when first used.
func New[T any](n int) *Table[T] {
	t := &Table[T]{slots: make([]Slot[T], n)}
	t.high.Store(-1)
	return t
}

// Cap is the number of descriptors the table can hold.
func (t *Table[T]) Cap() int { return len(t.slots) }

// Open takes fd's slot for a new connection and returns it locked, its
// generation moved on (odd) and V as the previous connection left it; nil
// if fd is beyond the table. The caller initializes V and unlocks.
func (t *Table[T]) Open(fd int) *Slot[T] {
	if fd < 0 || fd >= len(t.slots) {
		return nil
	}
	t.raise(fd)
	s := &t.slots[fd]
	s.mu.Lock()
	if s.gen&1 == 1 {
		s.gen++ // an owner that never freed the slot: its key dies here
	}
	s.gen++
	s.fd = int32(fd)
	return s
}

// Free marks s's connection gone (the slot's lock must be held): its key
// no longer finds it.
func (t *Table[T]) Free(s *Slot[T]) {
	if s.gen&1 == 1 {
		s.gen++
	}
}

// Lookup returns the slot of the connection with generation gen on fd,
// locked, or nil if that connection has closed.
func (t *Table[T]) Lookup(fd int, gen uint32) *Slot[T] {
	if fd < 0 || fd >= len(t.slots) || gen&1 == 0 {
		return nil
	}
	s := &t.slots[fd]
	s.mu.Lock()
	if s.gen != gen {
		s.mu.Unlock()
		return nil
	}
	return s
}

// LookupKey is Lookup by a key from Slot.Key.
func (t *Table[T]) LookupKey(key uint64) *Slot[T] {
	return t.Lookup(int(uint32(key)), uint32(key>>32))
}

// Each calls fn for every open slot, locked, in descriptor order. fn may
// Free the slot.
func (t *Table[T]) Each(fn func(s *Slot[T])) {
	for i := 0; i < t.Limit(); i++ {
		s := &t.slots[i]
		s.mu.Lock()
		if s.gen&1 == 1 {
			fn(s)
		}
		s.mu.Unlock()
	}
}

// EachFrom is Each for the slots start, start+step, start+2*step...
func (t *Table[T]) EachFrom(start, step int, fn func(s *Slot[T])) {
	for i := start; i < t.Limit(); i += step {
		s := &t.slots[i]
		s.mu.Lock()
		if s.gen&1 == 1 {
			fn(s)
		}
		s.mu.Unlock()
	}
}

// Limit is one past the highest descriptor ever opened: every open slot
// has an index below it.
func (t *Table[T]) Limit() int { return int(t.high.Load()) + 1 }

func (t *Table[T]) raise(fd int) {
	for {
		top := t.high.Load()
		if int64(fd) <= top || t.high.CompareAndSwap(top, int64(fd)) {
			return
		}
	}
}
