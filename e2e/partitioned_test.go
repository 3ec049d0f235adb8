package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/testclient"
)

// partitionedStats is what the partitioned test reads of a router's
// /stats beyond clusterStats.
type partitionedStats struct {
	Partition *struct {
		Partition  int
		Forwarded  uint64
		Unanswered uint64
	}
}

// TestPartitionedRoutersLoseALeader: two partitions of the ids, each
// served by two -redundant routers (four routers whose embedded NATS
// servers form one cluster), a gateway with -partitions 2, and an
// EventSource client (npm eventsource) on an id of each partition. Each
// router holds its own partition's client only. msggen sends numbered
// messages to both ids without knowing the partitions (any router takes
// a frame and hands the other partition's records on), and partition 1's
// leader is killed a second in: its standby takes over, and a frame the
// partition 0 router hands on meanwhile is sent again until it is taken.
// Every acknowledged message arrives once, in order, and partition 0
// goes on undisturbed.
func TestPartitionedRoutersLoseALeader(t *testing.T) {
	bin, dir := binDir(t), t.TempDir()
	c := startClusterOf(t, bin, dir, 4, func(i int) []string {
		return []string{"-redundant", "-partitions", "2", "-partition", fmt.Sprint(i / 2), "-retain-messages", "10000"}
	})
	gwAddr := freePort(t)
	start(t, bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", c.all(), "-name", "parts", "-partitions", "2", "-sse-retry", "200ms")
	testclient.WaitFor(t, "every router hears the gateway, one leads each partition", 60*time.Second, func() bool {
		return c.each(func(_ int, st clusterStats) bool { return st.Gateways == 1 }) && c.leaderOf(0, 2) >= 0 && c.leaderOf(2, 4) >= 0
	})
	const n = 400
	var waits []func() []sseEvent
	for id := 1; id <= 2; id++ {
		waits = append(waits, nodeSSEEvents(t, nil, fmt.Sprintf("http://%s/sse/%d", gwAddr, id), n, "SSE_IDLE_EXIT_MS=20000", "SSE_TIMEOUT_MS=120000"))
	}
	// A frame the dead leader took, or one handed to it, is not acked:
	// msggen waits -ack-timeout (10 s, past the 8 s a router waits for
	// a partition's answer) with one frame in flight; the clients wait
	// 20 s for more before they stop.
	// Id 2 is in partition 0 (routers 0 and 1), id 1 in partition 1.
	waitFor(t, "each router holds its partition's client only", func() bool {
		return c.each(func(_ int, st clusterStats) bool { return st.Conns == 1 })
	})
	sender := start(t, bin+"/msggen", "-nats", c.all(), "-n", fmt.Sprint(n), "-rate", "100", "-max", "2", "-procs", "1",
		"-numbered", "-every", "0", "-ack-timeout", "10s", "-inflight", "1", "-summary", dir+"/msggen.json")
	time.Sleep(time.Second)
	old := c.leaderOf(2, 4)
	at := time.Now()
	syscall.Kill(-c.routers[old].cmd.Process.Pid, syscall.SIGKILL)
	<-c.routers[old].done
	testclient.WaitFor(t, "partition 1's standby leading", 60*time.Second, func() bool {
		l := c.leaderOf(2, 4)
		return l >= 0 && l != old
	})
	took := time.Since(at)
	lead0 := c.leaderOf(0, 2)
	var perID [][]int
	for _, wait := range waits {
		perID = append(perID, seqsOf(t, wait()))
	}
	select {
	case <-sender.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("msggen did not finish:\n%s", sender.out)
	}
	var ack ackAccount
	readJSON(t, dir+"/msggen.json", &ack, sender)
	checkNumberedIDs(t, n, perID, ack)
	if t.Failed() {
		for i, admin := range c.admins {
			var st map[string]any
			getJSON("http://"+admin+"/stats", &st)
			delete(st, "retention")
			t.Logf("router %d's stats: %v", i, st)
		}
	}
	var p0 partitionedStats
	getJSON("http://"+c.admins[lead0]+"/stats", &p0)
	if p0.Partition == nil || p0.Partition.Partition != 0 || p0.Partition.Forwarded == 0 {
		t.Fatalf("partition 0's leader (router %d) handed nothing on, or is gone: %+v", lead0, p0.Partition)
	}
	if c.leaderOf(0, 2) != lead0 {
		t.Errorf("partition 0's lead moved")
	}
	t.Logf("partition 1's leader killed: its standby led %.1f s later; clients got %d (id 1) and %d (id 2) of %d, in order, none twice; msggen: sent %d, delivered %d, kept %d, dropped %v, unacknowledged %d, frames sent again %d; partition 0 handed on %d frames (%d unanswered)",
		took.Seconds(), len(perID[0]), len(perID[1]), n, ack.Sent, ack.Delivered, ack.Kept, ack.Dropped, ack.Unacked, ack.Retried, p0.Partition.Forwarded, p0.Partition.Unanswered)
}
