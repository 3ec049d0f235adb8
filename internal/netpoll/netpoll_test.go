//go:build linux

package netpoll

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEvents: a registered socket reports input with its tag, a peer that
// goes away is reported as closed, and Close ends Wait.
func TestEvents(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	if err := p.Add(fds[0], 7); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		fd  int
		tag uint32
		ev  uint32
	}
	events := make(chan ev, 16)
	done := make(chan error, 1)
	go func() { done <- p.Wait(func(fd int, tag uint32, e uint32) { events <- ev{fd, tag, e} }) }()
	next := func(want uint32) ev {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.ev&want != 0 {
					return e
				}
			case <-deadline:
				t.Fatalf("no event %#x", want)
			}
		}
	}
	unix.Write(fds[1], []byte("x"))
	if e := next(In); e.fd != fds[0] || e.tag != 7 {
		t.Fatalf("event %+v", e)
	}
	unix.Close(fds[1])
	next(HangUp)
	p.Close()
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("Wait returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Close")
	}
	p.Release()
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
