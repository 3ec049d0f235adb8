// Package topics is the router's index of who is in each topic: the
// conns that joined it, the ids lingering in it for their resume, and
// presence (who joined and left, for the conns that watch). It needs no
// NATS and holds one lock (Index.mu), taken after the registry's and
// never while calling out (SetSubscribers' function is called without
// it), but for JoinThen's then and MembersKeeping's keep, which keep and
// give a topic's history in step with its members.
package topics

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cometgw/comet/internal/registry"
)

// Index is who is in each topic: the connections that joined it
// (GET /sse/{id}?topics=...), and the ids whose resumable clients joined
// it and left while their id's history lasts (lingering), so that what is
// published meanwhile is kept for their resume. Topic names are interned:
// each is one string, shared by the index and the history entries that
// carry it.
type Index struct {
	mu      sync.RWMutex
	topics  map[string]*entry
	conns   map[registry.Conn]*connTopics // the topics each member conn joined
	linger  map[int64][]*entry            // the topics each lingering id is kept in
	changed map[*entry]struct{}           // topics with presence changes not yet told
	remote  map[*entry]struct{}           // topics watched in another partition
	// partTag ends every presence event of a partitioned router: the
	// event covers that partition's ids (,"partition":K,"partitions":N).
	partTag string

	// Topics with watchers (conns that want presence events), read
	// without the lock: subscribed ids' logins and logouts, and stored
	// subscriptions' changes, are looked at only for these.
	watched atomic.Pointer[map[string]struct{}]
	// held says whether id has a conn now (the registry's Held);
	// subscribers, if set, lists a topic's subscribed ids (stored
	// subscriptions; set before any join).
	held        func(id int64) bool
	subscribers func(topic string) []int64

	// hooks, on after TrackMembers: the topics whose members changed
	// since the last TakeMemberChanges (for webhooks), by name.
	hooks map[string]*memberChange
}

// memberChange is one topic's member changes within a round: whether it
// had members when the round began, and the ids that came and went (one
// that came and went within the round is in neither).
type memberChange struct {
	was          bool
	joined, left map[int64]struct{}
}

type entry struct {
	name    string
	members map[registry.Conn]int64 // conn -> the id it holds
	linger  map[int64]struct{}
	// Presence: member conns per id, the conns that want join and leave
	// events, and the ids that joined or left since the last event.
	counts       map[int64]int
	watchers     map[registry.Conn]int64
	joined, left map[int64]struct{}
	// subs: the ids subscribed to the topic (stored subscriptions) that
	// have a conn, kept while the topic has watchers (watched); each is
	// present like a member.
	subs    map[int64]struct{}
	watched bool
	// remoteUntil (unix nanos): another partition has watchers in the
	// topic (its watch list said so lately), so this partition makes
	// its join and leave events for them too.
	remoteUntil int64
}

type connTopics struct {
	id        int64
	resumable bool
	topics    []*entry
}

// Member is one recipient of a publish: a conn of ID, or (Conn.GW 0) an
// id lingering in the topic.
type Member struct {
	ID   int64
	Conn registry.Conn
}

// New returns an empty index; held says whether an id has a conn now
// (the registry's Held).
func New(held func(id int64) bool) *Index {
	ix := &Index{topics: make(map[string]*entry), conns: make(map[registry.Conn]*connTopics),
		linger: make(map[int64][]*entry), changed: make(map[*entry]struct{}), remote: make(map[*entry]struct{}), held: held}
	ix.watched.Store(&map[string]struct{}{})
	return ix
}

// SetPartition makes the index's presence events say that they cover
// partition k of n's ids (,"partition":K,"partitions":N). Call it before
// any join.
func (ix *Index) SetPartition(k, n int) {
	ix.partTag = fmt.Sprintf(`,"partition":%d,"partitions":%d`, k, n)
}

// SetSubscribers gives the index a topic's subscribed ids (stored
// subscriptions), present like members while the topic has watchers.
// Call it before any join.
func (ix *Index) SetSubscribers(fn func(topic string) []int64) { ix.subscribers = fn }

// IsWatched says whether topic has watchers; no lock.
func (ix *Index) IsWatched(topic string) bool {
	_, ok := (*ix.watched.Load())[topic]
	return ok
}

// AnyWatched says whether some topic has watchers; no lock.
func (ix *Index) AnyWatched() bool { return len(*ix.watched.Load()) > 0 }

// setWatched notes that t's watchers went from none to some or back.
// ix.mu must be held for writing.
func (ix *Index) setWatched(t *entry, on bool) {
	m := maps.Clone(*ix.watched.Load())
	if on {
		m[t.name] = struct{}{}
		t.subs = make(map[int64]struct{})
	} else {
		delete(m, t.name)
		t.subs = nil
	}
	t.watched = on
	ix.watched.Store(&m)
}

// seed puts into the subs of topics that just got their first watcher
// the subscribed ids that have a conn (no events: they were there
// already). ix.mu must not be held.
func (ix *Index) seed(fresh []*entry) {
	if ix.subscribers == nil {
		return
	}
	for _, t := range fresh {
		ids := ix.subscribers(t.name)
		if len(ids) == 0 {
			continue
		}
		ix.mu.Lock()
		if t.watched {
			for _, id := range ids {
				if ix.held(id) {
					t.subs[id] = struct{}{}
				}
			}
		}
		ix.mu.Unlock()
	}
}

// SyncSub brings id's presence as a subscriber of topics up to date:
// present if subscribed (the caller says) and id has a conn now. Only
// topics with watchers are kept; the changes are join and leave events.
func (ix *Index) SyncSub(id int64, topics []string, subscribed bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	present := subscribed && ix.held(id)
	for _, name := range topics {
		t := ix.topics[name]
		if t == nil || !t.watched {
			continue
		}
		_, was := t.subs[id]
		switch {
		case present && !was:
			t.subs[id] = struct{}{}
			if t.counts[id] == 0 {
				ix.joined(t, id)
			}
		case !present && was:
			delete(t.subs, id)
			if t.counts[id] == 0 {
				ix.left(t, id)
			}
		}
	}
}

// state returns topic's state, creating it. ix.mu must be held for
// writing.
func (ix *Index) state(topic []byte) *entry {
	if t := ix.topics[string(topic)]; t != nil {
		return t
	}
	t := &entry{name: string(topic), members: make(map[registry.Conn]int64), counts: make(map[int64]int)}
	ix.topics[t.name] = t
	return t
}

// drop forgets t if nothing is left in it. ix.mu must be held for writing.
func (ix *Index) drop(t *entry) {
	if t.watched && len(t.watchers) == 0 && t.remoteUntil == 0 {
		ix.setWatched(t, false) // the last watcher left
	}
	if len(t.members) == 0 && len(t.linger) == 0 && t.remoteUntil == 0 {
		delete(ix.topics, t.name)
		delete(ix.changed, t)
	}
}

// changeCap bounds the ids a presence event lists as joined or left; past
// it the event counts them (a ramp of joins is one event a second per
// watcher, whatever its size).
const changeCap = 100

// presenceJoin notes a member conn of id; the first one is a join.
// ix.mu must be held for writing.
func (ix *Index) presenceJoin(t *entry, id int64) {
	if t.counts[id]++; t.counts[id] > 1 {
		return
	}
	if ix.hooks != nil {
		ix.hookChange(t, len(t.counts) > 1).note(id, true)
	}
	if _, ok := t.subs[id]; ok {
		return // present already, as a subscriber
	}
	ix.joined(t, id)
}

// joined notes that id came into t. ix.mu must be held for writing.
func (ix *Index) joined(t *entry, id int64) {
	if _, ok := t.left[id]; ok {
		delete(t.left, id) // left and came back within one event
	} else {
		if t.joined == nil {
			t.joined = make(map[int64]struct{})
		}
		t.joined[id] = struct{}{}
	}
	ix.changed[t] = struct{}{}
}

// presenceLeave notes a member conn of id gone; the last one is a leave.
// ix.mu must be held for writing.
func (ix *Index) presenceLeave(t *entry, id int64) {
	if t.counts[id]--; t.counts[id] > 0 {
		return
	}
	delete(t.counts, id)
	if ix.hooks != nil {
		ix.hookChange(t, true).note(id, false)
	}
	if _, ok := t.subs[id]; ok {
		return // still present, as a subscriber
	}
	ix.left(t, id)
}

// left notes that id went from t. ix.mu must be held for writing.
func (ix *Index) left(t *entry, id int64) {
	if _, ok := t.joined[id]; ok {
		delete(t.joined, id)
	} else {
		if t.left == nil {
			t.left = make(map[int64]struct{})
		}
		t.left[id] = struct{}{}
	}
	ix.changed[t] = struct{}{}
}

// TrackMembers makes the index note, for TakeMemberChanges, every id
// that comes into a topic or leaves it (its first connection in it, its
// last). Call it before any join.
func (ix *Index) TrackMembers() { ix.hooks = make(map[string]*memberChange) }

// hookChange is t's change record of the round, made (had: whether t had
// members before the change being noted) if it has none. ix.mu must be
// held for writing.
func (ix *Index) hookChange(t *entry, had bool) *memberChange {
	c := ix.hooks[t.name]
	if c == nil {
		c = &memberChange{was: had, joined: make(map[int64]struct{}), left: make(map[int64]struct{})}
		ix.hooks[t.name] = c
	}
	return c
}

// note records that id came (in) or went.
func (c *memberChange) note(id int64, in bool) {
	came, went := c.joined, c.left
	if !in {
		came, went = went, came
	}
	if _, ok := went[id]; ok {
		delete(went, id) // went and came back within the round
	} else {
		came[id] = struct{}{}
	}
}

// MemberChange is one topic's member changes since the last
// TakeMemberChanges: Occupied, it had no members then and has some now;
// Vacated, the reverse; the ids that came into it and left it (sorted).
// Members are ids with a connection in the topic.
type MemberChange struct {
	Topic        string
	Occupied     bool
	Vacated      bool
	Joined, Left []int64
}

// TakeMemberChanges returns the member changes since the last call (with
// TrackMembers; nil without).
func (ix *Index) TakeMemberChanges() []MemberChange {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []MemberChange
	for name, c := range ix.hooks {
		t := ix.topics[name]
		now := t != nil && len(t.counts) > 0
		mc := MemberChange{Topic: name, Occupied: !c.was && now, Vacated: c.was && !now,
			Joined: slices.Sorted(maps.Keys(c.joined)), Left: slices.Sorted(maps.Keys(c.left))}
		if mc.Occupied || mc.Vacated || len(mc.Joined) > 0 || len(mc.Left) > 0 {
			out = append(out, mc)
		}
	}
	clear(ix.hooks)
	slices.SortFunc(out, func(a, b MemberChange) int { return cmp.Compare(a.Topic, b.Topic) })
	return out
}

// Join records that c, logged in as id, joined topics (valid names, no
// repeats); resumable says its client resumes (SSE, long-poll), so when
// it leaves, id lingers in its topics while id's history lasts. A join of
// a conn already known adds to its topics.
func (ix *Index) Join(c registry.Conn, id int64, resumable, presence bool, topics [][]byte) {
	ix.JoinThen(c, id, resumable, presence, topics, nil)
}

// JoinThen is Join that calls then, if not nil, with the topics c newly
// joined (none: not called) before it releases the index's lock: no
// publish reads the topics' members in between (MembersKeeping), so
// what then reads of a topic's kept messages and what c gets live from
// now on meet without a gap or a repeat. It is the one call the index
// makes with its lock held: then must not come back to the index.
func (ix *Index) JoinThen(c registry.Conn, id int64, resumable, presence bool, topics [][]byte, then func(joined [][]byte)) {
	if len(topics) == 0 {
		return
	}
	var fresh []*entry // topics that get their first watcher
	defer func() { ix.seed(fresh) }()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ct := ix.conns[c]
	if ct == nil {
		ct = &connTopics{id: id, resumable: resumable}
		ix.conns[c] = ct
	}
	var joined [][]byte
	if then != nil {
		defer func() {
			if len(joined) > 0 {
				then(joined)
			}
		}()
	}
	for _, name := range topics {
		t := ix.state(name)
		if _, ok := t.members[c]; ok {
			continue
		}
		if then != nil {
			joined = append(joined, name)
		}
		t.members[c] = id
		ct.topics = append(ct.topics, t)
		ix.presenceJoin(t, id)
		if presence {
			if t.watchers == nil {
				t.watchers = make(map[registry.Conn]int64)
			}
			t.watchers[c] = id
			if !t.watched {
				ix.setWatched(t, true)
				fresh = append(fresh, t)
			}
		}
		if _, ok := t.linger[id]; ok {
			ix.unlinger(id, t)
		}
	}
}

// unlinger takes id out of t's lingering ids. ix.mu must be held for
// writing.
func (ix *Index) unlinger(id int64, t *entry) {
	delete(t.linger, id)
	ts := ix.linger[id]
	if i := slices.Index(ts, t); i >= 0 {
		ts = slices.Delete(ts, i, i+1)
	}
	if len(ts) == 0 {
		delete(ix.linger, id)
	} else {
		ix.linger[id] = ts
	}
}

// Leave forgets c's topics. If c was resumable and hasHistory(id) says
// its id's history lives on, id lingers in each of them (unless another
// conn of id is still a member).
func (ix *Index) Leave(c registry.Conn, hasHistory func(id int64) bool) {
	// Most logouts are of conns in no topic: no write lock for them.
	ix.mu.RLock()
	_, member := ix.conns[c]
	ix.mu.RUnlock()
	if !member {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.leaveLocked(c, hasHistory)
}

func (ix *Index) leaveLocked(c registry.Conn, hasHistory func(id int64) bool) {
	ct := ix.conns[c]
	if ct == nil {
		return
	}
	delete(ix.conns, c)
	linger := ct.resumable && hasHistory != nil && hasHistory(ct.id)
	for _, t := range ct.topics {
		delete(t.members, c)
		delete(t.watchers, c)
		ix.presenceLeave(t, ct.id)
		if linger && t.counts[ct.id] == 0 { // no other conn of id is in t
			if t.linger == nil {
				t.linger = make(map[int64]struct{})
			}
			if _, ok := t.linger[ct.id]; !ok {
				t.linger[ct.id] = struct{}{}
				ix.linger[ct.id] = append(ix.linger[ct.id], t)
			}
		}
		ix.drop(t)
	}
}

// Part takes c out of topics (a client's leave request): no lingering,
// since its client asked to leave.
func (ix *Index) Part(c registry.Conn, topics [][]byte) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ct := ix.conns[c]
	if ct == nil {
		return
	}
	for _, name := range topics {
		i := slices.IndexFunc(ct.topics, func(t *entry) bool { return t.name == string(name) })
		if i < 0 {
			continue
		}
		t := ct.topics[i]
		ct.topics = slices.Delete(ct.topics, i, i+1)
		delete(t.members, c)
		delete(t.watchers, c)
		ix.presenceLeave(t, ct.id)
		ix.drop(t)
	}
	if len(ct.topics) == 0 {
		delete(ix.conns, c)
	}
}

// LeaveGateway forgets the topics of every conn of gateway gw (it died,
// restarted or resyncs).
func (ix *Index) LeaveGateway(gw uint32, hasHistory func(id int64) bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for c := range ix.conns {
		if c.GW == gw {
			ix.leaveLocked(c, hasHistory)
		}
	}
}

// ForgetID ends id's lingering (its history was dropped).
func (ix *Index) ForgetID(id int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, t := range ix.linger[id] {
		delete(t.linger, id)
		ix.drop(t)
	}
	delete(ix.linger, id)
}

// Members appends topic's recipients to dst, sorted by id (each id's
// conns together), and returns them with the topic's interned name ("" if
// the topic has nobody).
func (ix *Index) Members(topic []byte, dst []Member) ([]Member, string) {
	return ix.MembersKeeping(topic, dst, nil)
}

// MembersKeeping is Members that calls keep, if not nil, under the same
// lock: a join (JoinThen) comes either before, and is among the
// members, or after, and finds what keep kept.
func (ix *Index) MembersKeeping(topic []byte, dst []Member, keep func()) ([]Member, string) {
	ix.mu.RLock()
	if keep != nil {
		keep()
	}
	t := ix.topics[string(topic)]
	if t == nil {
		ix.mu.RUnlock()
		return dst, ""
	}
	for c, id := range t.members {
		dst = append(dst, Member{ID: id, Conn: c})
	}
	for id := range t.linger {
		dst = append(dst, Member{ID: id})
	}
	name := t.name
	ix.mu.RUnlock()
	slices.SortFunc(dst, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return int(a.Conn.GW) - int(b.Conn.GW)
	})
	return dst, name
}

// TopicsOf is the interned names of c's topics (nil: none), for filtering
// a resume's catch-up.
func (ix *Index) TopicsOf(c registry.Conn) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ct := ix.conns[c]
	if ct == nil {
		return nil
	}
	out := make([]string, len(ct.topics))
	for i, t := range ct.topics {
		out[i] = t.name
	}
	return out
}

// Stats counts the topic index.
type Stats struct {
	Topics      int `json:"topics"`       // topics with a member or a lingering id
	Members     int `json:"members"`      // conns in topics, counted once per topic
	MemberConns int `json:"member_conns"` // conns in at least one topic
	Lingering   int `json:"lingering"`    // ids kept in topics for their resume
}

func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	st := Stats{Topics: len(ix.topics), MemberConns: len(ix.conns), Lingering: len(ix.linger)}
	for _, t := range ix.topics {
		st.Members += len(t.members)
	}
	return st
}

// Presence is who is in topic: each id with conns in it and their count.
func (ix *Index) Presence(topic string) map[int64]int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	t := ix.topics[topic]
	if t == nil {
		return nil
	}
	out := make(map[int64]int, len(t.counts))
	for id, n := range t.counts {
		out[id] = n
	}
	return out
}

// Event is one topic's join and leave event and the conns that
// get it here; remote: another partition has watchers in it too.
type Event struct {
	Topic    string
	Msg      []byte
	Watchers []Member // sorted by gateway
	Remote   bool
}

// PresenceEvents takes the changes since the last call: an event per
// changed topic that has watchers, {"presence":"lobby","ids":N,
// "joined":[...],"left":[...]} (at most changeCap ids each; past it,
// "joined_more"/"left_more" count the rest).
func (ix *Index) PresenceEvents() []Event {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []Event
	for t := range ix.changed {
		if len(t.watchers) > 0 || t.remoteUntil != 0 {
			n := len(t.counts)
			for id := range t.subs {
				if t.counts[id] == 0 {
					n++
				}
			}
			b := fmt.Appendf(nil, `{"presence":%q,"ids":%d`, t.name, n)
			b = appendIDs(b, "joined", t.joined)
			b = appendIDs(b, "left", t.left)
			out = append(out, Event{Topic: t.name, Msg: append(append(b, ix.partTag...), '}'), Watchers: t.watcherList(), Remote: t.remoteUntil != 0})
		}
		t.joined, t.left = nil, nil
	}
	clear(ix.changed)
	return out
}

// watcherList is t's watchers sorted by gateway. ix.mu must be held.
func (t *entry) watcherList() []Member {
	ws := make([]Member, 0, len(t.watchers))
	for c, id := range t.watchers {
		ws = append(ws, Member{ID: id, Conn: c})
	}
	slices.SortFunc(ws, func(a, b Member) int { return cmp.Compare(a.Conn.GW, b.Conn.GW) })
	return ws
}

// WatchersOf is the conns that want topic's presence events here, sorted
// by gateway (another partition's events go to them).
func (ix *Index) WatchersOf(topic []byte) []Member {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if t := ix.topics[string(topic)]; t != nil && len(t.watchers) > 0 {
		return t.watcherList()
	}
	return nil
}

// WatchedHere is the topics with watchers in this partition.
func (ix *Index) WatchedHere() []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	for _, t := range ix.topics {
		if len(t.watchers) > 0 {
			out = append(out, t.name)
		}
	}
	return out
}

// WatchRemote notes that another partition has watchers in topics (valid
// names) until until: this one tracks their presence and makes their
// events, as for watchers of its own.
func (ix *Index) WatchRemote(topics [][]byte, until int64) {
	var fresh []*entry
	ix.mu.Lock()
	for _, name := range topics {
		t := ix.state(name)
		t.remoteUntil = until
		ix.remote[t] = struct{}{}
		if !t.watched {
			ix.setWatched(t, true)
			fresh = append(fresh, t)
		}
	}
	ix.mu.Unlock()
	ix.seed(fresh)
}

// ExpireRemote forgets the other partitions' watching that was not said
// again before it ran out.
func (ix *Index) ExpireRemote(now int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for t := range ix.remote {
		if t.remoteUntil < now {
			t.remoteUntil = 0
			delete(ix.remote, t)
			ix.drop(t)
		}
	}
}

// appendIDs appends ,"name":[ids...] (sorted, at most changeCap) and the
// count of the rest.
func appendIDs(b []byte, name string, set map[int64]struct{}) []byte {
	ids := slices.Sorted(maps.Keys(set))
	b = fmt.Appendf(b, `,%q:[`, name)
	for i, id := range ids[:min(len(ids), changeCap)] {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	b = append(b, ']')
	if len(ids) > changeCap {
		b = fmt.Appendf(b, `,%q:%d`, name+"_more", len(ids)-changeCap)
	}
	return b
}
