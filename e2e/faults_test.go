package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"
)

// nodeSSE starts e2e/js/sse-client.mjs (the npm eventsource package)
// reading n events from url; wait returns its JSON lines' data once it
// has n, or fails the test.
func nodeSSE(t *testing.T, url string, n int, env ...string) (wait func() []string) {
	return nodeSSEVia(t, nil, url, n, env...)
}

// nodeSSEVia is nodeSSE run through wrap (e.g. ip netns exec NS).
func nodeSSEVia(t *testing.T, wrap []string, url string, n int, env ...string) (wait func() []string) {
	events := nodeSSEEvents(t, wrap, url, n, env...)
	return func() []string {
		t.Helper()
		var data []string
		for _, ev := range events() {
			data = append(data, ev.Data)
		}
		return data
	}
}

// sseEvent is one event sse-client.mjs printed: its id and its data.
type sseEvent struct{ ID, Data string }

// nodeSSEEvents is nodeSSEVia returning the events' ids too.
func nodeSSEEvents(t *testing.T, wrap []string, url string, n int, env ...string) (wait func() []sseEvent) {
	lines := nodeClientVia(t, wrap, "sse-client.mjs", "eventsource", env, url, fmt.Sprint(n))
	return func() []sseEvent {
		t.Helper()
		var evs []sseEvent
		for _, l := range lines() {
			var ev sseEvent
			if err := json.Unmarshal(l, &ev); err != nil {
				t.Fatalf("sse-client line %q: %v", l, err)
			}
			evs = append(evs, ev)
		}
		return evs
	}
}

// nodeClient starts e2e/js/SCRIPT (which uses the npm package pkg) with
// args; wait returns its output lines once it exits 0, or fails the
// test.
func nodeClient(t *testing.T, script, pkg string, env []string, args ...string) (wait func() [][]byte) {
	return nodeClientVia(t, nil, script, pkg, env, args...)
}

// nodeClientVia is nodeClient run through wrap (e.g. ip netns exec NS).
func nodeClientVia(t *testing.T, wrap []string, script, pkg string, env []string, args ...string) (wait func() [][]byte) {
	node := outside(t, "node", "Node.js")
	if !fileExists("js/node_modules/" + pkg + "/package.json") {
		outside(t, "e2e/js/node_modules (scripts/test-deps.sh)", "npm ci --prefix e2e/js")
	}
	argv := append(append(wrap[:len(wrap):len(wrap)], node, "js/"+script), args...)
	run := runNode(t, argv, env, script, 60*time.Second)
	return func() [][]byte {
		t.Helper()
		return bytes.Split(bytes.TrimSpace(run()), []byte("\n"))
	}
}

// runNode starts argv (a Node script, under name in failures) with env
// added; wait returns its standard output once it exits 0, or fails the
// test (a failure, or still running after timeout).
func runNode(t *testing.T, argv, env []string, name string, timeout time.Duration) (wait func() []byte) {
	var out, errOut bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return func() []byte {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s%s", name, err, out.String(), errOut.String())
			}
		case <-time.After(timeout):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s did not finish:\n%s%s", name, out.String(), errOut.String())
		}
		if errOut.Len() > 0 {
			t.Logf("%s said:\n%s", name, errOut.String())
		}
		return out.Bytes()
	}
}

// killGatewayUnder runs a router and a gateway (gwArgs), a client that
// reads 300 messages of id 1 (client starts it on the gateway's address
// and returns its wait), and msggen sending it 300 numbered messages at
// 100/s; a second in, the gateway is killed (SIGKILL) and restarted a
// second later. It returns what the client got and msggen's summary.
func killGatewayUnder(t *testing.T, gwArgs []string, client func(gwAddr string) func() []string) (got []string, sent string) {
	got, sent, _ = gatewayFaultUnder(t, gwArgs, 1, client, 0)
	return got, sent
}

// gatewayFaultUnder is killGatewayUnder with conns connections for the
// client, or with pause > 0, the gateway is paused (SIGSTOP) that long
// instead, and then continues (SIGCONT).
// It returns the router's admin address too. The router keeps 1,000
// messages per id (-retain-messages; default 128): what is sent during
// the fault must still be kept when the client resumes, or it is told
// it missed some (the contract; not what these tests look at).
func gatewayFaultUnder(t *testing.T, gwArgs []string, conns int, client func(gwAddr string) func() []string, pause time.Duration) (got []string, sent, routerAdmin string) {
	bin := binDir(t)
	p := startPair(t, bin, []string{"-retain-messages", "1000"}, gwArgs)
	natsAddr, routerAdmin, gw := p.natsAddr, p.routerAdmin, p.gw
	wait := client(p.gwAddr)
	waitRouter(t, routerAdmin, "the client logged in", func(st routerStats) bool { return st.Conns == conns })
	sender := start(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-n", "300", "-interval", "10ms", "-max", "1", "-numbered", "-every", "0")
	time.Sleep(time.Second)
	if pause > 0 {
		syscall.Kill(-gw.cmd.Process.Pid, syscall.SIGSTOP)
		time.Sleep(pause)
		syscall.Kill(-gw.cmd.Process.Pid, syscall.SIGCONT)
	} else {
		syscall.Kill(-gw.cmd.Process.Pid, syscall.SIGKILL)
		<-gw.done
		time.Sleep(time.Second)
		start(t, bin+"/gateway", p.gwArgs...)
	}
	got = wait()
	<-sender.done
	if sender.err != nil {
		t.Fatalf("msggen: %v\n%s", sender.err, sender.out)
	}
	return got, strings.TrimSpace(sender.out.String()), routerAdmin
}

// TestGatewayPausedUnderEventSource: the gateway under an EventSource
// client (the npm eventsource package) reading 300 numbered messages is
// paused (SIGSTOP) for 5 s, past the router's gateway timeout (3 s): the
// router forgets it and its logins (what is sent meanwhile is kept for
// the id, and msggen is told so); when it continues (SIGCONT) its
// heartbeat is unknown, the router asks for a resync, the gateway sends
// every session back with its cursor, and the router's catch-up fills the
// gap: the client, which never reconnected, ends with all 300, in
// order, none twice.
func TestGatewayPausedUnderEventSource(t *testing.T) {
	got, sent, admin := gatewayFaultUnder(t, []string{"-name", "paused", "-sse-retry", "200ms"}, 1, func(gwAddr string) func() []string {
		return nodeSSE(t, "http://"+gwAddr+"/sse/1", 300)
	}, 5*time.Second)
	purges, resyncs := resyncedInOrder(t, got, admin)
	t.Logf("300 of 300 messages across a 5 s pause of the gateway, in order, none twice; router purges %d, resyncs %d; msggen: %s", purges, resyncs, sent)
}

// resyncedInOrder checks that got is msggen's numbered messages 1, 2,
// ... in order, and that the router at admin forgot a gateway and asked
// it to resync; it returns how many times.
func resyncedInOrder(t *testing.T, got []string, admin string) (purges, resyncs uint64) {
	t.Helper()
	for i, d := range got {
		if want := fmt.Sprintf(" seq=%d", i+1); !strings.HasSuffix(d, want) {
			t.Fatalf("event %d is %q, want one ending %q (all: %q)", i+1, d, want, got)
		}
	}
	var st struct {
		Purges  uint64 `json:"gateway_purges"`
		Resyncs uint64 `json:"resyncs"`
	}
	if err := getJSON("http://"+admin+"/stats", &st); err != nil || st.Purges == 0 || st.Resyncs == 0 {
		t.Fatalf("the router did not forget the gateway and resync it: %v %+v", err, st)
	}
	return st.Purges, st.Resyncs
}

// TestGatewayKilledUnderEventSource: a real EventSource client (the npm
// eventsource package) reads 300 numbered messages while its gateway is
// killed (SIGKILL) and restarted a second later; it reconnects with
// Last-Event-ID and ends with all 300, in order, none twice.
func TestGatewayKilledUnderEventSource(t *testing.T) {
	got, sent := killGatewayUnder(t, []string{"-name", "faults", "-sse-retry", "200ms"}, func(gwAddr string) func() []string {
		return nodeSSE(t, "http://"+gwAddr+"/sse/1", 300)
	})
	for i, d := range got {
		if want := fmt.Sprintf(" seq=%d", i+1); !strings.HasSuffix(d, want) {
			t.Fatalf("event %d is %q, want one ending %q (all: %q)", i+1, d, want, got)
		}
	}
	t.Logf("300 of 300 messages across a gateway kill, in order, none twice; msggen: %s", sent)
}

// TestGatewayKilledUnderWebSocket: the same with a WebSocket client nobody
// here wrote (the npm ws package, e2e/js/ws-client.mjs), which reconnects
// with ?cursor= its last message's position: all 300, in order, none
// twice.
func TestGatewayKilledUnderWebSocket(t *testing.T) {
	got, sent := killGatewayUnder(t, []string{"-name", "faults-ws"}, func(gwAddr string) func() []string {
		wait := nodeClient(t, "ws-client.mjs", "ws", nil, "ws://"+gwAddr+"/ws/1", "300")
		return func() []string {
			var lines []string
			for _, l := range wait() {
				lines = append(lines, string(l))
			}
			return lines
		}
	})
	if len(got) != 300 {
		t.Fatalf("%d messages, want 300", len(got))
	}
	for i, l := range got {
		var m struct{ Cursor, Data string }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("ws-client line %q: %v", l, err)
		}
		if want := fmt.Sprintf(" seq=%d", i+1); !strings.HasSuffix(m.Data, want) || m.Cursor == "" {
			t.Fatalf("message %d is %q at %q, want one ending %q", i+1, m.Data, m.Cursor, want)
		}
	}
	t.Logf("300 of 300 messages over a WebSocket across a gateway kill, in order, none twice; msggen: %s", sent)
}

// TestRouterKilledUnderLoad: the router (and the NATS server it embeds)
// is killed (SIGKILL) while msggen sends 500 messages/s to 2,000 chunked
// streams, and a new one starts a second later on the same address. The
// gateway and msggen reconnect, the gateway gives the new router every
// login back without a client reconnecting, and what msggen was told
// holds: every copy an ack called delivered arrived, none twice, none out
// of order; what was sent while no router was up is reported to the
// sender as not acknowledged (msggen does not resend it), and a copy
// arrived beyond the acked ones only for frames whose ack was lost with
// the router.
func TestRouterKilledUnderLoad(t *testing.T) { routerFaultUnderLoad(t, 0) }

// TestRouterPausedUnderLoad: the router, and the NATS server it embeds,
// paused (SIGSTOP) for 5 s under the same load, then continued
// (SIGCONT): every process waits on its NATS connection, nothing is
// lost that an ack called delivered, and what the router's gateway
// timeout made of the pause is counted and reported to the sender.
func TestRouterPausedUnderLoad(t *testing.T) { routerFaultUnderLoad(t, 5*time.Second) }

// routerFaultUnderLoad kills the router a second and a half into msggen
// sending 2,500 messages at 500/s to 2,000 chunked streams, and starts a
// new one a second later; or, with pause > 0, pauses it that long.
func routerFaultUnderLoad(t *testing.T, pause time.Duration) {
	bin, dir := binDir(t), t.TempDir()
	p := startPair(t, bin, []string{"-store", dir + "/store"}, []string{"-name", "faults"})
	natsAddr, routerAdmin, gwAddr, r1 := p.natsAddr, p.routerAdmin, p.gwAddr, p.router
	conns := func() int {
		var st struct{ Conns int }
		getJSON("http://"+routerAdmin+"/stats", &st)
		return st.Conns
	}
	const clients, msgs = 2000, 2500
	flood := start(t, bin+"/floodtest", "-url", "http://"+gwAddr+"/test/", "-n", fmt.Sprint(clients),
		"-rate", "1000/s", "-duration", "60s", "-every", "5s", "-summary", dir+"/floodtest.json")
	waitFor(t, "every stream logged in", func() bool { return conns() == clients })
	sender := start(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-numbered", "-n", fmt.Sprint(msgs), "-rate", "500",
		"-max", fmt.Sprint(clients), "-procs", "1", "-every", "0", "-summary", dir+"/msggen.json")
	time.Sleep(1500 * time.Millisecond)
	if pause > 0 {
		syscall.Kill(-r1.cmd.Process.Pid, syscall.SIGSTOP)
		time.Sleep(pause)
		syscall.Kill(-r1.cmd.Process.Pid, syscall.SIGCONT)
		waitFor(t, "the router has every login after the pause", func() bool { return conns() == clients })
	} else {
		syscall.Kill(-r1.cmd.Process.Pid, syscall.SIGKILL)
		<-r1.done
		time.Sleep(time.Second)
		start(t, bin+"/router", p.routerArgs...)
		waitFor(t, "the new router has every login back", func() bool { return conns() == clients })
	}
	select {
	case <-sender.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("msggen did not finish:\n%s", sender.out)
	}
	stopFlood(t, flood, 5*time.Second)
	ack, got := readAccounts(t, dir, sender, flood)
	var st struct {
		Purges  uint64 `json:"gateway_purges"`
		Resyncs uint64 `json:"resyncs"`
	}
	getJSON("http://"+routerAdmin+"/stats", &st)
	t.Logf("msggen: sent %d, delivered %d, void %d, dropped %v, unacknowledged %d; streams received %d, errors %v; router purges %d, resyncs %d",
		ack.Sent, ack.Delivered, ack.Void, ack.Dropped, ack.Unacked, got.Stats.Messages, got.Stats.Errors, st.Purges, st.Resyncs)
	checkAccounts(t, msgs, ack, got)
}

// TestNATSClusterLosesARouter: three routers whose embedded NATS servers
// form one cluster (-nats-cluster, -nats-routes); msggen is given all
// three URLs, the gateway the first. That router is killed (SIGKILL)
// while msggen sends to 300 chunked streams: the gateway (and msggen, if
// it was there) reconnects to another server of the cluster, the other routers already hold every login, and
// every copy an ack called delivered arrives, none twice, none out of
// order. Then it is restarted on its old store: its server rejoins the
// cluster, it gets every login back and has every stored subscription.
func TestNATSClusterLosesARouter(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	c := startCluster(t, bin, dir)
	natsURLs, admins, routes, routers, startRouter, stats := c.natsURLs, c.admins, c.routes, c.routers, c.start, c.stats
	all := strings.Join(natsURLs, ",")
	gwAddr := freePort(t)
	// The gateway is given only the router that will be killed: it
	// learns the cluster's other servers from it and must move to one.
	start(t, bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", natsURLs[0], "-name", "clustered")
	// The routers wait for their JetStream cluster to keep the stored
	// subscriptions before they route (up to 30 s on a loaded machine).
	testclient.WaitFor(t, "every router hears the gateway through the cluster", 60*time.Second, func() bool {
		return stats(0).Gateways == 1 && stats(1).Gateways == 1 && stats(2).Gateways == 1
	})
	// A stored subscription, kept by all three NATS servers (-store-replicas 3).
	if out, err := runCmd(t, bin+"/router", "subscribe", "-admin", admins[1], "5", "room"); err != nil {
		t.Fatalf("subscribe: %v\n%s", err, out)
	}
	const clients, msgs = 300, 1000
	flood := start(t, bin+"/floodtest", "-url", "http://"+gwAddr+"/test/", "-n", fmt.Sprint(clients),
		"-rate", "1000/s", "-duration", "60s", "-every", "5s", "-summary", dir+"/floodtest.json")
	waitFor(t, "every router holds every login", func() bool {
		return stats(0).Conns == clients && stats(1).Conns == clients && stats(2).Conns == clients
	})
	// router gateways says which NATS server the gateway is on: the
	// embedded one of router 0 (its name ends in its cluster address).
	onServer := func(i int) bool {
		out, err := runCmd(t, bin+"/router", "gateways", "-admin", admins[1])
		return err == nil && strings.Contains(out, strings.ReplaceAll(strings.TrimPrefix(routes[i], "nats://"), ":", "-")+`"`)
	}
	if !onServer(0) {
		out, _ := runCmd(t, bin+"/router", "gateways", "-admin", admins[1])
		t.Fatalf("router gateways does not show the gateway on router 0's NATS server:\n%s", out)
	}
	sender := start(t, bin+"/msggen", "-nats", all, "-numbered", "-n", fmt.Sprint(msgs), "-rate", "250",
		"-max", fmt.Sprint(clients), "-procs", "1", "-every", "0", "-ack-timeout", "3s", "-summary", dir+"/msggen.json")
	time.Sleep(1500 * time.Millisecond)
	syscall.Kill(-routers[0].cmd.Process.Pid, syscall.SIGKILL)
	<-routers[0].done
	waitFor(t, "router gateways showing the gateway on another NATS server", func() bool { return onServer(1) || onServer(2) })
	select {
	case <-sender.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("msggen did not finish:\n%s", sender.out)
	}
	// The killed router restarted on its old store: its NATS server
	// rejoins the cluster, it hears the gateway (on another server) and
	// gets every login back from it, and its stored subscriptions are
	// the cluster's, the one taken while it was down included.
	if out, err := runCmd(t, bin+"/router", "subscribe", "-admin", admins[2], "7", "room"); err != nil {
		t.Fatalf("subscribe while router 0 is down: %v\n%s", err, out)
	}
	restartedAt := time.Now()
	startRouter(0)
	testclient.WaitFor(t, "the restarted router holding every login", 60*time.Second, func() bool {
		st := stats(0)
		return st.Gateways == 1 && st.Conns == clients
	})
	back := time.Since(restartedAt)
	waitFor(t, "the restarted router's stored subscriptions", func() bool {
		out, err := runCmd(t, bin+"/router", "subscriptions", "-admin", admins[0], "7")
		return err == nil && strings.Contains(out, `"room"`)
	})
	t.Logf("router 0 restarted: every login back %.1f s after its start", back.Seconds())
	stopFlood(t, flood, 5*time.Second)
	// The stored subscriptions outlive the killed router's server, and
	// still take new ones.
	if out, err := runCmd(t, bin+"/router", "subscriptions", "-admin", admins[2], "5"); err != nil || !strings.Contains(out, `"room"`) {
		t.Errorf("subscriptions after the kill: %v\n%s", err, out)
	}
	if out, err := runCmd(t, bin+"/router", "subscribe", "-admin", admins[2], "6", "room"); err != nil {
		t.Errorf("subscribe after the kill: %v\n%s", err, out)
	}
	ack, got := readAccounts(t, dir, sender, flood)
	t.Logf("a router of three killed: msggen sent %d, delivered %d, void %d, dropped %v, unacknowledged %d; streams received %d, errors %v",
		ack.Sent, ack.Delivered, ack.Void, ack.Dropped, ack.Unacked, got.Stats.Messages, got.Stats.Errors)
	checkAccounts(t, msgs, ack, got)
	if ack.Void != 0 || ack.Unacked > msgs/4 {
		t.Errorf("with two routers left, %d went into the void and %d were not acknowledged", ack.Void, ack.Unacked)
	}
}

// ackAccount is msggen's -summary; streamAccount floodtest's.
// stopFlood lets the last deliveries reach floodtest's streams for
// settle, then stops it (SIGINT: it writes its summary). A copy an ack
// called delivered may still be in its gateway's pending output: a
// gateway whose writers are busy holds small writes back up to its
// -write-delay (4 s) to batch them (a CI run stopped floodtest 1 s after
// msggen and counted 2 of 1,885 acked copies not received).
func stopFlood(t *testing.T, flood *proc, settle time.Duration) {
	t.Helper()
	time.Sleep(settle)
	flood.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-flood.done:
	case <-time.After(20 * time.Second):
		t.Fatal("floodtest did not stop on SIGINT")
	}
}

type ackAccount struct {
	Sent, Delivered, Void, Kept, Errors uint64
	Dropped                             map[string]uint64
	Unacked                             uint64 `json:"unacknowledged"`
	Retried                             uint64 `json:"retried"`
	// Resent: frames sent again after no ack (their frame-id lets a
	// router that took the first answer the copy); Retaken: messages
	// acked by a router that took over from the one that routed them.
	Resent  uint64 `json:"resent"`
	Retaken uint64 `json:"retaken"`
}

// dropped is every copy the acks said was dropped, whatever the reason.
func (a ackAccount) dropped() uint64 {
	n := uint64(0)
	for _, k := range a.Dropped {
		n += k
	}
	return n
}

type streamAccount struct {
	Stats struct {
		Messages uint64            `json:"messages"`
		Errors   map[string]uint64 `json:"errors"`
	} `json:"stats"`
}

func readAccounts(t *testing.T, dir string, sender, flood *proc) (ackAccount, streamAccount) {
	t.Helper()
	var ack ackAccount
	var got streamAccount
	readJSON(t, dir+"/msggen.json", &ack, sender, flood)
	readJSON(t, dir+"/floodtest.json", &got, sender, flood)
	return ack, got
}

// readJSON reads the JSON file at path into v, or fails the test with
// what the processes that wrote it printed.
func readJSON(t *testing.T, path string, v any, procs ...*proc) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		var outs strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&outs, "\n%s", p.out)
		}
		t.Fatalf("%s: %v %s%s", path, err, b, outs.String())
	}
}

// checkAccounts holds msggen's acks to what the streams received: sent
// counts the acknowledged messages and the rest (sent while no router
// took them, or whose ack was lost with one) are unacknowledged, so the
// sender is told and never told they were delivered; every copy an ack
// called delivered arrived, and more only for unacknowledged frames. A
// numbered message a router sent into the void (before a gateway's
// logins were back) leaves a gap in its id's numbers, which floodtest
// counts as lost, and so does one of a frame that died with the router
// that took it (unacknowledged: the sender was told): no more gaps than
// those, and nothing repeated or out of order.
func checkAccounts(t *testing.T, msgs uint64, ack ackAccount, got streamAccount) {
	t.Helper()
	if ack.Sent+ack.Unacked != msgs || ack.Delivered+ack.Void+ack.Kept+ack.dropped() != ack.Sent {
		t.Errorf("msggen's accounting does not add up to %d: %+v", msgs, ack)
	}
	if ack.Unacked == msgs || ack.Delivered == 0 {
		t.Errorf("nothing got through: %+v", ack)
	}
	if got.Stats.Messages < ack.Delivered || got.Stats.Messages > ack.Delivered+ack.Unacked {
		t.Errorf("streams received %d; acks said %d delivered (%d unacknowledged)", got.Stats.Messages, ack.Delivered, ack.Unacked)
	}
	for kind, n := range got.Stats.Errors {
		if kind != "lost" || n > ack.Void+ack.Unacked {
			t.Errorf("floodtest saw %d %s (void %d, unacknowledged %d): %v", n, kind, ack.Void, ack.Unacked, got.Stats.Errors)
		}
	}
}

// TestPresenceAfterGatewayKill: a watcher of a topic (?presence=1, over
// curl) sees the members of a gateway killed with SIGKILL leave, within
// the router's gateway timeout and the next presence event.
func TestPresenceAfterGatewayKill(t *testing.T) {
	bin := binDir(t)
	curl := outside(t, "curl", "apt-get install curl")
	natsAddr, routerAdmin, gw1, gw2 := freePort(t), freePort(t), freePort(t), freePort(t)
	start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin, "-gateway-timeout", "2s")
	start(t, bin+"/gateway", "-addr", gw1, "-admin", "off", "-nats", "nats://"+natsAddr, "-name", "stays")
	doomed := start(t, bin+"/gateway", "-addr", gw2, "-admin", "off", "-nats", "nats://"+natsAddr, "-name", "doomed")
	waitRouter(t, routerAdmin, "two gateways", func(st routerStats) bool { return st.Gateways == 2 })
	watcher := start(t, curl, "-sN", "http://"+gw1+"/sse/1?topics=room&presence=1")
	for id := 2; id <= 4; id++ {
		start(t, curl, "-sN", fmt.Sprintf("http://%s/test/%d?topics=room", gw2, id))
	}
	waitFor(t, "the members' joins", func() bool {
		return strings.Count(watcher.out.String(), `"joined":[`) >= 1 && strings.Contains(watcher.out.String(), "4]")
	})
	killed := time.Now()
	syscall.Kill(-doomed.cmd.Process.Pid, syscall.SIGKILL)
	waitFor(t, "the members' leaves", func() bool { return strings.Contains(watcher.out.String(), `"left":[2,3,4]`) })
	if d := time.Since(killed); d > 5*time.Second {
		t.Errorf("left after %s (gateway timeout 2s, events every 1s)", d)
	}
	var p struct{ Conns int }
	getJSON("http://"+routerAdmin+"/topics/room", &p)
	if p.Conns != 1 {
		t.Errorf("presence after the kill: %+v", p)
	}
}

// libraryReader starts clients/js/testing/reader.mjs: a client of the
// project's JavaScript library per transport, each reading n messages of
// id from the gateway at url. wait returns each transport's messages
// once it exits 0, or fails the test.
func libraryReader(t *testing.T, url string, id, n int, env []string, transports ...string) (wait func() map[string][]sseEvent) {
	node := outside(t, "node", "Node.js")
	if !fileExists("../clients/js/node_modules/ws/package.json") {
		outside(t, "clients/js/node_modules (scripts/test-deps.sh)", "npm ci --prefix clients/js")
	}
	argv := append([]string{node, "../clients/js/testing/reader.mjs", url, fmt.Sprint(id), fmt.Sprint(n)}, transports...)
	run := runNode(t, argv, env, "reader.mjs", 180*time.Second)
	return func() map[string][]sseEvent {
		t.Helper()
		out := run()
		got := map[string][]sseEvent{}
		for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var m struct {
				Transport, Cursor, Data string
				Missed                  any
			}
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("reader.mjs line %q: %v", l, err)
			}
			if m.Missed != nil {
				t.Logf("reader.mjs: %s", l)
				continue
			}
			got[m.Transport] = append(got[m.Transport], sseEvent{ID: m.Cursor, Data: m.Data})
		}
		return got
	}
}
