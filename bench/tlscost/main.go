// Command tlscost measures what TLS costs per connection in the
// production setup (deploy/nginx/comet.conf, nginx terminating TLS in
// front of a gateway): it runs that nginx with one TLS and one plain
// listener in the same server block, opens N streams through each in
// turn, and reports nginx's resident memory and CPU time per connection:
// plain, TLS with a full handshake, and TLS resuming a session. The
// gateway behind it is the same for all three, so its memory is not part
// of the difference. scripts/bench-tls.sh (make bench-tls) runs it.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cometgw/comet/internal/nginxproxy"
)

func main() {
	gateway := flag.String("gateway", "127.0.0.1:8000", "a running gateway (open, on loopback) to proxy to")
	n := flag.Int("n", 5000, "streams per phase (nginx holds two descriptors for each)")
	key := flag.String("key", "ecdsa", "certificate key: ecdsa (P-256) or rsa (2048)")
	template := flag.String("template", "deploy/nginx/comet.conf", "the nginx site configuration")
	path := flag.String("path", "/sse/", "stream path; the id is appended")
	settle := flag.Duration("settle", 5*time.Second, "wait after each ramp before measuring")
	dir := flag.String("dir", "", "directory for nginx's files (default: a temporary one)")
	flag.Parse()
	if *n <= 0 || *n > 9000 {
		fail(fmt.Errorf("-n %d: want 1 to 9000 (nginx's worker holds two descriptors per stream, 20,000 at most)", *n))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *gateway, *n, *key, *template, *path, *settle, *dir); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlscost:", err)
	os.Exit(1)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run(ctx context.Context, gateway string, n int, key, template, path string, settle time.Duration, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "tlscost")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	tlsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	plainAddr, err := freeAddr()
	if err != nil {
		return err
	}
	files, err := nginxproxy.Write(nginxproxy.Config{Template: template, Dir: dir, Gateway: gateway, TLS: tlsAddr, Plain: plainAddr, Key: key})
	if err != nil {
		return err
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	tickets := &ticketPool{}
	base := &tls.Config{RootCAs: files.CAPool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	full := base.Clone()
	full.ClientSessionCache = tickets // filled here, for the resumed phase
	resumed := base.Clone()
	resumed.ClientSessionCache = tickets
	phases := []struct {
		name string
		dial func(i int) (net.Conn, error)
	}{
		{"plain HTTP", func(i int) (net.Conn, error) { return dialer(i).Dial("tcp", plainAddr) }},
		{"TLS, full handshake", func(i int) (net.Conn, error) {
			tickets.noGet = true
			return tls.DialWithDialer(dialer(i), "tcp", tlsAddr, full)
		}},
		{"TLS, resumed session", func(i int) (net.Conn, error) {
			tickets.noGet = false
			return tls.DialWithDialer(dialer(i), "tcp", tlsAddr, resumed)
		}},
	}
	fmt.Printf("nginx %s, %d streams (%s) per phase, %s certificate, settle %s\n\n", version(nginx), n, path, key, settle)
	fmt.Println("| connection | nginx KB per stream | nginx CPU µs per connection | resumed |")
	fmt.Println("|---|---|---|---|")
	for _, ph := range phases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A fresh nginx for each phase: memory an earlier phase freed
		// stays with nginx's allocator and would hide this one's. The
		// session ticket key is in a file, so the resumed phase resumes
		// the sessions the full one made.
		master, stop, err := startNginx(nginx, files.Conf, dir, plainAddr)
		if err != nil {
			return err
		}
		r, err := phase(ctx, master, n, path, settle, ph.dial)
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		fmt.Printf("| %s | %.2f | %.0f | %d of %d |\n", ph.name, r.kb, r.cpuMicros, r.resumed, n)
	}
	return nil
}

// dialer connects as client i from an address of its own (127.2.x.y),
// as clients on the internet would: the proxy's per-address limits
// (limit_conn, limit_req) apply to each alone.
func dialer(i int) *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 2, byte(i/250), byte(i%250+1))}}
}

// startNginx starts nginx and waits until it accepts on probe.
func startNginx(nginx, conf, dir, probe string) (int, func(), error) {
	cmd := exec.Command(nginx, "-c", conf, "-p", dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", probe)
		if err == nil {
			c.Close()
			return cmd.Process.Pid, stop, nil
		}
		if i == 100 {
			stop()
			return 0, nil, fmt.Errorf("nginx did not come up: %v (%s)", err, filepath.Join(dir, "error.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type result struct {
	kb, cpuMicros float64
	resumed       int
}

// phase opens n streams with dial, 32 at a time, measures nginx after
// settle, and closes them.
func phase(ctx context.Context, master, n int, path string, settle time.Duration, dial func(int) (net.Conn, error)) (result, error) {
	var r result
	rss0, cpu0, err := nginxUsage(master)
	if err != nil {
		return r, err
	}
	conns := make([]net.Conn, n)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				c, err := open(func() (net.Conn, error) { return dial(i) }, path, i+1)
				if err != nil {
					select {
					case errs <- fmt.Errorf("stream %d: %w", i+1, err):
					default:
					}
					return
				}
				if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().DidResume {
					mu.Lock()
					r.resumed++
					mu.Unlock()
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		time.Sleep(2 * time.Second) // nginx lets go of them
	}()
	select {
	case err := <-errs:
		return r, err
	default:
	}
	// The handshakes' CPU is counted now; memory once it settles.
	_, cpu1, err := nginxUsage(master)
	if err != nil {
		return r, err
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	rss1, _, err := nginxUsage(master)
	if err != nil {
		return r, err
	}
	r.kb = float64(rss1-rss0) / float64(n)
	r.cpuMicros = float64(cpu1-cpu0) / float64(n)
	return r, nil
}

// open opens one stream and reads its response head.
func open(dial func() (net.Conn, error), path string, id int) (net.Conn, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET %s%d HTTP/1.1\r\nHost: localhost\r\n\r\n", path, id)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}

// nginxUsage is the resident KB and CPU µs (user + system) of nginx's
// master and workers.
func nginxUsage(master int) (rssKB, cpuMicros int64, err error) {
	pids := []int{master}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master, master)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
	}
	for _, p := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				rssKB += v
			}
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0, 0, err
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64) // utime: field 14 of stat
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		cpuMicros += (ut + stt) * 1e6 / 100 // USER_HZ is 100 on Linux
	}
	return rssKB, cpuMicros, nil
}

func version(nginx string) string {
	out, _ := exec.Command(nginx, "-v").CombinedOutput()
	return strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
}

// ticketPool is a client session cache that keeps every ticket nginx
// gives (two per TLS 1.3 handshake) and hands each out once, so each
// connection of the resumed phase resumes a session of its own rather
// than all sharing the one an LRU cache keeps per server name.
type ticketPool struct {
	mu    sync.Mutex
	s     []*tls.ClientSessionState
	noGet bool
}

func (p *ticketPool) Get(string) (*tls.ClientSessionState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.noGet || len(p.s) == 0 {
		return nil, false
	}
	s := p.s[len(p.s)-1]
	p.s = p.s[:len(p.s)-1]
	return s, true
}

func (p *ticketPool) Put(_ string, s *tls.ClientSessionState) {
	if s == nil {
		return
	}
	p.mu.Lock()
	p.s = append(p.s, s)
	p.mu.Unlock()
}
