package registry

import (
	"slices"
	"sync"
	"testing"
)

type op struct {
	kind string // "login", "logout", "gw"
	id   int64
	c    Conn
	want int // for logout/gw: ids/conns removed; for login: 1 if the pair is new
}

func TestRegistry(t *testing.T) {
	a, b, c := Conn{1, 1}, Conn{1, 2}, Conn{2, 1}
	tests := []struct {
		name   string
		ops    []op
		lookup map[int64][]Conn
		stats  Stats
	}{
		{
			name:   "login then send reaches the conn",
			ops:    []op{{"login", 123, a, 1}},
			lookup: map[int64][]Conn{123: {a}, 456: nil},
			stats:  Stats{Conns: 1, IDs: 1, Pairs: 1},
		},
		{
			name:   "one conn holds several ids",
			ops:    []op{{"login", 1, a, 1}, {"login", 2, a, 1}, {"login", 3, a, 1}},
			lookup: map[int64][]Conn{1: {a}, 2: {a}, 3: {a}},
			stats:  Stats{Conns: 1, IDs: 3, Pairs: 3},
		},
		{
			name:   "logout removes every id of the conn",
			ops:    []op{{"login", 1, a, 1}, {"login", 2, a, 1}, {"login", 2, b, 1}, {"logout", 0, a, 2}},
			lookup: map[int64][]Conn{1: nil, 2: {b}},
			stats:  Stats{Conns: 1, IDs: 1, Pairs: 1},
		},
		{
			name:   "send to void",
			ops:    nil,
			lookup: map[int64][]Conn{7: nil},
		},
		{
			name:   "re-login is idempotent",
			ops:    []op{{"login", 5, a, 1}, {"login", 5, a, 0}},
			lookup: map[int64][]Conn{5: {a}},
			stats:  Stats{Conns: 1, IDs: 1, Pairs: 1},
		},
		{
			name:   "login after logout",
			ops:    []op{{"login", 5, a, 1}, {"logout", 0, a, 1}, {"login", 6, a, 1}},
			lookup: map[int64][]Conn{5: nil, 6: {a}},
			stats:  Stats{Conns: 1, IDs: 1, Pairs: 1},
		},
		{
			name:   "many conns per id",
			ops:    []op{{"login", 9, a, 1}, {"login", 9, b, 1}, {"login", 9, c, 1}},
			lookup: map[int64][]Conn{9: {a, b, c}},
			stats:  Stats{Conns: 3, IDs: 1, Pairs: 3},
		},
		{
			name:   "logout of an unknown conn",
			ops:    []op{{"logout", 0, a, 0}},
			lookup: map[int64][]Conn{1: nil},
		},
		{
			name:   "gateway purge keeps other gateways",
			ops:    []op{{"login", 9, a, 1}, {"login", 9, b, 1}, {"login", 9, c, 1}, {"login", 10, a, 1}, {"gw", 0, Conn{GW: 1}, 2}},
			lookup: map[int64][]Conn{9: {c}, 10: nil},
			stats:  Stats{Conns: 1, IDs: 1, Pairs: 1},
		},
		{
			name:   "negative and extreme ids",
			ops:    []op{{"login", -1, a, 1}, {"login", 1<<63 - 1, a, 1}, {"login", -1 << 63, b, 1}},
			lookup: map[int64][]Conn{-1: {a}, 1<<63 - 1: {a}, -1 << 63: {b}},
			stats:  Stats{Conns: 2, IDs: 3, Pairs: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			for i, o := range tt.ops {
				var got int
				switch o.kind {
				case "login":
					if _, p := r.Login(o.id, o.c); p {
						got = 1
					}
				case "logout":
					got = r.Logout(o.c)
				case "gw":
					got = r.LogoutGateway(o.c.GW)
				}
				if got != o.want {
					t.Fatalf("op %d %s(%d, %v) = %d, want %d", i, o.kind, o.id, o.c, got, o.want)
				}
			}
			for id, want := range tt.lookup {
				got := r.Lookup(id, nil)
				slices.SortFunc(got, cmpConn)
				slices.SortFunc(want, cmpConn)
				if !slices.Equal(got, want) {
					t.Errorf("Lookup(%d) = %v, want %v", id, got, want)
				}
			}
			if s := r.Stats(); s != tt.stats {
				t.Errorf("Stats = %+v, want %+v", s, tt.stats)
			}
		})
	}
}

func cmpConn(x, y Conn) int {
	if x.GW != y.GW {
		return int(x.GW) - int(y.GW)
	}
	switch {
	case x.Conn < y.Conn:
		return -1
	case x.Conn > y.Conn:
		return 1
	}
	return 0
}

func TestLoginReportsNewConn(t *testing.T) {
	r := New()
	c := Conn{1, 1}
	if n, p := r.Login(1, c); !n || !p {
		t.Fatalf("first login: newConn=%v newPair=%v", n, p)
	}
	if n, p := r.Login(2, c); n || !p {
		t.Fatalf("second id: newConn=%v newPair=%v", n, p)
	}
	if got := r.IDs(c, nil); len(got) != 2 {
		t.Fatalf("IDs = %v", got)
	}
}

// TestConcurrent runs gateways' updates (one goroutine per gateway, as the
// router does) against concurrent lookups; run with -race.
func TestConcurrent(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		var buf []Conn
		for {
			select {
			case <-stop:
				return
			default:
			}
			for id := int64(0); id < 100; id++ {
				buf = r.Lookup(id, buf[:0])
			}
		}
	}()
	for gw := uint32(1); gw <= 4; gw++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); i < 2000; i++ {
				c := Conn{gw, i}
				r.Login(int64(i%100), c)
				r.Login(int64(i%7), c)
				if i%2 == 0 {
					r.Logout(c)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if s := r.Stats(); s.Conns != 4*1000 {
		t.Fatalf("conns = %d, want 4000", s.Conns)
	}
	for gw := uint32(1); gw <= 4; gw++ {
		r.LogoutGateway(gw)
	}
	if s := r.Stats(); s != (Stats{}) {
		t.Fatalf("after purge: %+v", s)
	}
}
