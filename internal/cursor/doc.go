// Package cursor is a position in one id's message sequence, and its
// text form.
//
// Every message sent to an id that has a resumable client (SSE, long-poll)
// gets a position (Epoch, Seq) in that id's sequence: Seq counts from 1,
// and Epoch names one life of the id's history, so that a history that was
// lost (the router restarted, or the id was idle past its grace period)
// never passes for one that was kept. The router gives the positions
// (package retention); gateways write them to clients, who come back with
// the last one they have.
package cursor
