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
// With -members M it is instead the floor for a topic at load (topic.go):
// clients of id 1..M are the members, the rest are held idle, and it
// writes -count numbered, stamped messages at -rate a second to every
// member, gathered every -gather.
//
// It prints, when done, its CPU time and the deliveries it wrote (one
// JSON line), and exits after -count broadcasts (or messages) once -wait
// clients have connected (or -timeout).
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
	members := fs.Int64("members", 0, "a topic, not broadcasts: clients of id 1..members get -count messages at -rate, gathered every -gather (0: broadcasts)")
	rate := fs.Float64("rate", 50, "with -members: messages a second")
	gather := fs.Duration("gather", 200*time.Millisecond, "with -members: write what is due to every member this often")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *members < 0 || *members > 0 && (*rate <= 0 || *gather <= 0) {
		return cli.Usagef("-members %d -rate %g -gather %s: members >= 0, rate and gather > 0", *members, *rate, *gather)
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
		fds   []int      // the sockets written: every client's, or the members'
		n     int        // clients
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
					conns, n = append(conns, c), n+1
					if *members == 0 || id >= 1 && id <= *members {
						fds = append(fds, int(fd))
					}
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
		got := n
		mu.Unlock()
		if got >= *wait && !*onSignal {
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
			return fmt.Errorf("floor: %d of %d clients after %s", got, *wait, time.Since(start))
		}
	}
	if *members > 0 {
		mu.Lock()
		all, clients := fds, n
		mu.Unlock()
		t := topic{fds: all, threads: *threads, count: *count, rate: *rate, gather: *gather, align: 5 * time.Second}
		cpu0 := cpuTime()
		if err := t.run(ctx); err != nil {
			return err
		}
		cpu := cpuTime() - cpu0
		deliveries := uint64(len(all)) * uint64(*count)
		out, _ := json.Marshal(map[string]any{"clients": clients, "members": len(all), "messages": *count, "written": deliveries, "writes": t.writes.Load(),
			"partial": t.partial.Load(), "late_ticks": t.late, "cpu_seconds": cpu.Seconds(), "cpu_ns_per_delivery": float64(cpu.Nanoseconds()) / float64(max(deliveries, 1)),
			"threads": *threads, "gather_ns": gather.Nanoseconds()})
		fmt.Println(string(out))
		return holdOn(ctx, *hold, conns)
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
		for _, part := range split(all, *threads) {
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
	return holdOn(ctx, *hold, conns)
}

// holdOn keeps the clients for hold (or until ctx ends): the reader
// takes the last of what was written.
func holdOn(ctx context.Context, hold time.Duration, conns []net.Conn) error {
	select {
	case <-ctx.Done():
	case <-time.After(hold):
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
	path, _, _ := strings.Cut(f[1], "?") // ?topics=: every member is in the one topic
	id, err := strconv.ParseInt(strings.TrimPrefix(path, "/test/"), 10, 64)
	return id, err == nil
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
