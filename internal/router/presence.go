package router

import (
	"encoding/json"
	"maps"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/cometgw/comet/internal/registry"
	"github.com/cometgw/comet/internal/topics"
	"github.com/cometgw/comet/internal/wire"
)

// PresenceEvery is how often the join and leave events of topics are
// sent to the connections that asked for them (?presence=1): every change
// within it is in one event.
const PresenceEvery = time.Second

// Presence across partitions: a topic's members are ids of every
// partition, and so are its watchers. Each round, every partition's
// leader tells the others which topics it has watchers in (its watch
// list); a partition makes the join and leave events of its own ids for
// a topic watched anywhere, writes them to its own watchers, and hands
// them to the other partitions, which write them to theirs. Each event
// says whose ids it counts ("partition", "partitions").

// presence is the router's part in topics' presence: the rounds of join
// and leave events, the watch lists partitions exchange, and the answer
// to who is in a topic.
type presence struct {
	topics *topics.Index
	stored *storedSubs
	reg    *registry.Registry
	part   *partition
	lead   *lead
	nc     *nats.Conn
	log    *zap.Logger
	c      *counters
	// send routes a round's events (Router.sendPresence).
	send func(evs []topics.Event)
}

// loop sends the topics' presence events every PresenceEvery until done.
func (p *presence) loop(done <-chan struct{}) {
	t := time.NewTicker(PresenceEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if p.part != nil {
				p.topics.ExpireRemote(time.Now().UnixNano())
				p.sendWatchList()
			}
			p.stored.sync()
			if evs := p.topics.PresenceEvents(); len(evs) > 0 && !p.lead.standby() { // a standby: the leader sends them
				p.send(evs)
			}
		}
	}
}

// sendWatchList tells the other partitions which topics this one has
// watchers in (the leader only; nothing when there are none). What it
// says lasts three rounds.
func (p *presence) sendWatchList() {
	if p.lead.standby() {
		return
	}
	topics := p.topics.WatchedHere()
	if len(topics) == 0 {
		return
	}
	if err := p.nc.Publish(p.part.watchSubject, wire.AppendWatch(nil, p.part.k, topics)); err != nil {
		p.log.Warn("watch list not sent", zap.Error(err))
	}
}

// handleWatch notes another partition's watch list.
func (p *presence) handleWatch(m *nats.Msg) {
	k, topics, err := wire.ParseWatch(m.Data, p.part.n)
	if err != nil {
		p.c.badFrames.Add(1)
		p.log.Warn("bad watch list", zap.Error(err))
		return
	}
	if k == p.part.k {
		return // this partition's own (its leader's)
	}
	p.topics.WatchRemote(topics, time.Now().Add(3*PresenceEvery).UnixNano())
}

// Presence is who is in a topic: GET /topics/{topic}.
type Presence struct {
	Topic string `json:"topic"`
	// IDs maps each id with connections in the topic to their number.
	IDs   map[int64]int `json:"ids"`
	Conns int           `json:"conns"`
	// Partitions, on a partitioned router: the answer merges every
	// partition's share, but those in Unanswered (their routers did not
	// answer in time: their ids are missing from it).
	Partitions int   `json:"partitions,omitempty"`
	Unanswered []int `json:"unanswered_partitions,omitempty"`
}

// of returns who is in topic now, across every gateway: the ids whose
// connections joined it and the subscribed ids with connections.
func (p *presence) of(topic string) Presence {
	out := Presence{Topic: topic, IDs: p.local(topic)}
	if q := p.part; q != nil {
		out.Partitions = q.n
		for k := 0; k < q.n; k++ {
			if k == q.k {
				continue
			}
			var share presenceShare
			m, err := p.nc.Request(wire.PartSubject(wire.SubjectPresence, q.n, k), []byte(topic), 2*time.Second)
			if err == nil {
				err = json.Unmarshal(m.Data, &share)
			}
			if err != nil {
				out.Unanswered = append(out.Unanswered, k)
				continue
			}
			maps.Copy(out.IDs, share.IDs) // each id is in one partition
		}
	}
	for _, n := range out.IDs {
		out.Conns += n
	}
	return out
}

// presenceShare is a partition's answer on wire.SubjectPresence.
type presenceShare struct {
	IDs map[int64]int `json:"ids"`
}

// local is the ids with conns in topic that this router holds, and
// their conns.
func (p *presence) local(topic string) map[int64]int {
	ids := p.topics.Presence(topic)
	if ids == nil {
		ids = map[int64]int{}
	}
	var conns []registry.Conn
	p.stored.subscribers([]byte(topic), func(_ string, subs []int64) {
		for _, id := range subs {
			conns = p.reg.Lookup(id, conns[:0])
			if len(conns) > 0 {
				ids[id] = max(ids[id], len(conns))
			}
		}
	})
	return ids
}

// handleShare answers another partition's router with this partition's
// share of a topic's presence.
func (p *presence) handleShare(m *nats.Msg) {
	if !wire.ValidTopic(m.Data) {
		p.c.badFrames.Add(1)
		return
	}
	b, err := json.Marshal(presenceShare{IDs: p.local(string(m.Data))})
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		p.log.Warn("presence answer failed", zap.Error(err))
	}
}
