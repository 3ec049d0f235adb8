package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyz returns the status of GET /readyz at admin (0 if it does not
// answer) and its line.
func readyz(admin string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestRunFromConfigAndEnvironment: a router and a gateway started with no
// flag at all (a TOML file named by COMET_*_CONFIG, the rest in COMET_*
// variables) serve; the gateway's /readyz turns 503 when the router is
// killed and 200 when it is back; SIGTERM drains the gateway: not ready,
// and its SSE streams end spread over -drain-period, each told a retry:
// first.
func TestRunFromConfigAndEnvironment(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	natsAddr, routerAdmin, gwAddr, gwAdmin := freePort(t), freePort(t), freePort(t), freePort(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	routerConf := write("router.toml", fmt.Sprintf("nats-addr = %q\nadmin = %q\nlog-level = \"warn\"\n", natsAddr, routerAdmin))
	routerEnv := []string{"COMET_ROUTER_CONFIG=" + routerConf, "COMET_ROUTER_RETAIN_AGE=1m"}
	gwConf := write("gateway.toml", fmt.Sprintf("nats = %q\nadmin = %q\ndrain-period = \"2s\"\ndrain-min-rate = 1\nready-within = \"2s\"\n", "nats://"+natsAddr, gwAdmin))
	gwEnv := []string{"COMET_GATEWAY_CONFIG=" + gwConf, "COMET_GATEWAY_ADDR=" + gwAddr, "COMET_GATEWAY_NAME=fromenv", "COMET_GATEWAY_SSE_RETRY=1s"}

	// What they will run with, as they print it.
	out, err := runCmdEnv(t, routerEnv, bin+"/router", "config")
	if err != nil || !strings.Contains(out, fmt.Sprintf("admin = %q # file", routerAdmin)) || !strings.Contains(out, `retain-age = "1m0s" # environment COMET_ROUTER_RETAIN_AGE`) {
		t.Fatalf("router config: %v\n%s", err, out)
	}

	router := startEnv(t, bin+"/router", routerEnv)
	gw := startEnv(t, bin+"/gateway", gwEnv)
	waitFor(t, "the gateway ready", func() bool { code, _ := readyz(gwAdmin); return code == 200 })
	if code, line := readyz(routerAdmin); code != 200 {
		t.Fatalf("router /readyz: %d %s", code, line)
	}
	if resp, err := http.Get("http://" + gwAdmin + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("gateway /healthz: %v %v", resp, err)
	}

	router.cmd.Process.Signal(syscall.SIGKILL)
	<-router.done
	waitFor(t, "the gateway not ready without a router", func() bool { code, _ := readyz(gwAdmin); return code == 503 })
	_, line := readyz(gwAdmin)
	startEnv(t, bin+"/router", routerEnv)
	waitFor(t, "the router ready again", func() bool { code, _ := readyz(routerAdmin); return code == 200 })
	waitFor(t, "the gateway ready again", func() bool { code, _ := readyz(gwAdmin); return code == 200 })
	t.Logf("without a router the gateway said %q", line)

	// 200 SSE streams, then SIGTERM: each ends (retry: first) at its own
	// moment of the 2 s drain.
	const n = 200
	ends := make([]time.Duration, n)
	retries := make([]bool, n)
	var wg sync.WaitGroup
	opened := make(chan struct{}, n)
	var stopAt time.Time
	var mu sync.Mutex
	for i := range n {
		resp, err := http.Get(fmt.Sprintf("http://%s/sse/%d", gwAddr, i+1))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			first := true
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					mu.Lock()
					ends[i] = time.Since(stopAt)
					mu.Unlock()
					return
				}
				if strings.HasPrefix(line, "retry:") {
					if first {
						first = false
						opened <- struct{}{}
					} else {
						retries[i] = true
					}
				}
			}
		}()
	}
	for range n {
		<-opened
	}
	waitRouter(t, routerAdmin, "every stream logged in", func(st routerStats) bool { return st.Conns == n })
	mu.Lock()
	stopAt = time.Now()
	mu.Unlock()
	gw.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "the draining gateway not ready", func() bool {
		code, line := readyz(gwAdmin)
		return code == 503 && strings.Contains(line, "draining")
	})
	wg.Wait()
	<-gw.done
	if gw.err != nil {
		t.Fatalf("gateway exited with %v", gw.err)
	}
	// Spread: a 2 s drain of 200 ends 25 every 250 ms; no quarter second
	// may hold more than twice that, and the last ends after 1.5 s.
	buckets := map[int]int{}
	var last time.Duration
	told := 0
	for i, d := range ends {
		buckets[int(d/(250*time.Millisecond))]++
		last = max(last, d)
		if retries[i] {
			told++
		}
	}
	for b, c := range buckets {
		if c > 50 {
			t.Errorf("%d streams ended in quarter second %d of the drain (even: 25)", c, b)
		}
	}
	if last < 1500*time.Millisecond || last > 6*time.Second {
		t.Errorf("the last stream ended %s after SIGTERM; want about the 2 s drain", last)
	}
	if told != n {
		t.Errorf("%d of %d streams were told a retry: before their end", told, n)
	}
	t.Logf("drain: %d streams ended over %s, by quarter second %v", n, last.Round(time.Millisecond), buckets)
}

// runCmdEnv runs bin with env added and returns its combined output.
func runCmdEnv(t *testing.T, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
