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
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/supervise"
)

func main() { cli.Main("naive", run) }

func run(ctx context.Context, args []string) error {
	ln, err := supervise.ReusePort(ctx, flag.NewFlagSet("naive", flag.ContinueOnError), args)
	if err != nil || ln == nil {
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
