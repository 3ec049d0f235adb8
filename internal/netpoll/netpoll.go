//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Event bits passed to the handler.
const (
	In    = unix.EPOLLIN
	Out   = unix.EPOLLOUT
	RdHup = unix.EPOLLRDHUP
	Hup   = unix.EPOLLHUP
	Err   = unix.EPOLLERR
	// HangUp is every bit that says the connection is over: the peer
	// closed or reset it, or it failed.
	HangUp = RdHup | Hup | Err
)

// ErrClosed is returned by Wait after Close.
var ErrClosed = errors.New("netpoll: poller closed")

// Poller is an epoll set plus an eventfd used to wake Wait for Close.
type Poller struct {
	epfd   int
	wakefd int
	closed atomic.Bool
}

// New creates an epoll set.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("netpoll: add eventfd: %w", err)
	}
	return &Poller{epfd: epfd, wakefd: wakefd}, nil
}

// Add registers fd, edge-triggered, for input, output and hang-ups. tag is
// handed back with every event so the owner can tell a reused descriptor
// number from the one it registered. A descriptor leaves the set when it
// is closed.
func (p *Poller) Add(fd int, tag uint32) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(fd),
		Pad:    int32(tag),
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("netpoll: add fd %d: %w", fd, err)
	}
	return nil
}

// Remove stops watching fd (before fd is handed to someone else: a
// registration outlives the descriptor number while a dup of it is open).
func (p *Poller) Remove(fd int) error {
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("netpoll: epoll_ctl del %d: %w", fd, err)
	}
	return nil
}

// Wait calls handle for every event until Close is called, then returns
// ErrClosed. Only one goroutine may call Wait.
func (p *Poller) Wait(handle func(fd int, tag uint32, events uint32)) error {
	return p.WaitMore(handle, nil)
}

// WaitMore is Wait for an owner that defers work: after each batch of
// events (and after Wake), more is called, and while it reports that
// work remains the next wait does not block, so deferred work and new
// events take turns.
func (p *Poller) WaitMore(handle func(fd int, tag uint32, events uint32), more func() bool) error {
	events := make([]unix.EpollEvent, 256)
	timeout := -1
	for {
		n, err := unix.EpollWait(p.epfd, events, timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if p.closed.Load() {
				return ErrClosed
			}
			return fmt.Errorf("netpoll: epoll_wait: %w", err)
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			if int(ev.Fd) == p.wakefd {
				if p.closed.Load() {
					return ErrClosed
				}
				var b [8]byte
				unix.Read(p.wakefd, b[:])
				continue
			}
			handle(int(ev.Fd), uint32(ev.Pad), ev.Events)
		}
		timeout = -1
		if more != nil && more() {
			timeout = 0
		}
	}
}

// Wake makes a waiting WaitMore call more soon (work deferred from
// another goroutine).
func (p *Poller) Wake() {
	var one = [8]byte{1}
	unix.Write(p.wakefd, one[:])
}

// Close wakes Wait, which returns ErrClosed, and releases the epoll set.
// Registered descriptors are not closed.
func (p *Poller) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	var one = [8]byte{1}
	_, err := unix.Write(p.wakefd, one[:])
	return err
}

// Release frees the poller's own descriptors; call it after Wait returned.
func (p *Poller) Release() {
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
