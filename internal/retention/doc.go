// Package retention is the router's history of every resumable id: the
// positions it gives to messages (package cursor) and the recent messages
// it keeps, so that a long-poll or SSE client that comes back with its
// cursor, through any gateway process, gets every message since, once, in
// order, or is told plainly that some are gone.
//
// An id gets a history when a resumable client of it resumes; the history
// lives while the id has any login and for a grace period after the last,
// and keeps, per id, the last Config.MaxMessages messages no older than
// Config.MaxAge, all ids together within Config.MaxBytes (the oldest go
// first).
package retention
