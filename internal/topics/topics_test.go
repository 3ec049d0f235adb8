package topics

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cometgw/comet/internal/registry"
)

func names(ts ...string) [][]byte {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = []byte(t)
	}
	return out
}

func conn(gw uint32, n uint64) registry.Conn { return registry.Conn{GW: gw, Conn: n} }

// membersOf is topic's recipients as "id@gw" ("id@0": lingering).
func membersOf(ix *Index, topic string) []string {
	ms, _ := ix.Members([]byte(topic), nil)
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d@%d", m.ID, m.Conn.GW))
	}
	return out
}

func always(int64) bool { return true }

// Members come sorted by id (each id's conns together, by gateway); a
// join twice counts once; a conn's leave takes it out of every topic.
func TestJoinMembersLeave(t *testing.T) {
	ix := New(func(int64) bool { return true })
	ix.Join(conn(2, 1), 7, false, false, names("lobby", "news"))
	ix.Join(conn(1, 2), 7, false, false, names("lobby"))
	ix.Join(conn(1, 3), 3, false, false, names("lobby"))
	ix.Join(conn(1, 3), 3, false, false, names("lobby")) // again: nothing new
	if got := membersOf(ix, "lobby"); !slices.Equal(got, []string{"3@1", "7@1", "7@2"}) {
		t.Fatalf("lobby members %v", got)
	}
	if _, name := ix.Members([]byte("nobody"), nil); name != "" {
		t.Fatalf("a topic nobody is in has name %q", name)
	}
	if got := ix.TopicsOf(conn(2, 1)); !slices.Equal(got, []string{"lobby", "news"}) {
		t.Fatalf("topics of a conn %v", got)
	}
	if st := ix.Stats(); st != (Stats{Topics: 2, Members: 4, MemberConns: 3}) {
		t.Fatalf("stats %+v", st)
	}
	ix.Leave(conn(2, 1), nil)
	if got := membersOf(ix, "lobby"); !slices.Equal(got, []string{"3@1", "7@1"}) {
		t.Fatalf("after a leave: %v", got)
	}
	if st := ix.Stats(); st.Topics != 1 {
		t.Fatalf("an empty topic stays: %+v", st)
	}
	ix.Part(conn(1, 3), names("lobby", "unknown"))
	if got := membersOf(ix, "lobby"); !slices.Equal(got, []string{"7@1"}) {
		t.Fatalf("after a part: %v", got)
	}
}

// A resumable conn's id lingers in its topics while its history lives
// (what is published meanwhile is kept for its resume); a new conn of
// the id ends the lingering, and so does the history's end. A conn that
// asked to part does not linger.
func TestLingering(t *testing.T) {
	ix := New(always)
	ix.Join(conn(1, 1), 5, true, false, names("a", "b"))
	ix.Join(conn(1, 2), 6, false, false, names("a"))
	ix.Leave(conn(1, 1), always)
	ix.Leave(conn(1, 2), always) // not resumable: gone
	if got := membersOf(ix, "a"); !slices.Equal(got, []string{"5@0"}) {
		t.Fatalf("a: %v, want 5 lingering", got)
	}
	if st := ix.Stats(); st.Lingering != 1 || st.Topics != 2 {
		t.Fatalf("stats %+v", st)
	}
	ix.Join(conn(3, 9), 5, true, false, names("a"))
	if got := membersOf(ix, "a"); !slices.Equal(got, []string{"5@3"}) {
		t.Fatalf("back: %v", got)
	}
	if got := membersOf(ix, "b"); !slices.Equal(got, []string{"5@0"}) {
		t.Fatalf("b still lingers: %v", got)
	}
	ix.ForgetID(5)
	if got := membersOf(ix, "b"); got != nil {
		t.Fatalf("after the history's end: %v", got)
	}
	// Without a history, nothing lingers; a part never lingers.
	ix.Join(conn(4, 1), 8, true, false, names("c"))
	ix.Leave(conn(4, 1), func(int64) bool { return false })
	ix.Join(conn(4, 2), 9, true, false, names("d"))
	ix.Part(conn(4, 2), names("d"))
	if st := ix.Stats(); st.Lingering != 0 {
		t.Fatalf("lingering ids %d, want none", st.Lingering)
	}
	if membersOf(ix, "c") != nil || membersOf(ix, "d") != nil {
		t.Fatal("lingering without a history, or after a part")
	}
	// A gateway that goes away takes its conns' topics with it.
	ix.LeaveGateway(3, nil)
	if got := membersOf(ix, "a"); got != nil {
		t.Fatalf("after the gateway left: %v", got)
	}
}

type event struct {
	Presence   string  `json:"presence"`
	IDs        int     `json:"ids"`
	Joined     []int64 `json:"joined"`
	Left       []int64 `json:"left"`
	JoinedMore int     `json:"joined_more"`
	Partition  *int    `json:"partition"`
}

func events(t *testing.T, ix *Index) map[string]event {
	t.Helper()
	out := map[string]event{}
	for _, ev := range ix.PresenceEvents() {
		var e event
		if err := json.Unmarshal(ev.Msg, &e); err != nil {
			t.Fatalf("event %q: %v", ev.Msg, err)
		}
		if e.Presence != ev.Topic {
			t.Fatalf("event %q for topic %q", ev.Msg, ev.Topic)
		}
		out[ev.Topic] = e
	}
	return out
}

// Presence: the watchers of a topic get one event per round with the ids
// that joined and left since the last; an id's second conn is no join, a
// join and leave within one round cancel out, and past changeCap ids the
// event counts the rest.
func TestPresenceEvents(t *testing.T) {
	ix := New(always)
	if ix.AnyWatched() {
		t.Fatal("watched before any watcher")
	}
	ix.Join(conn(1, 1), 1, false, true, names("lobby")) // a watcher
	if !ix.IsWatched("lobby") || ix.IsWatched("news") {
		t.Fatal("watched topics wrong")
	}
	ix.Join(conn(1, 2), 2, false, false, names("lobby"))
	ix.Join(conn(2, 3), 2, false, false, names("lobby")) // 2's second conn
	ix.Join(conn(1, 4), 3, false, false, names("lobby", "news"))
	ix.Leave(conn(1, 4), nil) // 3 joined and left: no news
	evs := events(t, ix)
	if e := evs["lobby"]; len(evs) != 1 || e.IDs != 2 || !slices.Equal(e.Joined, []int64{1, 2}) || len(e.Left) != 0 {
		t.Fatalf("first round %+v", evs)
	}
	if w := ix.WatchersOf([]byte("lobby")); len(w) != 1 || w[0].ID != 1 {
		t.Fatalf("watchers %+v", w)
	}
	if evs := events(t, ix); len(evs) != 0 {
		t.Fatalf("a round with no change: %+v", evs)
	}
	ix.Leave(conn(1, 2), nil) // 2 still has a conn: no leave
	if evs := events(t, ix); len(evs) != 0 {
		t.Fatalf("one of two conns left: %+v", evs)
	}
	ix.Leave(conn(2, 3), nil)
	if e := events(t, ix)["lobby"]; e.IDs != 1 || !slices.Equal(e.Left, []int64{2}) {
		t.Fatalf("2 left: %+v", e)
	}
	for i := range changeCap + 5 {
		ix.Join(conn(3, uint64(i)), int64(100+i), false, false, names("lobby"))
	}
	if e := events(t, ix)["lobby"]; len(e.Joined) != changeCap || e.JoinedMore != 5 || e.IDs != changeCap+6 {
		t.Fatalf("a ramp of joins: %d listed, %d more, %d ids", len(e.Joined), e.JoinedMore, e.IDs)
	}
	if p := ix.Presence("lobby"); len(p) != changeCap+6 || p[1] != 1 {
		t.Fatalf("presence of %d ids", len(p))
	}
	if got := ix.WatchedHere(); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("watched here %v", got)
	}
}

// A partitioned router's events say their partition; stored subscribers
// of a watched topic are present while their id has a conn; another
// partition's watching lasts until it runs out.
func TestPartitionSubscribersAndRemoteWatch(t *testing.T) {
	conns := map[int64]bool{42: true}
	ix := New(func(id int64) bool { return conns[id] })
	ix.SetPartition(1, 2)
	ix.SetSubscribers(func(topic string) []int64 {
		if topic == "news" {
			return []int64{42, 43}
		}
		return nil
	})
	ix.Join(conn(1, 1), 1, false, true, names("news"))
	e := events(t, ix)["news"]
	if e.Partition == nil || *e.Partition != 1 || e.IDs != 2 { // 1, and subscriber 42 (43 has no conn)
		t.Fatalf("event %+v", e)
	}
	conns[43] = true
	ix.SyncSub(43, []string{"news"}, true)
	if e := events(t, ix)["news"]; !slices.Equal(e.Joined, []int64{43}) || e.IDs != 3 {
		t.Fatalf("a subscriber's login: %+v", e)
	}
	// Watched elsewhere only: this partition makes the events too.
	ix.WatchRemote(names("far"), 100)
	if !ix.IsWatched("far") {
		t.Fatal("a remote watch is a watch")
	}
	ix.Join(conn(2, 1), 7, false, false, names("far"))
	var remote bool
	for _, ev := range ix.PresenceEvents() {
		if ev.Topic == "far" {
			remote = ev.Remote && len(ev.Watchers) == 0
		}
	}
	if !remote {
		t.Fatal("no remote event for a topic watched elsewhere")
	}
	ix.ExpireRemote(101)
	ix.Leave(conn(2, 1), nil)
	if ix.IsWatched("far") || ix.Stats().Topics != 1 {
		t.Fatalf("after the remote watch ran out: watched %t, %+v", ix.IsWatched("far"), ix.Stats())
	}
}
