// Command naive is the baseline of `make bench-memory`: the streaming
// handler a Go developer writes first, with fasthttp's SetBodyStreamWriter
// (two goroutines and four 4 KB buffers per stream for its whole life). It
// serves GET /test/{id} like the gateway: the same head and welcome chunk,
// then holds the stream idle until shutdown. -procs N runs N processes on
// one port with SO_REUSEPORT, as the gateway does.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/supervise"
)

func main() { cli.Main("naive", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8600", "listen address")
	procs := fs.Int("procs", 1, "processes sharing the port")
	child := fs.Bool("child", false, "run as one of -procs (set by the parent)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *procs > 1 && !*child {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		return supervise.Run(ctx, supervise.Config{N: *procs, Command: func(int) *exec.Cmd {
			c := exec.Command(self, "-child", "-addr", *addr)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			return c
		}})
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
	}}
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		id, ok := strings.CutPrefix(string(c.Path()), "/test/")
		if _, err := strconv.ParseInt(id, 10, 64); !ok || err != nil {
			c.Error("bad id\n", fasthttp.StatusBadRequest)
			return
		}
		c.SetContentType("text/html; charset=utf-8")
		c.SetBodyStreamWriter(func(w *bufio.Writer) {
			fmt.Fprintf(w, "Comet gateway welcomes you! Your Id: %s<br/>\n", id)
			w.Flush()
			<-done
		})
	}, Concurrency: 1 << 20}
	go func() {
		<-ctx.Done()
		close(done)
		ln.Close()
	}()
	err = srv.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
