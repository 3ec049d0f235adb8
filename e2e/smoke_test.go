// Package e2e runs the real binaries: router, gateway and msggen as
// separate processes on free loopback ports, driven the way the README's
// demo drives them.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"
)

// binDir holds the binaries: $COMET_BIN if set (make test builds them
// first), else a fresh `go build` into a temporary directory.
func binDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("COMET_BIN"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/router", "../cmd/gateway", "../cmd/msggen", "../cmd/floodtest", "../bench/hostile")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, set before done closes
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, bin, nil, args...)
}

// startEnv is start with env added to the process's environment.
func startEnv(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(bin), cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so that cleanup reaches its children too;
	// and Wait does not hang on a pipe a child still holds.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			// Stopped as a user would (a router then removes its
			// temporary store), killed if it does not stop in time.
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out)
		}
	})
	return p
}

// stop sends SIGTERM and checks a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM\n%s", p.name, p.err, p.out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit within 15s of SIGTERM", p.name)
	}
}

func runCmd(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// getBody is the body of a GET of url (the test fails if it cannot be had).
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// routerStats is what tests wait for in a router's /stats.
type routerStats struct{ Gateways, Conns int }

// pair is a router and a gateway started by startPair.
type pair struct {
	natsAddr, routerAdmin, gwAddr string
	router, gw                    *proc
	// What each was started with: to start it again.
	routerArgs, gwArgs []string
}

// startPair starts a router on its own NATS and admin addresses
// (routerArgs added) and a gateway on it (its address, NATS and no admin,
// gwArgs added), and waits until the router knows the gateway.
func startPair(t *testing.T, bin string, routerArgs, gwArgs []string) *pair {
	t.Helper()
	p := &pair{natsAddr: freePort(t), routerAdmin: freePort(t), gwAddr: freePort(t)}
	p.routerArgs = append([]string{"-nats-addr", p.natsAddr, "-admin", p.routerAdmin}, routerArgs...)
	p.router = start(t, bin+"/router", p.routerArgs...)
	p.gwArgs = append([]string{"-addr", p.gwAddr, "-admin", "off", "-nats", "nats://" + p.natsAddr}, gwArgs...)
	p.gw = start(t, bin+"/gateway", p.gwArgs...)
	waitRouter(t, p.routerAdmin, "gateway registered", func(st routerStats) bool { return st.Gateways == 1 })
	return p
}

// waitRouter waits until the /stats of the router at admin (no admin
// token) satisfy ok.
func waitRouter(t *testing.T, admin, what string, ok func(routerStats) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	c := http.Client{Timeout: 5 * time.Second}
	for {
		var st routerStats
		var last string
		resp, err := c.Get("http://" + admin + "/stats")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err = json.Unmarshal(b, &st); err == nil && ok(st) {
				return
			}
			last = string(b)
		}
		if time.Now().After(deadline) {
			// What the router said last, for the next one to read.
			t.Fatalf("timed out after 20s waiting for %s (last /stats: %v %s)", what, err, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testclient.WaitFor(t, what, 20*time.Second, cond)
}

func TestSmoke(t *testing.T) {
	bin := binDir(t)
	natsAddr, routerAdmin, gwAddr, gwAdmin := freePort(t), freePort(t), freePort(t), freePort(t)
	router := start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin)
	gw := start(t, bin+"/gateway", "-addr", gwAddr, "-admin", gwAdmin, "-nats", "nats://"+natsAddr, "-name", "smoke")

	type stats struct {
		Conns     int    `json:"conns"`
		Gateways  int    `json:"gateways"`
		Sent      uint64 `json:"sent"`
		Delivered uint64 `json:"delivered"`
	}
	routerStats := func() stats {
		var s stats
		getJSON("http://"+routerAdmin+"/stats", &s)
		return s
	}
	waitFor(t, "gateway registered with the router", func() bool { return routerStats().Gateways == 1 })

	s123 := testclient.Open(t, gwAddr, 123)
	s1 := testclient.Open(t, gwAddr, 1)
	waitFor(t, "two logins", func() bool { return routerStats().Conns == 2 })
	resp, err := http.Get("http://" + gwAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`comet_gateway_sessions_open{kind="html"} 2`, `comet_gateway_sessions_open{kind="sse"} 0`, `comet_gateway_sessions_open{kind="poll"} 0`} {
		if !strings.Contains(string(metrics), m) {
			t.Fatalf("gateway /metrics lacks %q:\n%s", m, metrics)
		}
	}

	out, err := runCmd(t, bin+"/router", "send", "-admin", routerAdmin, "123", "Hello World")
	if err != nil || !strings.Contains(out, "delivered to 1 conn(s)") {
		t.Fatalf("router send: %v\n%s", err, out)
	}
	if got := s123.Next(5 * time.Second); got != "Recvd msg #1: 'Hello World'<br/>\n" {
		t.Fatalf("got %q", got)
	}
	out, err = runCmd(t, bin+"/router", "whois", "-admin", routerAdmin, "123")
	if err != nil || !strings.Contains(out, `"gateway": "smoke"`) {
		t.Fatalf("router whois: %v\n%s", err, out)
	}

	// msggen:start(20, 10, 1): every message goes to id 1.
	out, err = runCmd(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-n", "20", "-interval", "10ms", "-max", "1")
	if err != nil || !strings.Contains(out, "sent 20 messages") || !strings.Contains(out, "0 errors") {
		t.Fatalf("msggen: %v\n%s", err, out)
	}
	for i := 1; i <= 20; i++ {
		if got, want := s1.Next(5*time.Second), testclient.Msg(i, fmt.Sprintf("Fake message Num = %d", 21-i)); got != want {
			t.Fatalf("msggen message %d: got %q want %q", i, got, want)
		}
	}
	out, err = runCmd(t, bin+"/router", "stats", "-admin", routerAdmin)
	if err != nil || !strings.Contains(out, `"sent": 21`) || !strings.Contains(out, `"delivered": 21`) {
		t.Fatalf("router stats: %v\n%s", err, out)
	}
	// Every stage of a delivery's latency counted what went through it:
	// the 20 msggen frames routed and confirmed, their batches queued
	// and written.
	stageCount := regexp.MustCompile(`(comet_\w+_seconds)_count (\d+)`)
	counted := map[string]int{}
	for _, admin := range []string{routerAdmin, gwAdmin} {
		for _, m := range stageCount.FindAllStringSubmatch(getBody(t, "http://"+admin+"/metrics"), -1) {
			counted[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	for _, stage := range []string{"comet_router_route_seconds", "comet_router_down_confirm_seconds",
		"comet_gateway_down_submit_seconds", "comet_gateway_write_queue_seconds", "comet_gateway_write_round_seconds",
		"comet_gateway_output_wait_seconds"} {
		if counted[stage] < 20 {
			t.Errorf("%s counted %d, want at least 20 (%v)", stage, counted[stage], counted)
		}
	}

	// Bad input never hurts: a 400, then the stream still works.
	resp, err = http.Get("http://" + gwAddr + "/test/x")
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("bad id: %v %v", resp, err)
	}
	resp.Body.Close()

	gw.stop(t)
	for _, s := range []*testclient.Stream{s123, s1} {
		if got := s.Next(5 * time.Second); got != "" || !s.Done() {
			t.Fatalf("after gateway SIGTERM: %q, terminated=%v", got, s.Done())
		}
	}
	waitFor(t, "logins removed", func() bool { st := routerStats(); return st.Conns == 0 && st.Gateways == 0 })
	router.stop(t)

	// With the router gone, msggen fails loudly.
	out, err = runCmd(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-n", "1")
	if err == nil || !strings.Contains(out, "is the router running?") {
		t.Fatalf("msggen without a router: %v\n%s", err, out)
	}
	out, err = runCmd(t, bin+"/router", "send", "-admin", routerAdmin, "1", "x")
	if err == nil || !strings.Contains(out, "unreachable") {
		t.Fatalf("router send without a router: %v\n%s", err, out)
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	bin := binDir(t)
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"gateway", "-h"}, "Usage: gateway", 2},
		{[]string{"router", "-h"}, "Usage: router", 2},
		{[]string{"msggen", "-h"}, "Usage: msggen", 2},
		{[]string{"gateway", "-nope"}, "flag provided but not defined", 2},
		{[]string{"gateway", "-name", "bad.name", "-connect-timeout", "1ms"}, "name \"bad.name\"", 1},
		{[]string{"router", "send", "abc", "x"}, "bad id", 1},
		{[]string{"router", "send"}, "send takes an id and a message", 2},
		{[]string{"msggen", "-max", "0"}, "-max 0", 1},
		{[]string{"gateway", "-log-level", "loud"}, "log level", 1},
	} {
		out, err := runCmd(t, bin+"/"+tc.args[0], tc.args[1:]...)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d (want %d), output:\n%s", tc.args, code, tc.code, out)
		}
	}
}

// TestGatewayProcs: -procs 2 runs two gateway processes on one port, each
// its own identity to the router, restarts one that dies, and stops both
// on SIGTERM.
func TestGatewayProcs(t *testing.T) {
	bin := binDir(t)
	natsAddr, routerAdmin, gwAddr := freePort(t), freePort(t), freePort(t)
	start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin)
	gw := start(t, bin+"/gateway", "-procs", "2", "-addr", gwAddr, "-admin", "off", "-nats", "nats://"+natsAddr, "-name", "multi")
	type stats struct {
		Conns       int `json:"conns"`
		Gateways    int `json:"gateways"`
		GatewayList []struct {
			Name  string `json:"name"`
			Conns int    `json:"conns"`
		} `json:"gateway_list"`
	}
	routerStats := func() stats {
		var s stats
		getJSON("http://"+routerAdmin+"/stats", &s)
		return s
	}
	waitFor(t, "two gateway processes", func() bool { return routerStats().Gateways == 2 })
	streams := make([]*testclient.Stream, 40)
	for i := range streams {
		streams[i] = testclient.Open(t, gwAddr, int64(i+1))
	}
	waitFor(t, "40 logins", func() bool { return routerStats().Conns == 40 })
	st := routerStats()
	if st.GatewayList[0].Name != "multi-0" || st.GatewayList[1].Name != "multi-1" {
		t.Fatalf("gateways %+v", st.GatewayList)
	}
	t.Logf("streams per process: %d and %d", st.GatewayList[0].Conns, st.GatewayList[1].Conns)

	// Kill one process: its streams end, the router forgets it, the
	// supervisor starts it again, the other's streams keep working.
	out, _ := exec.Command("pgrep", "-f", "name multi-1").Output()
	pid := strings.Fields(string(out))
	if len(pid) != 1 {
		t.Fatalf("pgrep: %q", out)
	}
	exec.Command("kill", "-9", pid[0]).Run()
	waitFor(t, "killed process restarted", func() bool {
		s := routerStats()
		return s.Gateways == 2 && s.Conns == s.GatewayList[0].Conns && s.GatewayList[1].Conns == 0
	})
	var alive *testclient.Stream
	for i, s := range streams {
		out, err := runCmd(t, bin+"/router", "send", "-admin", routerAdmin, fmt.Sprint(i+1), "hi")
		if err == nil && strings.Contains(out, "delivered to 1 conn(s)") {
			alive = s
			break
		}
	}
	if alive == nil || alive.Next(5*time.Second) != testclient.Msg(1, "hi") {
		t.Fatal("no stream of the surviving process works")
	}
	gw.stop(t)
	waitFor(t, "all logged out", func() bool { s := routerStats(); return s.Gateways == 0 && s.Conns == 0 })
}
