package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"
)

// redundantRun is three -redundant routers on one NATS cluster, a
// gateway given every NATS URL, and an EventSource client (the npm
// eventsource package) on /sse/1; run sends n numbered messages to id 1
// at rate per second with msggen (which sends again what no router took,
// within its 6 s ack timeout, and with resends, what got no ack, after
// it; with one frame in flight, so a frame sent again is not overtaken
// by the next) and calls fault a second in. The client ends once it has
// all n, or once 20 s pass with nothing new. The routers keep 30,000
// messages per id: more than a run sends, so what the client misses
// while away is always there for its resume (a run whose lead was
// vacant 9 s had 10,250 messages kept while the gateway restarted, and
// the client's resume was told it missed the oldest 250 at 10,000).
type redundantRun struct {
	*routerCluster
	gwAddr string
	gwArgs []string
	gw     *proc
	// library adds three clients of id 1 made of the JavaScript library
	// (clients/js), one per transport, each held to the same account.
	library     bool
	librarySeqs [][]int // what each got, once the run ended
}

// conns is how many connections the run's clients hold.
func (r *redundantRun) conns() int {
	if r.library {
		return 4
	}
	return 1
}

func startRedundant(t *testing.T) *redundantRun {
	bin, dir := binDir(t), t.TempDir()
	c := startCluster(t, bin, dir, "-redundant", "-retain-messages", "30000")
	r := &redundantRun{routerCluster: c, gwAddr: freePort(t)}
	r.gwArgs = []string{"-addr", r.gwAddr, "-admin", "off", "-nats", c.all(), "-name", "redundant", "-sse-retry", "200ms"}
	r.gw = start(t, bin+"/gateway", r.gwArgs...)
	testclient.WaitFor(t, "every router hears the gateway, one leads", 60*time.Second, func() bool {
		return c.stats(0).Gateways == 1 && c.stats(1).Gateways == 1 && c.stats(2).Gateways == 1 && c.leader() >= 0
	})
	return r
}

// run returns the seq numbers the client got, in order, and msggen's
// account of the n.
func (r *redundantRun) run(t *testing.T, n, rate int, fault func()) (seqs []int, ack ackAccount) {
	return r.runResending(t, n, rate, 0, fault)
}

// runResending is run with msggen -resends: for graceful restarts,
// where a copy of a frame sent again is answered, never routed twice.
// A run that kills a router does not send copies (a copy of a frame
// the dead leader delivered but had not logged would be routed again:
// docs/PROTOCOL.md, "Sending a frame again"); its frames with no ack
// count unacknowledged.
func (r *redundantRun) runResending(t *testing.T, n, rate, resends int, fault func()) (seqs []int, ack ackAccount) {
	wait := nodeSSEEvents(t, nil, "http://"+r.gwAddr+"/sse/1", n, "SSE_IDLE_EXIT_MS=20000", "SSE_TIMEOUT_MS=150000")
	var lib func() map[string][]sseEvent
	if r.library {
		lib = libraryReader(t, "http://"+r.gwAddr, 1, n, []string{"READER_IDLE_EXIT_MS=20000", "READER_TIMEOUT_MS=150000", "READER_TRACE=1"}, "websocket", "sse", "longpoll")
	}
	waitFor(t, "every router holds the clients", func() bool {
		return r.stats(0).Conns == r.conns() && r.stats(1).Conns == r.conns() && r.stats(2).Conns == r.conns()
	})
	sender := start(t, r.bin+"/msggen", "-nats", r.all(), "-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate), "-max", "1", "-procs", "1",
		"-numbered", "-every", "0", "-ack-timeout", "6s", "-resends", fmt.Sprint(resends), "-inflight", "1", "-summary", r.dir+"/msggen.json")
	time.Sleep(time.Second)
	fault()
	got := wait()
	if lib != nil {
		for tr, evs := range lib() {
			seqs := seqsOf(t, evs)
			r.librarySeqs = append(r.librarySeqs, seqs)
			t.Logf("the library's %s client got %d of %d", tr, len(seqs), n)
		}
		if len(r.librarySeqs) != 3 {
			t.Fatalf("the library's clients: %d of 3 got messages", len(r.librarySeqs))
		}
	}
	select {
	case <-sender.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("msggen did not finish:\n%s", sender.out)
	}
	// msggen exits 1 if a frame was not acknowledged: the summary
	// says how many, which checkNumbered holds to what arrived.
	readJSON(t, r.dir+"/msggen.json", &ack, sender)
	return seqsOf(t, got), ack
}

// seqsOf is the seq numbers of numbered messages, in the order the client
// got them; one that does not follow the one before is logged with the
// positions around it.
func seqsOf(t *testing.T, got []sseEvent) (seqs []int) {
	t.Helper()
	lastID := ""
	for _, ev := range got {
		i := strings.LastIndex(ev.Data, " seq=")
		n, err := strconv.Atoi(ev.Data[i+5:])
		if i < 0 || err != nil {
			t.Fatalf("event %q is not a numbered message", ev.Data)
		}
		if len(seqs) > 0 && n <= seqs[len(seqs)-1] {
			t.Logf("event %s (seq %d) after seq %d (position %s)", ev.ID, n, seqs[len(seqs)-1], lastID)
		}
		lastID = ev.ID
		seqs = append(seqs, n)
	}
	return seqs
}

// checkNumbered holds what the client got to what msggen was told: every
// message once, in order; a message may be missing only if its send was
// not acknowledged (it died with the router that took it: msggen was
// told) or its ack said it was dropped (a frame lost with the gateway's
// NATS connection), never one whose ack said delivered or kept.
func checkNumbered(t *testing.T, n int, seqs []int, ack ackAccount) {
	t.Helper()
	checkNumberedIDs(t, n, [][]int{seqs}, ack)
}

// checkAllAcked holds a resumable client of a run whose routers keep
// more than it sends to every acknowledged message: a copy an ack
// counted dropped (its connection gone, a long-poll between two polls,
// a gateway restarting) is kept, and the client's resume gets it.
func checkAllAcked(t *testing.T, n int, seqs []int, ack ackAccount) {
	t.Helper()
	if missing := n - len(seqs); missing > int(ack.Unacked) {
		t.Errorf("a resumable client got %d of %d: %d acknowledged messages missing (msggen had %d not acknowledged): seqs %s",
			len(seqs), n, missing-int(ack.Unacked), ack.Unacked, gaps(n, seqs))
	}
}

// gaps names the seqs of 1..n that are not in seqs (which are in
// order), as ranges, the first ten of them: where a client's stream
// broke says which fault lost them.
func gaps(n int, seqs []int) string {
	var out []string
	next := 1
	for _, s := range append(slices.Clone(seqs), n+1) {
		if s > next && len(out) < 10 {
			out = append(out, fmt.Sprintf("%d-%d", next, s-1))
		}
		next = max(next, s+1)
	}
	return strings.Join(out, ", ")
}

// checkNumberedIDs is checkNumbered for one client per id, the n
// messages spread over the ids.
func checkNumberedIDs(t *testing.T, n int, perID [][]int, ack ackAccount) {
	t.Helper()
	got := 0
	for id, seqs := range perID {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("client %d: message %d after %d: repeated or out of order (around it: %v)", id+1, seqs[i], seqs[i-1], seqs[max(i-5, 0):min(i+5, len(seqs))])
			}
		}
		if len(seqs) == 0 {
			t.Errorf("client %d got nothing", id+1)
		}
		got += len(seqs)
	}
	if ack.Sent+ack.Unacked != uint64(n) {
		t.Errorf("msggen's accounting does not add up to %d: %+v", n, ack)
	}
	dropped := ack.dropped()
	if missing := n - got; missing > int(ack.Unacked+dropped) {
		t.Errorf("the clients got %d of %d; msggen had %d not acknowledged, %d acked as dropped: %+v", got, n, ack.Unacked, dropped, ack)
	}
	if ack.Void != 0 {
		t.Errorf("%d sends into the void: the client was held throughout", ack.Void)
	}
}

// TestRedundantRoutersLoseTheLeader: the leading router is killed
// (SIGKILL, its NATS server with it) under the client: a standby takes
// the lease when it ends, applies the history log to its end, moves
// every position past what the dead one could have given, asks the
// gateway for its sessions, and the client's resume fills what it
// lacks. Every acknowledged message arrives once, in order; sends made
// while no router led are sent again by msggen.
func TestRedundantRoutersLoseTheLeader(t *testing.T) {
	r := startRedundant(t)
	old := r.leader()
	var took time.Duration
	seqs, ack := r.run(t, 300, 100, func() {
		at := time.Now()
		syscall.Kill(-r.routers[old].cmd.Process.Pid, syscall.SIGKILL)
		<-r.routers[old].done
		testclient.WaitFor(t, "another router leading", 60*time.Second, func() bool {
			l := r.leader()
			return l >= 0 && l != old
		})
		took = time.Since(at)
	})
	checkNumbered(t, 300, seqs, ack)
	t.Logf("leader killed: a standby led %.1f s later; the client got %d of 300, in order, none twice; msggen: sent %d, delivered %d, kept %d, unacknowledged %d, frames sent again %d (no router) and %d (no ack), %d acked retaken",
		took.Seconds(), len(seqs), ack.Sent, ack.Delivered, ack.Kept, ack.Unacked, ack.Retried, ack.Resent, ack.Retaken)
}

// TestRedundantRoutersRollingRestart: under msggen sending 20,000
// numbered messages at 1,000/s, every router is restarted in turn
// (SIGTERM: a standby stops; the leader gives up its lease as it stops
// and a standby takes over at once; each started again on its store),
// the standbys first, then the gateway (SIGTERM, started again: the
// client reconnects with Last-Event-ID). Beside the npm EventSource,
// three clients of the project's JavaScript library (clients/js), one
// per transport, are held to the same account. msggen sends a frame with no
// ack again (-resends 2): its NATS server is one of the routers', so a
// frame or its ack may go with it; the router that took the frame
// answers the copy. Each client gets every acknowledged message: a
// restarting standby holds up the lease's renewals for seconds, and
// the leader logs a long-poll in without answering its resume until
// the lease is renewed; the copies it routes meanwhile used to move the
// poll's cursor past those routed before (a run under CI's load lost
// 284 of 20,000 so; in CI a long-poll client stopped at 10,720).
func TestRedundantRoutersRollingRestart(t *testing.T) {
	r := startRedundant(t)
	r.library = true
	const n = 20000
	var steps []string
	seqs, ack := r.runResending(t, n, 1000, 2, func() {
		l := r.leader()
		for _, i := range []int{(l + 1) % 3, (l + 2) % 3, l} {
			at := time.Now()
			stopped(t, r.routers[i], fmt.Sprint("router ", i))
			r.routers[i] = r.start(i)
			testclient.WaitFor(t, fmt.Sprint("router ", i, " back, holding the client, and a leader"), 60*time.Second, func() bool {
				st := r.stats(i)
				return st.Gateways == 1 && st.Conns == r.conns() && r.leader() >= 0
			})
			steps = append(steps, fmt.Sprintf("router %d (%s) %.1f s", i, map[bool]string{true: "leader", false: "standby"}[i == l], time.Since(at).Seconds()))
		}
		at := time.Now()
		stopped(t, r.gw, "the gateway")
		r.gw = start(t, r.bin+"/gateway", r.gwArgs...)
		waitFor(t, "the clients back on the gateway", func() bool { return r.stats(0).Conns == r.conns() })
		steps = append(steps, fmt.Sprintf("gateway %.1f s", time.Since(at).Seconds()))
	})
	checkNumbered(t, n, seqs, ack)
	checkAllAcked(t, n, seqs, ack)
	for _, lib := range r.librarySeqs {
		checkNumbered(t, n, lib, ack)
		checkAllAcked(t, n, lib, ack)
	}
	t.Logf("rolling restart (%s): the client got %d of %d, in order, none twice; msggen: sent %d, delivered %d, kept %d, unacknowledged %d, frames sent again %d (no router) and %d (no ack), %d acked retaken",
		strings.Join(steps, ", "), len(seqs), n, ack.Sent, ack.Delivered, ack.Kept, ack.Unacked, ack.Retried, ack.Resent, ack.Retaken)
}

// stopped stops p with SIGTERM and waits for it to end: a leading
// router hands over first (its sends routed, its log written, its acks
// out: up to about 12 s), then drains NATS and stops its server, which
// on a loaded machine (CI runs every package at once) has taken over
// 20 s.
func stopped(t *testing.T, p *proc, what string) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", what, p.out)
	}
}

// TestRedundantRoutersGatewayKilled: the gateway is killed (SIGKILL)
// under the client and started again a second later, with three
// routers: the client reconnects with Last-Event-ID, and whichever
// router answers, the positions are the leader's (two routers taking
// sends from one queue group used to number their own shares: 45 of 300
// lost and 45 twice).
func TestRedundantRoutersGatewayKilled(t *testing.T) {
	r := startRedundant(t)
	seqs, ack := r.run(t, 300, 100, func() {
		syscall.Kill(-r.gw.cmd.Process.Pid, syscall.SIGKILL)
		<-r.gw.done
		time.Sleep(time.Second)
		r.gw = start(t, r.bin+"/gateway", r.gwArgs...)
	})
	checkNumbered(t, 300, seqs, ack)
	if len(seqs) != 300 {
		t.Errorf("the client got %d of 300", len(seqs))
	}
	t.Logf("gateway killed under three routers: the client got %d of 300, in order, none twice; msggen: sent %d, delivered %d, kept %d, dropped %v, unacknowledged %d",
		len(seqs), ack.Sent, ack.Delivered, ack.Kept, ack.Dropped, ack.Unacked)
}

// TestRedundantRoutersLoseAStandby: a standby router, and the NATS
// server it embeds, is killed (SIGKILL) under the client: the gateway
// and msggen move to another server if they were on it, the leader goes
// on.
func TestRedundantRoutersLoseAStandby(t *testing.T) {
	r := startRedundant(t)
	leader := r.leader()
	victim := (leader + 1) % 3
	seqs, ack := r.run(t, 300, 100, func() {
		syscall.Kill(-r.routers[victim].cmd.Process.Pid, syscall.SIGKILL)
		<-r.routers[victim].done
	})
	checkNumbered(t, 300, seqs, ack)
	if l := r.leader(); l != leader {
		t.Errorf("the lead moved from router %d to %d when a standby died", leader, l)
	}
	t.Logf("a standby (and its NATS server) killed: the client got %d of 300, in order, none twice; msggen: sent %d, delivered %d, kept %d, unacknowledged %d, frames sent again %d",
		len(seqs), ack.Sent, ack.Delivered, ack.Kept, ack.Unacked, ack.Retried)
}

// TestRollingRestartUnderFloodtest: three -redundant routers and two
// gateways; floodtest holds 400 SSE streams over both gateways
// (-resume: a stream whose gateway ended it dials again with
// Last-Event-ID, as an EventSource does) and checks every numbered
// message msggen sends to their ids, 20,000 at 1,000/s. Every router is
// restarted in turn (SIGTERM, started again on its store; the standbys
// first, then the leader), then each gateway; msggen sends a frame with
// no ack again (-resends 2). Nothing is repeated or missed; every message
// an ack called delivered or kept arrives, and a missing one was never
// acked.
func TestRollingRestartUnderFloodtest(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	c := startCluster(t, bin, dir, "-redundant", "-retain-messages", "10000")
	const streams, n = 400, 20000
	var gwArgs [][]string
	var gws []*proc
	var urls strings.Builder
	for i := range 2 {
		addr := freePort(t)
		gwArgs = append(gwArgs, []string{"-addr", addr, "-admin", "off", "-nats", c.all(), "-name", fmt.Sprint("roll", i), "-sse-retry", "200ms"})
		gws = append(gws, start(t, bin+"/gateway", gwArgs[i]...))
		for id := 1 + i; id <= streams; id += 2 {
			fmt.Fprintf(&urls, "http://%s/sse/%d\n", addr, id)
		}
	}
	if err := os.WriteFile(dir+"/urls", []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	held := func(i int) bool { st := c.stats(i); return st.Gateways == 2 && st.Conns == streams }
	testclient.WaitFor(t, "every router hears both gateways, one leads", 60*time.Second, func() bool {
		return c.each(func(_ int, st clusterStats) bool { return st.Gateways == 2 }) && c.leader() >= 0
	})
	flood := start(t, bin+"/floodtest", "-urls", dir+"/urls", "-rate", "2000/s", "-duration", "3m", "-every", "5s",
		"-resume", "-retry", "200ms", "-summary", dir+"/floodtest.json")
	testclient.WaitFor(t, "every router holds every stream", 60*time.Second, func() bool { return held(0) && held(1) && held(2) })
	sender := start(t, bin+"/msggen", "-nats", c.all(), "-n", fmt.Sprint(n), "-rate", "1000", "-max", fmt.Sprint(streams), "-procs", "1",
		"-numbered", "-every", "0", "-ack-timeout", "5s", "-resends", "2", "-inflight", "1", "-summary", dir+"/msggen.json")
	time.Sleep(time.Second)
	var steps []string
	l := c.leader()
	for _, i := range []int{(l + 1) % 3, (l + 2) % 3, l} {
		at := time.Now()
		stopped(t, c.routers[i], fmt.Sprint("router ", i))
		c.routers[i] = c.start(i)
		testclient.WaitFor(t, fmt.Sprint("router ", i, " back with every stream, and a leader"), 60*time.Second, func() bool { return held(i) && c.leader() >= 0 })
		steps = append(steps, fmt.Sprintf("router %d (%s) %.1f s", i, map[bool]string{true: "leader", false: "standby"}[i == l], time.Since(at).Seconds()))
	}
	for i := range gws {
		at := time.Now()
		stopped(t, gws[i], fmt.Sprint("gateway ", i))
		gws[i] = start(t, bin+"/gateway", gwArgs[i]...)
		testclient.WaitFor(t, fmt.Sprint("gateway ", i, "'s streams back"), 60*time.Second, func() bool { return held(c.leader()) })
		steps = append(steps, fmt.Sprintf("gateway %d %.1f s", i, time.Since(at).Seconds()))
	}
	select {
	case <-sender.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("msggen did not finish:\n%s", sender.out)
	}
	// The last catch-ups too (resumes after the gateways' restarts).
	stopFlood(t, flood, 10*time.Second)
	var ack ackAccount
	var got struct {
		Stats struct {
			Messages, Resumed uint64
			Errors            map[string]uint64
		}
	}
	readJSON(t, dir+"/msggen.json", &ack, sender)
	readJSON(t, dir+"/floodtest.json", &got, flood)
	if ack.Sent+ack.Unacked != n {
		t.Errorf("msggen's accounting does not add up to %d: %+v", n, ack)
	}
	if got.Stats.Messages < ack.Delivered+ack.Kept || got.Stats.Messages > ack.Sent+ack.Unacked {
		t.Errorf("the streams got %d; the acks said %d delivered and %d kept of %d sent, %d unacknowledged", got.Stats.Messages, ack.Delivered, ack.Kept, ack.Sent, ack.Unacked)
	}
	for kind, k := range got.Stats.Errors {
		switch kind {
		case "ended", "peer_closed", "reset", "connect":
			// the restarts: each stream dialed again with its cursor
		case "lost":
			// A frame msggen sent as a server or the lead went away
			// may never have reached a router: it is unacknowledged
			// (never called delivered), and its messages are gaps.
			if k > ack.Unacked {
				t.Errorf("floodtest saw %d lost, more than the %d msggen was not told of: %v", k, ack.Unacked, got.Stats.Errors)
			}
		default:
			t.Errorf("floodtest saw %d %s: %v", k, kind, got.Stats.Errors)
		}
	}
	if got.Stats.Resumed < streams {
		t.Errorf("only %d streams resumed across the gateways' restarts", got.Stats.Resumed)
	}
	t.Logf("rolling restart (%s) under floodtest: the streams got %d of %d, none repeated or missed, none acked and lost (%d resumes; ends %v); msggen: sent %d, delivered %d, kept %d, dropped %v, unacknowledged %d, frames sent again %d (no router) and %d (no ack), %d acked retaken",
		strings.Join(steps, ", "), got.Stats.Messages, n, got.Stats.Resumed, got.Stats.Errors, ack.Sent, ack.Delivered, ack.Kept, ack.Dropped, ack.Unacked, ack.Retried, ack.Resent, ack.Retaken)
}

func TestGaps(t *testing.T) {
	for _, c := range []struct {
		n    int
		seqs []int
		want string
	}{
		{5, []int{1, 2, 3, 4, 5}, ""},
		{10, []int{1, 2, 6, 7, 8}, "3-5, 9-10"},
		{3, nil, "1-3"},
		{4, []int{2, 4}, "1-1, 3-3"},
	} {
		if got := gaps(c.n, c.seqs); got != c.want {
			t.Errorf("gaps(%d, %v) = %q, want %q", c.n, c.seqs, got, c.want)
		}
	}
}
