package router

import (
	"fmt"
	"testing"
	"time"
)

// TestTopicHistoryTakeover: a redundant standby follows the leader's
// topic histories in its log; when it takes over it has the same
// messages at the same positions, and goes on numbering from them.
func TestTopicHistoryTakeover(t *testing.T) {
	ns := startTestNATS(t)
	start := func(name string) (*Router, func()) {
		cfg := testConfig(t)
		cfg.NATSURL, cfg.AdminAddr, cfg.Redundant, cfg.Lease = ns.ClientURL(), "off", true, 400*time.Millisecond
		cfg.TopicHistory.MaxMessages = 3
		cfg.Logger = cfg.Logger.Named(name)
		return runTestRouter(t, cfg)
	}
	a, stopA := start("a")
	waitFor(t, "a leads", func() bool { return leads(a) })
	b, _ := start("b")
	for i := 1; i <= 4; i++ {
		if res, err := a.Publish("room", fmt.Appendf(nil, "m%d", i)); err != nil || !res.Kept {
			t.Fatalf("publish %d: %+v %v", i, res, err)
		}
	}
	want := a.TopicHistory("room", 0, 10)
	waitFor(t, "b follows the history", func() bool { return len(b.TopicHistory("room", 0, 10).Messages) == 3 })
	stopA()
	waitFor(t, "b leads", func() bool { return leads(b) })
	got := b.TopicHistory("room", 0, 10)
	if got.Epoch != want.Epoch || fmt.Sprint(got.Messages) != fmt.Sprint(want.Messages) {
		t.Fatalf("b has %+v, a had %+v", got, want)
	}
	if _, err := b.Publish("room", []byte("m5")); err != nil {
		t.Fatal(err)
	}
	got = b.TopicHistory("room", 0, 10)
	if n := len(got.Messages); n != 3 || got.Messages[n-1].Seq != 5 || got.Messages[n-1].Msg != "m5" || got.Epoch != want.Epoch {
		t.Fatalf("after the takeover: %+v", got)
	}
}
