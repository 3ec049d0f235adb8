package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netns is a network namespace joined to this one by a veth pair: the
// host end has hostIP, the namespace's end nsIP (a /30 of 10.211.0.0/16).
type netns struct {
	name, hostDev, hostIP, nsIP string
}

// newNetns makes a namespace (root and iproute2 needed: without them the
// test is skipped, unless COMET_REQUIRE_OUTSIDE=1) and removes it when
// the test ends.
func newNetns(t *testing.T) *netns {
	t.Helper()
	ip := outside(t, "ip", "apt-get install iproute2")
	if os.Geteuid() != 0 {
		if os.Getenv("COMET_REQUIRE_OUTSIDE") == "1" {
			t.Fatal("network namespaces need root, and COMET_REQUIRE_OUTSIDE=1")
		}
		t.Skip("network namespaces need root")
	}
	k := os.Getpid()%16000 + 4 // a /30 per test process: 10.211.x.y
	n := &netns{name: fmt.Sprintf("comet-part-%d", os.Getpid()), hostDev: fmt.Sprintf("cph%d", os.Getpid()),
		hostIP: fmt.Sprintf("10.211.%d.%d", k*4/256, k*4%256+1), nsIP: fmt.Sprintf("10.211.%d.%d", k*4/256, k*4%256+2)}
	nsDev := fmt.Sprintf("cpn%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command(ip, "link", "del", n.hostDev).Run()
		exec.Command(ip, "netns", "del", n.name).Run()
	})
	run("link", "add", n.hostDev, "type", "veth", "peer", "name", nsDev)
	run("link", "set", nsDev, "netns", n.name)
	run("addr", "add", n.hostIP+"/30", "dev", n.hostDev)
	run("link", "set", n.hostDev, "up")
	run("-n", n.name, "addr", "add", n.nsIP+"/30", "dev", nsDev)
	run("-n", n.name, "link", "set", nsDev, "up")
	run("-n", n.name, "link", "set", "lo", "up")
	return n
}

// exec is the command prefix that runs a program inside the namespace.
func (n *netns) exec() []string { return []string{"ip", "netns", "exec", n.name} }

// cut takes the link down (every packet between the namespace and the
// host is lost) or brings it back.
func (n *netns) cut(t *testing.T, down bool) {
	t.Helper()
	state := "up"
	if down {
		state = "down"
	}
	if out, err := exec.Command("ip", "link", "set", n.hostDev, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v\n%s", n.hostDev, state, err, out)
	}
}

// TestGatewayPartitionedFromNATS: a gateway and its EventSource client
// (the npm eventsource package) in a network namespace, the router and
// its NATS outside, joined by a veth pair; msggen sends the client 300
// numbered messages at 100/s. A second in, the link is cut for 5 s, past
// the router's gateway timeout (3 s): the router forgets the gateway and
// its logins (what is sent meanwhile is kept for the id, and msggen is
// told so), the gateway's client sees nothing; the link comes back, TCP
// delivers what it held, the router sees an unknown gateway's heartbeat
// and asks it to resync, the gateway sends every session back with its
// cursor and the router's catch-up fills the gap (the router keeps 1,000
// messages per id here, more than the outage's): the client, which never
// reconnected, ends with all 300, in order, none twice.
func TestGatewayPartitionedFromNATS(t *testing.T) {
	n := newNetns(t)
	bin := binDir(t)
	natsAddr := n.hostIP + ":4242"
	routerAdmin := freePort(t)
	// NATS beyond loopback asks for a token (the router insists).
	token := t.TempDir() + "/nats.token"
	if err := os.WriteFile(token, []byte(fmt.Sprintf("partition-test-%d-%d\n", os.Getpid(), time.Now().UnixNano())), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, bin+"/router", "-nats-addr", natsAddr, "-nats-token-file", token, "-admin", routerAdmin, "-retain-messages", "1000")
	gwAddr := "127.0.0.1:8480" // inside the namespace: its own loopback
	start(t, "ip", append(n.exec()[1:], bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", "nats://"+natsAddr, "-nats-token-file", token,
		"-name", "cut-off", "-sse-retry", "200ms")...)
	waitRouter(t, routerAdmin, "gateway registered", func(st routerStats) bool { return st.Gateways == 1 })
	wait := nodeSSEVia(t, n.exec(), "http://"+gwAddr+"/sse/1", 300)
	waitRouter(t, routerAdmin, "the client logged in", func(st routerStats) bool { return st.Conns == 1 })
	sender := start(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-nats-token-file", token, "-n", "300", "-interval", "10ms", "-max", "1", "-numbered", "-every", "0")
	time.Sleep(time.Second)
	n.cut(t, true)
	cutAt := time.Now()
	waitRouter(t, routerAdmin, "the router forgetting the cut-off gateway", func(st routerStats) bool { return st.Gateways == 0 })
	forgotten := time.Since(cutAt)
	time.Sleep(2 * time.Second)
	n.cut(t, false)
	healedAt := time.Now()
	waitRouter(t, routerAdmin, "the gateway back", func(st routerStats) bool { return st.Gateways == 1 && st.Conns == 1 })
	back := time.Since(healedAt)
	got := wait()
	<-sender.done
	if sender.err != nil {
		t.Fatalf("msggen: %v\n%s", sender.err, sender.out)
	}
	purges, resyncs := resyncedInOrder(t, got, routerAdmin)
	t.Logf("300 of 300 messages across a %.1f s network partition between the gateway and NATS (the router forgot the gateway after %.1f s; "+
		"it was back with its login %.2f s after the link), in order, none twice; router purges %d, resyncs %d; msggen: %s",
		healedAt.Sub(cutAt).Seconds(), forgotten.Seconds(), back.Seconds(), purges, resyncs, strings.TrimSpace(sender.out.String()))
}
