package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTopicWholeStreams: every member gets every message once, in order,
// numbered and stamped, also one whose socket is too small to take a
// tick's writes (what it did not take is written first at the next).
func TestTopicWholeStreams(t *testing.T) {
	const members, count = 3, 2000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var fds []int
	var readers []net.Conn
	for i := 0; i < members; i++ {
		d := net.Dialer{}
		if i == 0 { // the slow one: small buffers, read only at the end
			d.Control = func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
			}
		}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		fd := int(f.Fd())
		defer f.Close()
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
		}
		fds = append(fds, fd)
		readers = append(readers, c)
	}
	got := make([]chan []byte, members)
	for i, r := range readers {
		got[i] = make(chan []byte, 1)
		go func() {
			if i == 0 {
				time.Sleep(300 * time.Millisecond)
			}
			var all []byte
			buf := make([]byte, 64<<10)
			for bytes.Count(all, []byte("Recvd msg #")) < count {
				n, err := r.Read(buf)
				all = append(all, buf[:n]...)
				if err == io.EOF || err != nil && n == 0 {
					break
				}
			}
			got[i] <- all
		}()
	}
	tp := topic{fds: fds, threads: 2, count: count, rate: 20000, gather: 10 * time.Millisecond, align: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tp.run(ctx); err != nil {
		t.Fatal(err)
	}
	if tp.partial.Load() == 0 {
		t.Errorf("no partial write to the small socket: the test did not test it")
	}
	for i := range got {
		var all []byte
		select {
		case all = <-got[i]:
		case <-time.After(30 * time.Second):
			t.Fatalf("member %d: no end", i)
		}
		rest := all
		for k := 1; k <= count; k++ {
			want := fmt.Sprintf("Recvd msg #%d: 'Fake message Num = %d seq=%d t=", k, count-k+1, k)
			j := bytes.Index(rest, []byte("\r\n"))
			if j < 0 {
				t.Fatalf("member %d: message %d: no chunk", i, k)
			}
			rest = rest[j+2:]
			if !bytes.HasPrefix(rest, []byte(want)) {
				t.Fatalf("member %d: message %d: %.80q, want %q", i, k, rest, want)
			}
			end := bytes.Index(rest, []byte("<br/>\n\r\n"))
			if end < 0 {
				t.Fatalf("member %d: message %d: unterminated", i, k)
			}
			rest = rest[end+len("<br/>\n\r\n"):]
		}
		if len(rest) != 0 {
			t.Errorf("member %d: %d bytes after the last message", i, len(rest))
		}
		readers[i].Close()
	}
}
