// Command hostile is the attackers of `make bench-hostile`: N clients of
// each hostile kind against one gateway on loopback, each recording how
// the gateway ended it (a WebSocket close code, an HTTP status, the
// connection closed or reset) and after how long. It stops by itself
// after -duration and prints, and writes with -summary, a JSON object of
// each kind's fates.
//
// Kinds (docs/SECURITY.md, "Hostile clients"):
//
//	flooder    a WebSocket sends a non-final text frame, then empty
//	           continuation frames as fast as it can
//	fragment   a WebSocket sends a non-final 8 KiB frame, then only a
//	           ping every 2 s (it reads what it gets)
//	pinger     a WebSocket sends pings as fast as it can
//	slowloris  an HTTP request head, one byte a second
//	nonreader  a WebSocket with a 4 KiB receive buffer sends requests as
//	           fast as it can and reads nothing
//	bighead    an HTTP request with a 64 KiB header
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/ws"
)

func main() { cli.Main("hostile", run) }

// fate is how one hostile client ended.
type fate struct {
	how   string        // "ws 1008", "http 431", "closed", "reset", "open" (never ended)
	after time.Duration // from its first byte
}

// Kind is one kind's summary.
type Kind struct {
	Clients int            `json:"clients"`
	Ended   map[string]int `json:"ended"`
	Open    int            `json:"open"`
	P50ms   float64        `json:"p50_ms"`
	MaxMs   float64        `json:"max_ms"`
	Failed  int            `json:"failed"` // could not even connect
}

var kinds = []string{"flooder", "fragment", "pinger", "slowloris", "nonreader", "bighead"}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hostile", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "the gateway's address (loopback only)")
	n := fs.Int("n", 100, "clients of each kind")
	first := fs.Int64("first", 900001, "first id the WebSocket attackers open")
	only := fs.String("kinds", strings.Join(kinds, ","), "kinds to run, comma-separated")
	duration := fs.Duration("duration", 60*time.Second, "stop after this long")
	spread := fs.Duration("spread", 2*time.Second, "open each kind's clients over this long")
	summary := fs.String("summary", "", "write the result as JSON to this file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return cli.Usagef("-addr %s: only loopback targets", *addr)
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var mu sync.Mutex
	fates := map[string][]fate{}
	failed := map[string]int{}
	var wg sync.WaitGroup
	id := *first
	for _, k := range strings.Split(*only, ",") {
		if !slices.Contains(kinds, k) {
			return cli.Usagef("unknown kind %q (want %s)", k, strings.Join(kinds, ","))
		}
		for i := 0; i < *n; i++ {
			wg.Add(1)
			go func(k string, id int64, delay time.Duration) {
				defer wg.Done()
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return
				}
				f, err := attack(ctx, *addr, k, id)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed[k]++
					return
				}
				fates[k] = append(fates[k], f)
			}(k, id, time.Duration(i)*(*spread)/time.Duration(*n))
			id++
		}
	}
	wg.Wait()
	out := map[string]Kind{}
	for _, k := range strings.Split(*only, ",") {
		s := Kind{Clients: *n, Ended: map[string]int{}, Failed: failed[k]}
		var times []time.Duration
		for _, f := range fates[k] {
			if f.how == "open" {
				s.Open++
				continue
			}
			s.Ended[f.how]++
			times = append(times, f.after)
		}
		slices.Sort(times)
		if len(times) > 0 {
			s.P50ms = float64(times[len(times)/2]) / 1e6
			s.MaxMs = float64(times[len(times)-1]) / 1e6
		}
		out[k] = s
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	if *summary != "" {
		return os.WriteFile(*summary, append(b, '\n'), 0o644)
	}
	return nil
}

// attack runs one client of kind k until the gateway ends it or ctx ends.
func attack(ctx context.Context, addr, k string, id int64) (fate, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if k == "nonreader" {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fate{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	t0 := time.Now()
	br := bufio.NewReader(c)
	end := func(how string) (fate, error) {
		if ctx.Err() != nil {
			return fate{how: "open"}, nil
		}
		return fate{how: how, after: time.Since(t0)}, nil
	}
	switch k {
	case "slowloris":
		go func() {
			head := fmt.Sprintf("GET /sse/%d HTTP/1.1\r\nHost: x\r\nX-Slow: %s", id, strings.Repeat("a", 1000))
			for i := 0; i < len(head); i++ {
				if _, err := c.Write([]byte{head[i]}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}()
		return end(httpEnd(br))
	case "bighead":
		go c.Write([]byte(fmt.Sprintf("GET /sse/%d HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", id, strings.Repeat("b", 64<<10))))
		return end(httpEnd(br))
	}
	// The WebSocket kinds.
	fmt.Fprintf(c, "GET /ws/%d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", id)
	if k != "nonreader" {
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
			return fate{}, fmt.Errorf("upgrade: %q %v", status, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return fate{}, err
			}
			if l == "\r\n" {
				break
			}
		}
	}
	var frame, start []byte
	pace := time.Duration(0)
	switch k {
	case "flooder":
		start, frame = clientFrame(0x01, []byte("[")), clientFrame(0x00, nil)
	case "pinger":
		frame = clientFrame(0x89, nil)
	case "fragment":
		start, frame, pace = clientFrame(0x01, make([]byte, 8<<10)), clientFrame(0x89, []byte("alive")), 2*time.Second
	case "nonreader":
		frame = clientFrame(0x81, []byte(`{"op":"ping","ref":1}`))
	}
	wrote := make(chan error, 1) // the writer's first failure
	go func() {
		if _, err := c.Write(start); err != nil {
			wrote <- err
			return
		}
		batch := frame
		if pace == 0 {
			for len(batch)+len(frame) <= 16<<10 {
				batch = append(batch, frame...)
			}
		}
		for ctx.Err() == nil {
			if _, err := c.Write(batch); err != nil {
				wrote <- err
				return
			}
			if pace > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(pace):
				}
			}
		}
	}()
	if k == "nonreader" {
		// Reads nothing: it learns of its end when a write fails (the
		// gateway closed a socket with unread input: a reset).
		select {
		case err := <-wrote:
			return end(connEnd(err))
		case <-ctx.Done():
			return end("")
		}
	}
	return end(wsEnd(br))
}

// httpEnd reads an HTTP answer (or the connection's end) and names it.
func httpEnd(br *bufio.Reader) string {
	status, err := br.ReadString('\n')
	if strings.HasPrefix(status, "HTTP/1.") && len(status) >= 12 {
		io.Copy(io.Discard, br)
		return "http " + status[9:12]
	}
	return connEnd(err)
}

// wsEnd reads server frames up to a close frame (or the connection's
// end) and names it.
func wsEnd(br *bufio.Reader) string {
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return connEnd(err)
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return connEnd(err)
		}
		if h[0]&0x0F == 0x8 && len(p) >= 2 {
			return fmt.Sprintf("ws %d", binary.BigEndian.Uint16(p))
		}
	}
}

func connEnd(err error) string {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return "reset"
	}
	return "closed"
}

// clientFrame is a client frame, masked with a zero key.
func clientFrame(b0 byte, payload []byte) []byte {
	return ws.AppendClientFrame(nil, b0, payload, [4]byte{})
}
