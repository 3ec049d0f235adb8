// Package memstat reads what the memory study logs from /proc: a
// process's resident memory, the kernel's TCP socket memory and the number
// of established connections to a port.
package memstat
