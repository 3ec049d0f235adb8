// Package fdtable is a table of per-connection state indexed by file
// descriptor. The kernel hands out the lowest free descriptor, so the
// table is dense where it is used; scans stop at the highest descriptor
// ever used, and only the pages of slots in use become resident.
//
// Every slot has its own lock and a generation that changes when a
// connection opens on that descriptor and again when it closes (odd while
// open). A key, generation and descriptor in one uint64, names one
// connection for as long as it lives: a lookup with the key of a
// connection that has closed finds nothing, even when the descriptor has
// been reused since.
//
// The gateway's hub keeps its client sessions in one; floodtest its
// clients.
package fdtable
