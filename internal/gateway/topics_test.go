package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/router"
	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/testclient"
)

// sseData reads events until one with data and returns its id and data
// (the id: line is the cursor after it).
func sseData(t *testing.T, br *bufio.Reader) (id, data string) {
	t.Helper()
	for {
		ev := nextEvent(t, br)
		id, data = "", ""
		for _, l := range ev {
			switch {
			case strings.HasPrefix(l, "id: "):
				id = l[4:]
			case strings.HasPrefix(l, "data: "):
				data = l[6:]
			}
		}
		if data != "" {
			return id, data
		}
	}
}

// waitConns waits until the router holds n conns.
func waitConns(t *testing.T, r *router.Router, n int64) {
	t.Helper()
	waitFor(t, "logins at the router", 5*time.Second, func() bool { return r.Stats().Conns == n })
}

// A publish reaches every connection that joined its topic, of every
// kind, once per connection, and no other; the acks count them; a
// broadcast reaches every connection; a topic nobody is in is void.
func TestPublishAndBroadcast(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	chunked := testclient.OpenPath(t, addr, "/test/1?topics=lobby", 1)
	inBoth := readSSE(t, addr, "/sse/2?topics=lobby,news", "")
	outside := readSSE(t, addr, "/sse/3", "")
	newsOnly := testclient.OpenPath(t, addr, "/test/4?topics=news", 4)
	waitConns(t, r, 4)
	if p := r.Presence("lobby"); p.Conns != 2 || p.IDs[1] != 1 || p.IDs[2] != 1 {
		t.Fatalf("presence %+v", p)
	}

	res, err := r.Publish("lobby", []byte("hello <lobby>"))
	if err != nil || res.Tally.Delivered != 2 || res.Tally.Dropped() != 0 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	if got := chunked.Next(5 * time.Second); got != testclient.Msg(1, "hello <lobby>") {
		t.Fatalf("chunked member got %q", got)
	}
	if _, data := sseData(t, inBoth); data != "hello <lobby>" {
		t.Fatalf("SSE member got %q", data)
	}
	if res, _ := r.Publish("news", []byte("news!")); res.Tally.Delivered != 2 {
		t.Fatalf("news: %+v", res)
	}
	if _, data := sseData(t, inBoth); data != "news!" {
		t.Fatalf("SSE member of two topics got %q", data)
	}
	if got := newsOnly.Next(5 * time.Second); got != testclient.Msg(1, "news!") {
		t.Fatalf("news member got %q", got)
	}
	if res, _ := r.Publish("nobody", []byte("x")); res.Tally.Delivered != 0 || r.Stats().TopicVoid != 1 {
		t.Fatalf("publish to an empty topic: %+v, stats %+v", res, r.Stats())
	}

	res, err = r.Broadcast([]byte("to all"))
	if err != nil || res.Tally.Delivered != 4 {
		t.Fatalf("broadcast: %+v %v", res, err)
	}
	if got := chunked.Next(5 * time.Second); got != testclient.Msg(2, "to all") {
		t.Fatalf("chunked got %q", got)
	}
	for _, br := range []*bufio.Reader{inBoth, outside} {
		if _, data := sseData(t, br); data != "to all" {
			t.Fatalf("SSE got %q", data)
		}
	}
	if got := newsOnly.Next(5 * time.Second); got != testclient.Msg(2, "to all") {
		t.Fatalf("news member got %q", got)
	}
	if got := chunked.TryNext(200 * time.Millisecond); got != "" {
		t.Fatalf("chunked member got a message of a topic it is not in: %q", got)
	}
	st := r.Stats()
	if st.Published != 3 || st.Broadcasts != 1 || st.Topics.Topics != 2 || st.Topics.Members != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// A long-poll in a topic gets what is published to it, with seq (the
// position in its id's history), and broadcasts with seq 0.
func TestPollInTopic(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	first := mustPoll(t, c, addr, 6, "topics=room&timeout=10ms")
	go func() {
		time.Sleep(200 * time.Millisecond) // the poll is waiting
		r.Publish("room", []byte("in the room"))
	}()
	a := mustPoll(t, c, addr, 6, "topics=room&timeout=5s&cursor="+first.Cursor)
	if len(a.Messages) != 1 || a.Messages[0].Data != "in the room" || a.Messages[0].Seq == 0 {
		t.Fatalf("poll answer %+v", a)
	}
	go func() {
		time.Sleep(200 * time.Millisecond) // the poll is waiting
		r.Broadcast([]byte("everyone"))
	}()
	start := time.Now()
	b := mustPoll(t, c, addr, 6, "topics=room&timeout=5s&cursor="+a.Cursor)
	if len(b.Messages) != 1 || b.Messages[0].Data != "everyone" || b.Messages[0].Seq != 0 || b.Cursor != a.Cursor {
		t.Fatalf("poll answer %+v after %+v", b, a)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the broadcast was answered after %s, at the poll's timeout", d)
	}
}

// An SSE client resumes the messages of its topics published while it
// was away, in order, once, with what was sent to its id; a message of a
// topic it is not in is not in its catch-up, even when another client of
// the same id is in that topic.
func TestSSEResumesTopicMessages(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	plainConn, plain := openSSE(t, addr, "/sse/8", "")
	memberConn, member := openSSE(t, addr, "/sse/8?topics=lobby", "")
	waitConns(t, r, 2)
	r.Send(8, []byte("to 8"))
	plainAt, _ := sseData(t, plain)
	if _, data := sseData(t, member); data != "to 8" {
		t.Fatalf("member got %q", data)
	}
	r.Publish("lobby", []byte("lobby 1"))
	memberAt, data := sseData(t, member)
	if data != "lobby 1" {
		t.Fatalf("member got %q", data)
	}

	// The member leaves; what is published to lobby meanwhile is kept for
	// it (its id stays in the topic while its history lasts).
	memberConn.Close()
	waitConns(t, r, 1)
	if res, _ := r.Publish("lobby", []byte("lobby 2")); !res.Kept || res.Tally.Delivered != 0 {
		t.Fatalf("publish while the member is away: %+v", res)
	}
	_, member = openSSE(t, addr, "/sse/8?topics=lobby", "Last-Event-ID: "+memberAt+"\r\n")
	if _, data := sseData(t, member); data != "lobby 2" {
		t.Fatalf("member resumed with %q, want lobby 2", data)
	}

	// The plain client resumes from after "to 8": the lobby messages in
	// its id's history are not for it.
	plainConn.Close()
	waitConns(t, r, 1)
	r.Send(8, []byte("to 8 again"))
	_, plain = openSSE(t, addr, "/sse/8", "Last-Event-ID: "+plainAt+"\r\n")
	if _, data := sseData(t, plain); data != "to 8 again" {
		t.Fatalf("plain client resumed with %q, want only what was sent to its id", data)
	}
	if _, data := sseData(t, member); data != "to 8 again" {
		t.Fatalf("member got %q", data)
	}
}

// Stored subscriptions: an id subscribed to a topic gets what is
// published to it on every connection it opens, without ?topics=; a
// resuming client gets what was published while it was away; the
// subscription outlives the router that stored it (another router on the
// same NATS has it), and an unsubscribe ends it.
func TestStoredSubscriptions(t *testing.T) {
	ns := natstest.Start(t, true)
	r1, stop1 := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	g := startGateway(t, ns.ClientURL(), gateway.Config{})
	t.Cleanup(func() { g.Close() })
	waitFor(t, "gateway known", 5*time.Second, func() bool { return r1.Stats().Gateways == 1 })
	ctx := context.Background()
	if err := r1.Subscription(ctx, subs.OpSubscribe, 9, "lobby"); err != nil {
		t.Fatal(err)
	}
	addr := g.Addr().String()
	stream := testclient.Open(t, addr, 9)
	sseConn, sse := openSSE(t, addr, "/sse/9", "")
	waitConns(t, r1, 2)
	if p := r1.Presence("lobby"); p.IDs[9] != 2 {
		t.Fatalf("presence %+v", p)
	}
	if res, _ := r1.Publish("lobby", []byte("m1")); res.Tally.Delivered != 2 {
		t.Fatalf("publish to a subscribed id's two connections: %+v", res)
	}
	if got := stream.Next(5 * time.Second); got != testclient.Msg(1, "m1") {
		t.Fatalf("stream got %q", got)
	}
	at, data := sseData(t, sse)
	if data != "m1" {
		t.Fatalf("SSE got %q", data)
	}
	sseConn.Close()
	waitConns(t, r1, 1)
	r1.Publish("lobby", []byte("m2"))
	if got := stream.Next(5 * time.Second); got != testclient.Msg(2, "m2") {
		t.Fatalf("stream got %q", got)
	}
	_, sse = openSSE(t, addr, "/sse/9", "Last-Event-ID: "+at+"\r\n")
	if _, data := sseData(t, sse); data != "m2" {
		t.Fatalf("SSE resumed with %q, want m2", data)
	}

	stop1()
	r2, stop2 := startRouter(t, router.Config{NATSURL: ns.ClientURL()})
	defer stop2()
	waitFor(t, "logins back", 5*time.Second, func() bool { return r2.Stats().Conns == 2 })
	if got := r2.SubscriptionsOf(9); len(got) != 1 || got[0] != "lobby" {
		t.Fatalf("the new router's subscriptions of 9: %v", got)
	}
	if res, _ := r2.Publish("lobby", []byte("m3")); res.Tally.Delivered != 2 {
		t.Fatalf("publish after a router restart: %+v", res)
	}
	if got := stream.Next(5 * time.Second); got != testclient.Msg(3, "m3") {
		t.Fatalf("stream got %q", got)
	}
	if err := r2.Subscription(ctx, subs.OpUnsubscribe, 9, "lobby"); err != nil {
		t.Fatal(err)
	}
	if res, _ := r2.Publish("lobby", []byte("m4")); res.Tally.Delivered != 0 {
		t.Fatalf("publish after unsubscribing: %+v", res)
	}
	if st := r2.Stats(); st.Subscriptions == nil || st.Subscriptions.Subscriptions != 0 {
		t.Fatalf("stats %+v", st.Subscriptions)
	}
}

// presenceEvent is a presence event as a watcher reads it.
type presenceEvent struct {
	Presence   string  `json:"presence"`
	IDs        int     `json:"ids"`
	Joined     []int64 `json:"joined"`
	Left       []int64 `json:"left"`
	JoinedMore int     `json:"joined_more"`
}

// nextPresence reads SSE events until a presence event, which must be
// typed "event: presence".
func nextPresence(t *testing.T, br *bufio.Reader) presenceEvent {
	t.Helper()
	for {
		var typ, data string
		for _, l := range nextEvent(t, br) {
			switch {
			case strings.HasPrefix(l, "event: "):
				typ = l[7:]
			case strings.HasPrefix(l, "data: "):
				data = l[6:]
			}
		}
		var ev presenceEvent
		if err := json.Unmarshal([]byte(data), &ev); err == nil && ev.Presence != "" {
			if typ != "presence" {
				t.Fatalf("a presence event of type %q: %q", typ, data)
			}
			return ev
		}
	}
}

// Ids subscribed to a topic (stored subscriptions) are in its presence
// while they have a connection, like members: their first login and last
// logout, their subscribing and unsubscribing while online, are join
// and leave events; a watcher that comes later counts the ones already
// there.
func TestPresenceOfSubscribers(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub := func(op byte, id int64, topic string) {
		t.Helper()
		if err := r.Subscription(ctx, op, id, topic); err != nil {
			t.Fatal(err)
		}
	}
	// A watcher in "hall" after 60, subscribed and online, came.
	sub(subs.OpSubscribe, 60, "hall")
	s60 := testclient.Open(t, addr, 60)
	waitConns(t, r, 1)
	_, hall := openSSE(t, addr, "/sse/2?topics=hall&presence=1", "")
	if ev := nextPresence(t, hall); ev.IDs != 2 || len(ev.Joined) != 1 || ev.Joined[0] != 2 {
		t.Fatalf("a watcher's first event with a subscriber there: %+v", ev)
	}
	s60.Conn.Close()
	if ev := nextPresence(t, hall); ev.IDs != 1 || len(ev.Left) != 1 || ev.Left[0] != 60 {
		t.Fatalf("the subscriber's last logout: %+v", ev)
	}

	_, room := openSSE(t, addr, "/sse/1?topics=room&presence=1", "")
	nextPresence(t, room)             // 1 joined
	sub(subs.OpSubscribe, 50, "room") // offline: no event
	s50 := testclient.Open(t, addr, 50)
	if ev := nextPresence(t, room); ev.IDs != 2 || len(ev.Joined) != 1 || ev.Joined[0] != 50 {
		t.Fatalf("a subscriber's first login: %+v", ev)
	}
	// A second conn of 50, in the topic itself: 50 is there already.
	s50b := testclient.OpenPath(t, addr, "/test/50?topics=room", 50)
	s50b.Conn.Close()
	s50.Conn.Close()
	if ev := nextPresence(t, room); ev.IDs != 1 || len(ev.Left) != 1 || ev.Left[0] != 50 || len(ev.Joined) != 0 {
		t.Fatalf("the subscriber gone: %+v", ev)
	}
	// Subscribing and unsubscribing an online id.
	testclient.Open(t, addr, 51)
	waitConns(t, r, 3)
	sub(subs.OpSubscribe, 51, "room")
	if ev := nextPresence(t, room); len(ev.Joined) != 1 || ev.Joined[0] != 51 || ev.IDs != 2 {
		t.Fatalf("an online id subscribed: %+v", ev)
	}
	if p := r.Presence("room"); p.IDs[51] != 1 || p.IDs[1] != 1 || len(p.IDs) != 2 {
		t.Fatalf("presence %+v", p)
	}
	sub(subs.OpUnsubscribe, 51, "room")
	if ev := nextPresence(t, room); len(ev.Left) != 1 || ev.Left[0] != 51 || ev.IDs != 1 {
		t.Fatalf("an online id unsubscribed: %+v", ev)
	}
}

// Every kind of client tells a presence event from a message: SSE by its
// event type, a WebSocket by a JSON frame of type presence, a long-poll
// by the event field of the element; a message published into the
// topic stays a message.
func TestPresenceEventsTyped(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	_, sse := openSSE(t, addr, "/sse/1?topics=room&presence=1", "")
	nextPresence(t, sse) // 1 joined
	w := dialWS(t, addr, "/ws/2?topics=room&presence=1")
	w.control() // resumed
	poll := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/poll/3?topics=room&presence=1&timeout=5s")
		if err != nil {
			t.Error(err)
		}
		poll <- resp
	}()
	waitConns(t, r, 3)
	testclient.OpenPath(t, addr, "/test/4?topics=room", 4)

	for {
		m := w.control()
		if m["type"] != "presence" || m["presence"] != "room" {
			t.Fatalf("WebSocket presence frame %v", m)
		}
		if slices.Contains(m["joined"].([]any), 4.0) {
			break
		}
	}
	resp := <-poll
	if resp == nil {
		t.FailNow()
	}
	var ans longpoll.Answer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || len(ans.Messages) == 0 {
		t.Fatalf("poll %v %+v", err, ans)
	}
	resp.Body.Close()
	if m := ans.Messages[0]; m.Event != "presence" || m.Seq != 0 || !strings.Contains(m.Data, `"presence":"room"`) {
		t.Fatalf("long-poll presence element %+v", m)
	}
	for {
		if ev := nextPresence(t, sse); slices.Contains(ev.Joined, 4) {
			break
		}
	}
	if res, _ := r.Publish("room", []byte("hello")); res.Tally.Delivered < 3 {
		t.Fatalf("publish %+v", res)
	}
	if _, msg := w.message(); msg != "hello" {
		t.Fatalf("WebSocket message %q", msg)
	}
	for {
		_, data := sseData(t, sse)
		if strings.HasPrefix(data, `{"presence"`) {
			continue // the poll's client leaving
		}
		if data != "hello" {
			t.Fatalf("SSE message %q", data)
		}
		break
	}
}

// Join and leave events (?presence=1): who comes into a topic and who
// goes, from every gateway, one event a second at most, with a gateway
// that goes away counted as its members leaving; a ramp of joins is a
// few events, not one per join.
func TestPresenceEvents(t *testing.T) {
	r, g1 := startSystem(t, gateway.Config{})
	g2 := startNamedGateway(t, r.NATSURL(), "second", gateway.Config{})
	waitFor(t, "two gateways", 5*time.Second, func() bool { return r.Stats().Gateways == 2 })
	_, watcher := openSSE(t, g1.Addr().String(), "/sse/1?topics=room&presence=1", "")
	if ev := nextPresence(t, watcher); ev.IDs != 1 || len(ev.Joined) != 1 || ev.Joined[0] != 1 {
		t.Fatalf("first event %+v", ev)
	}
	testclient.OpenPath(t, g2.Addr().String(), "/test/2?topics=room", 2)
	testclient.OpenPath(t, g2.Addr().String(), "/test/3?topics=room", 3)
	testclient.OpenPath(t, g1.Addr().String(), "/test/3?topics=room", 3) // a second conn of 3: no event of its own
	joined := map[int64]bool{}
	for len(joined) < 2 {
		ev := nextPresence(t, watcher)
		for _, id := range ev.Joined {
			joined[id] = true
		}
	}
	if !joined[2] || !joined[3] {
		t.Fatalf("joined %v", joined)
	}
	if p := r.Presence("room"); p.Conns != 4 || p.IDs[3] != 2 {
		t.Fatalf("presence %+v", p)
	}
	g2.Close()
	ev := nextPresence(t, watcher)
	if len(ev.Left) != 1 || ev.Left[0] != 2 || ev.IDs != 2 {
		t.Fatalf("after the second gateway left: %+v (3 still has a conn on the first)", ev)
	}

	// 300 joins at once: a few events, every join counted once.
	for id := int64(100); id < 400; id++ {
		testclient.OpenPath(t, g1.Addr().String(), fmt.Sprintf("/test/%d?topics=room", id), id)
	}
	total, events := 0, 0
	for total < 300 {
		ev := nextPresence(t, watcher)
		events++
		total += len(ev.Joined) + ev.JoinedMore
	}
	if total != 300 || events > 5 {
		t.Fatalf("%d joins in %d events", total, events)
	}
	if st := r.Stats(); st.PresenceEvents < 4 {
		t.Fatalf("presence events %d", st.PresenceEvents)
	}
}

// router kick ends every session of an id, on every kind, as at a
// gateway's shutdown (the chunked stream gets its terminating chunk),
// and logs them out; other ids are untouched.
func TestKick(t *testing.T) {
	r, g := startSystem(t, gateway.Config{})
	addr := g.Addr().String()
	stream := testclient.Open(t, addr, 5)
	_, sse := openSSE(t, addr, "/sse/5", "")
	other := testclient.Open(t, addr, 6)
	waitConns(t, r, 3)
	if n := r.Kick(5); n != 2 {
		t.Fatalf("kicked %d, want 2", n)
	}
	// The stream's body ends (TryNext returns "" at its end).
	for i := 0; i < 10 && !stream.Done(); i++ {
		stream.TryNext(time.Second)
	}
	if !stream.Done() {
		t.Fatal("the kicked stream did not end with its terminating chunk")
	}
	// The SSE stream ends too: reading it reaches its end.
	if _, err := io.ReadAll(sse); err != nil {
		t.Fatalf("SSE after the kick: %v", err)
	}
	waitConns(t, r, 1)
	waitFor(t, "two closed as kicked", 5*time.Second, func() bool { return g.Hub().Stats().Closed["kicked"] == 2 })
	if res, _ := r.Send(6, []byte("still here")); res.Tally.Delivered != 1 {
		t.Fatalf("the other id: %+v", res)
	}
	if got := other.Next(5 * time.Second); got != testclient.Msg(1, "still here") {
		t.Fatalf("other got %q", got)
	}
}
