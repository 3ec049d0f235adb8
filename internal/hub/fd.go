//go:build linux

package hub

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawConn unwraps fasthttp's hijacked connection.
func rawConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return c
}

// TakeFD duplicates c's socket descriptor and closes c, leaving the caller
// the only owner of the socket (non-blocking, close-on-exec). Closing c
// releases what Go's runtime kept for it (its netFD and poll descriptor).
func TakeFD(c net.Conn) (int, error) {
	raw := rawConn(c)
	sc, ok := raw.(syscall.Conn)
	if !ok {
		raw.Close()
		return -1, fmt.Errorf("hub: %T has no file descriptor", raw)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		raw.Close()
		return -1, fmt.Errorf("hub: %w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		derr = err
	}
	raw.Close()
	if derr != nil {
		return -1, fmt.Errorf("hub: dup: %w", derr)
	}
	return fd, nil
}
