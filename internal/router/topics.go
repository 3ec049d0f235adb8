package router

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

// topicIndex is who is in each topic: the connections that joined it
// (GET /sse/{id}?topics=...), and the ids whose resumable clients joined
// it and left while their id's history lasts (lingering), so that what is
// published meanwhile is kept for their resume. Topic names are interned:
// each is one string, shared by the index and the history entries that
// carry it.
type topicIndex struct {
	mu      sync.RWMutex
	topics  map[string]*topicState
	conns   map[registry.Conn]*connTopics // the topics each member conn joined
	linger  map[int64][]*topicState       // the topics each lingering id is kept in
	changed map[*topicState]struct{}      // topics with presence changes not yet told
	remote  map[*topicState]struct{}      // topics watched in another partition
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
}

type topicState struct {
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
	topics    []*topicState
}

// member is one recipient of a publish: a conn of id, or (Conn.GW 0) an
// id lingering in the topic.
type member struct {
	id   int64
	conn registry.Conn
}

func newTopicIndex(held func(id int64) bool) *topicIndex {
	ix := &topicIndex{topics: make(map[string]*topicState), conns: make(map[registry.Conn]*connTopics),
		linger: make(map[int64][]*topicState), changed: make(map[*topicState]struct{}), remote: make(map[*topicState]struct{}), held: held}
	ix.watched.Store(&map[string]struct{}{})
	return ix
}

// isWatched says whether topic has watchers; no lock.
func (ix *topicIndex) isWatched(topic string) bool {
	_, ok := (*ix.watched.Load())[topic]
	return ok
}

// anyWatched says whether some topic has watchers; no lock.
func (ix *topicIndex) anyWatched() bool { return len(*ix.watched.Load()) > 0 }

// setWatched notes that t's watchers went from none to some or back.
// ix.mu must be held for writing.
func (ix *topicIndex) setWatched(t *topicState, on bool) {
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
func (ix *topicIndex) seed(fresh []*topicState) {
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

// syncSub brings id's presence as a subscriber of topics up to date:
// present if subscribed (the caller says) and id has a conn now. Only
// topics with watchers are kept; the changes are join and leave events.
func (ix *topicIndex) syncSub(id int64, topics []string, subscribed bool) {
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
func (ix *topicIndex) state(topic []byte) *topicState {
	if t := ix.topics[string(topic)]; t != nil {
		return t
	}
	t := &topicState{name: string(topic), members: make(map[registry.Conn]int64), counts: make(map[int64]int)}
	ix.topics[t.name] = t
	return t
}

// drop forgets t if nothing is left in it. ix.mu must be held for writing.
func (ix *topicIndex) drop(t *topicState) {
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
func (ix *topicIndex) presenceJoin(t *topicState, id int64) {
	if t.counts[id]++; t.counts[id] > 1 {
		return
	}
	if _, ok := t.subs[id]; ok {
		return // present already, as a subscriber
	}
	ix.joined(t, id)
}

// joined notes that id came into t. ix.mu must be held for writing.
func (ix *topicIndex) joined(t *topicState, id int64) {
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
func (ix *topicIndex) presenceLeave(t *topicState, id int64) {
	if t.counts[id]--; t.counts[id] > 0 {
		return
	}
	delete(t.counts, id)
	if _, ok := t.subs[id]; ok {
		return // still present, as a subscriber
	}
	ix.left(t, id)
}

// left notes that id went from t. ix.mu must be held for writing.
func (ix *topicIndex) left(t *topicState, id int64) {
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

// join records that c, logged in as id, joined topics (valid names, no
// repeats); resumable says its client resumes (SSE, long-poll), so when
// it leaves, id lingers in its topics while id's history lasts. A join of
// a conn already known adds to its topics.
func (ix *topicIndex) join(c registry.Conn, id int64, resumable, presence bool, topics [][]byte) {
	if len(topics) == 0 {
		return
	}
	var fresh []*topicState // topics that get their first watcher
	defer func() { ix.seed(fresh) }()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ct := ix.conns[c]
	if ct == nil {
		ct = &connTopics{id: id, resumable: resumable}
		ix.conns[c] = ct
	}
	for _, name := range topics {
		t := ix.state(name)
		if _, ok := t.members[c]; ok {
			continue
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
func (ix *topicIndex) unlinger(id int64, t *topicState) {
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

// leave forgets c's topics. If c was resumable and hasHistory(id) says
// its id's history lives on, id lingers in each of them (unless another
// conn of id is still a member).
func (ix *topicIndex) leave(c registry.Conn, hasHistory func(id int64) bool) {
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

func (ix *topicIndex) leaveLocked(c registry.Conn, hasHistory func(id int64) bool) {
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

// part takes c out of topics (a client's leave request): no lingering,
// since its client asked to leave.
func (ix *topicIndex) part(c registry.Conn, topics [][]byte) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ct := ix.conns[c]
	if ct == nil {
		return
	}
	for _, name := range topics {
		i := slices.IndexFunc(ct.topics, func(t *topicState) bool { return t.name == string(name) })
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

// leaveGateway forgets the topics of every conn of gateway gw (it died,
// restarted or resyncs).
func (ix *topicIndex) leaveGateway(gw uint32, hasHistory func(id int64) bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for c := range ix.conns {
		if c.GW == gw {
			ix.leaveLocked(c, hasHistory)
		}
	}
}

// forgetID ends id's lingering (its history was dropped).
func (ix *topicIndex) forgetID(id int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, t := range ix.linger[id] {
		delete(t.linger, id)
		ix.drop(t)
	}
	delete(ix.linger, id)
}

// members appends topic's recipients to dst, sorted by id (each id's
// conns together), and returns them with the topic's interned name ("" if
// the topic has nobody).
func (ix *topicIndex) members(topic []byte, dst []member) ([]member, string) {
	ix.mu.RLock()
	t := ix.topics[string(topic)]
	if t == nil {
		ix.mu.RUnlock()
		return dst, ""
	}
	for c, id := range t.members {
		dst = append(dst, member{id: id, conn: c})
	}
	for id := range t.linger {
		dst = append(dst, member{id: id})
	}
	name := t.name
	ix.mu.RUnlock()
	slices.SortFunc(dst, func(a, b member) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return int(a.conn.GW) - int(b.conn.GW)
	})
	return dst, name
}

// topicsOf is the interned names of c's topics (nil: none), for filtering
// a resume's catch-up.
func (ix *topicIndex) topicsOf(c registry.Conn) []string {
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

// TopicStats counts the topic index.
type TopicStats struct {
	Topics      int `json:"topics"`       // topics with a member or a lingering id
	Members     int `json:"members"`      // conns in topics, counted once per topic
	MemberConns int `json:"member_conns"` // conns in at least one topic
	Lingering   int `json:"lingering"`    // ids kept in topics for their resume
}

func (ix *topicIndex) stats() TopicStats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	st := TopicStats{Topics: len(ix.topics), MemberConns: len(ix.conns), Lingering: len(ix.linger)}
	for _, t := range ix.topics {
		st.Members += len(t.members)
	}
	return st
}

// presence is who is in topic: each id with conns in it and their count.
func (ix *topicIndex) presence(topic string) map[int64]int {
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

// presenceEvent is one topic's join and leave event and the conns that
// get it here; remote: another partition has watchers in it too.
type presenceEvent struct {
	topic    string
	msg      []byte
	watchers []member // sorted by gateway
	remote   bool
}

// presenceEvents takes the changes since the last call: an event per
// changed topic that has watchers, {"presence":"lobby","ids":N,
// "joined":[...],"left":[...]} (at most changeCap ids each; past it,
// "joined_more"/"left_more" count the rest).
func (ix *topicIndex) presenceEvents() []presenceEvent {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []presenceEvent
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
			out = append(out, presenceEvent{topic: t.name, msg: append(append(b, ix.partTag...), '}'), watchers: t.watcherList(), remote: t.remoteUntil != 0})
		}
		t.joined, t.left = nil, nil
	}
	clear(ix.changed)
	return out
}

// watcherList is t's watchers sorted by gateway. ix.mu must be held.
func (t *topicState) watcherList() []member {
	ws := make([]member, 0, len(t.watchers))
	for c, id := range t.watchers {
		ws = append(ws, member{id: id, conn: c})
	}
	slices.SortFunc(ws, func(a, b member) int { return cmp.Compare(a.conn.GW, b.conn.GW) })
	return ws
}

// watchersOf is the conns that want topic's presence events here, sorted
// by gateway (another partition's events go to them).
func (ix *topicIndex) watchersOf(topic []byte) []member {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if t := ix.topics[string(topic)]; t != nil && len(t.watchers) > 0 {
		return t.watcherList()
	}
	return nil
}

// watchedHere is the topics with watchers in this partition.
func (ix *topicIndex) watchedHere() []string {
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

// watchRemote notes that another partition has watchers in topics (valid
// names) until until: this one tracks their presence and makes their
// events, as for watchers of its own.
func (ix *topicIndex) watchRemote(topics [][]byte, until int64) {
	var fresh []*topicState
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

// expireRemote forgets the other partitions' watching that was not said
// again before it ran out.
func (ix *topicIndex) expireRemote(now int64) {
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
