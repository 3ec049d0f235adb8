// Command nchanpub publishes messages to nginx+nchan by HTTP POST, flat
// out from -conc keep-alive connections, to random channels 1..-max: the
// sender side of nchan's row in `make bench-throughput`. Each message is
// "Fake message Num = K", like msggen's. It prints how many POSTs
// succeeded, failed, and the rate.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nchanpub:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "http://127.0.0.1:8080/pub/", "publisher URL prefix; the channel id is appended")
	n := flag.Int("n", 100000, "messages to publish")
	max := flag.Int("max", 10000, "channels are random in 1..max")
	conc := flag.Int("conc", 16, "concurrent keep-alive connections")
	flag.Parse()
	host := (*url)[len("http://"):]
	if i := bytes.IndexByte([]byte(host), '/'); i >= 0 {
		host = host[:i]
	}
	if h, _, err := net.SplitHostPort(host); err != nil || !net.ParseIP(h).IsLoopback() {
		return fmt.Errorf("-url %q: only loopback targets", *url)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}, Timeout: 30 * time.Second}
	var next, ok, failed atomic.Int64
	statuses := sync.Map{}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			var body []byte
			for ctx.Err() == nil {
				k := next.Add(1)
				if k > int64(*n) {
					return
				}
				body = strconv.AppendInt(append(body[:0], "Fake message Num = "...), int64(*n)-k+1, 10)
				req, _ := http.NewRequestWithContext(ctx, "POST", *url+strconv.Itoa(1+rng.IntN(*max)), bytes.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					failed.Add(1)
					c, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
					c.(*atomic.Int64).Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	bad := ""
	statuses.Range(func(k, v any) bool { bad += fmt.Sprintf(" %d×%d", v.(*atomic.Int64).Load(), k); return true })
	fmt.Printf("nchanpub: published %d messages in %s (%.0f/s), %d failed%s\n", ok.Load(), el.Round(time.Millisecond), float64(ok.Load())/el.Seconds(), failed.Load(), bad)
	return nil
}
