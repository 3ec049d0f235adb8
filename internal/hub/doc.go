// Package hub owns every client session of one gateway process, whatever
// its kind: the table of sessions indexed by file descriptor
// (table.go, on package fdtable), the one epoll set that watches all their
// sockets (loop.go), the writers that format and write deliveries
// (writer.go), and the sweeper that enforces write deadlines and gives
// kinds their timers (sweep.go).
//
// The hub knows no wire format. What a session writes, and what it does
// with a delivery, a resume answer, quiet and shutdown, is its Kind
// (kind.go): package chunked (the /test/{id} HTML stream), package sse
// (EventSource streams), package longpoll (long-polls) and package ws
// (WebSockets, the one kind that reads its clients) each implement one.
// The gateway builds the hub with its table of kinds; a session stores
// the index of its kind in one byte, so a session is a 72-byte slot
// whatever its kind and an idle one owns nothing else: no goroutine, no
// buffer.
//
// A session's socket is a raw non-blocking descriptor the hub owns
// (taken from Go's net.Conn with a dup, or accepted without it), written
// with non-blocking writes. What a socket does not take is kept in a
// pooled buffer, up to Config.MaxPending; past that, or when it makes no
// progress for Config.WriteTimeout, the session is closed and counted:
// a slow client never slows the others.
//
// Input is read fairly: the loop reads at most Config.ReadBudget bytes
// of one socket per turn and puts a socket with more on a ready list it
// returns to after the events at hand, so a client that never stops
// sending cannot keep the loop from the others. Input a reading kind has
// not used yet (a frame not whole, a message in fragments) is bounded
// per session (MaxHeldInput), in time (Config.InputTimeout) and for the
// whole hub (Config.InputBudget).
//
// Lock order: a session slot's lock, then Hub.readyMu (taken to put the
// slot on the ready list; never held while a slot's lock is taken), and
// the pools' and counters' own; Hub.closeMu (read) before a slot's lock
// on delivery and open.
package hub
