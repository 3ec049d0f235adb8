// Command floor is the kernel's floor for a broadcast: a bare server that
// answers GET /test/{id} with the gateway's chunked head and welcome
// chunk, keeps the sockets, and every -every writes one chunk, the same
// bytes for all, to every socket in tight loops of write(2) on -threads
// OS threads: no queue, no epoll, no per-client state but the descriptor.
// floodtest reads it as it reads the gateway (the same checks), and the
// message is stamped as msggen -stamp stamps a broadcast ("Broadcast #K
// t=NANOS"), so floodtest's time to the last stream is comparable;
// make bench-fanout runs it beside the gateway and reports each
// broadcast as a ratio to it (issue: latency at moderate load).
//
//	floor -addr 127.0.0.1:4590 -count 20 -every 1s [-threads 2] [-reuseport] [-start-on-usr1]
//
// It prints, when done, its CPU time and the deliveries it wrote (one
// JSON line), and exits after -count broadcasts once -wait clients have
// connected (or -timeout).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/cli"
)

func main() { cli.Main("floor", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:4590", "listen address (loopback)")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "OS threads writing each broadcast (as many as the gateway has writers)")
	every := fs.Duration("every", time.Second, "time between broadcasts (each starts on a multiple of it, so processes side by side write together)")
	count := fs.Int("count", 20, "broadcasts to write")
	wait := fs.Int("wait", 1, "clients to wait for before the first broadcast")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting for -wait clients after this long")
	reuse := fs.Bool("reuseport", false, "SO_REUSEPORT, for several floor processes on one port")
	hold := fs.Duration("hold", 2*time.Second, "keep the clients this long after the last broadcast (or until SIGTERM), for the reader to take it")
	onSignal := fs.Bool("start-on-usr1", false, "start broadcasting on SIGUSR1 (when the reader has every client, whichever process they reached) rather than at -wait clients")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	lc := net.ListenConfig{}
	if *reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
			return serr
		}
	}
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var (
		mu    sync.Mutex
		conns []net.Conn // kept so their descriptors stay open
		fds   []int
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				id, ok := readRequest(c)
				if !ok {
					c.Close()
					return
				}
				head := chunked.AppendChunk([]byte(chunked.StreamHeader), chunked.AppendWelcome(nil, id))
				if _, err := c.Write(head); err != nil {
					c.Close()
					return
				}
				raw, err := c.(*net.TCPConn).SyscallConn()
				if err != nil {
					c.Close()
					return
				}
				raw.Control(func(fd uintptr) {
					mu.Lock()
					conns, fds = append(conns, c), append(fds, int(fd))
					mu.Unlock()
				})
			}()
		}
	}()
	usr1 := make(chan os.Signal, 1)
	if *onSignal {
		signal.Notify(usr1, syscall.SIGUSR1)
		*wait = 0
	}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(fds)
		mu.Unlock()
		if n >= *wait && !*onSignal {
			break
		}
		if *onSignal {
			select {
			case <-usr1:
				*onSignal = false
				continue
			default:
			}
		}
		if time.Since(start) > *timeout || ctx.Err() != nil {
			return fmt.Errorf("floor: %d of %d clients after %s", n, *wait, time.Since(start))
		}
	}
	var written, blocked atomic.Uint64
	cpu0 := cpuTime()
	for k := 1; k <= *count; k++ {
		next := time.Now().Truncate(*every).Add(*every)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
		mu.Lock()
		all := fds
		mu.Unlock()
		msg := fmt.Sprintf("Broadcast #%d t=%d", k, time.Now().UnixNano())
		chunk := chunked.AppendChunk(nil, chunked.AppendHTMLMessage(nil, uint64(k), []byte(msg)))
		var wg sync.WaitGroup
		per := (len(all) + *threads - 1) / *threads
		for t := 0; t < *threads; t++ {
			part := all[min(t*per, len(all)):min((t+1)*per, len(all))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				w, b := uint64(0), uint64(0)
				for _, fd := range part {
					if n, err := unix.Write(fd, chunk); err == nil && n == len(chunk) {
						w++
					} else {
						b++ // a full socket buffer: the floor does not queue
					}
				}
				written.Add(w)
				blocked.Add(b)
			}()
		}
		wg.Wait()
	}
	cpu := cpuTime() - cpu0
	out, _ := json.Marshal(map[string]any{"clients": len(fds), "broadcasts": *count, "written": written.Load(), "blocked": blocked.Load(),
		"cpu_seconds": cpu.Seconds(), "cpu_ns_per_delivery": float64(cpu.Nanoseconds()) / float64(max(written.Load(), 1)), "threads": *threads})
	fmt.Println(string(out))
	select { // the reader takes the last broadcast
	case <-ctx.Done():
	case <-time.After(*hold):
	}
	runtime.KeepAlive(conns)
	return nil
}

// readRequest reads a GET /test/{id} request head and returns the id.
func readRequest(c net.Conn) (int64, bool) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	r := bufio.NewReaderSize(c, 1024)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, false
	}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, false
		}
		if h == "\r\n" || h == "\n" {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[1], "/test/") {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(f[1], "/test/"), 10, 64)
	return id, err == nil
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
