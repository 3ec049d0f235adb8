// Command naivews is the WebSocket baseline of `make bench-memory`: the
// server a Go developer writes first, with gorilla/websocket on net/http
// (a goroutine per socket reading it, with gorilla's read and write
// buffers, for the socket's whole life). It serves GET /ws/{id} like the
// gateway: the upgrade, then the socket held until it closes. -procs N
// runs N processes on one port with SO_REUSEPORT, as the gateway does.
package main

import (
	"context"
	"flag"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/supervise"
)

func main() { cli.Main("naivews", run) }

func run(ctx context.Context, args []string) error {
	ln, err := supervise.ReusePort(ctx, flag.NewFlagSet("naivews", flag.ContinueOnError), args)
	if err != nil || ln == nil {
		return err
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/ws/")
		if _, err := strconv.ParseInt(id, 10, 64); !ok || err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for { // the socket's goroutine: reads (answering pings) until it closes
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err = srv.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
