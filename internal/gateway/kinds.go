package gateway

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/sse"
	"github.com/cometgw/comet/internal/ws"
)

// The kinds of client session, by their index in the hub's kind table
// and in clientKinds. A new kind of client is a package implementing
// hub.Kind, a const here, a line in clientKinds and in kinds, and its
// handler.
const (
	kindStream = iota // GET /test/{id}: the chunked HTML stream
	kindSSE           // GET /sse/{id}: the EventSource stream
	kindPoll          // GET /poll/{id}: the long-poll
	kindWS            // GET /ws/{id}: the WebSocket
	numKinds
)

// clientKind is one kind of client as the HTTP side sees it: the path
// prefix it is served at, its lines in the help and the index page, the
// content type a HEAD request is told, and the handler that opens it
// (the request admitted: route, method, id, topics and access checked).
type clientKind struct {
	prefix      string
	usage       string // "GET /sse/{id}": the request, with its query
	about       string // what it is; a "\n" continues it on the next line
	contentType string
	open        func(g *Gateway, ctx *fasthttp.RequestCtx, id int64, a admitted)
}

// clientKinds drives routing (parseRoute), HEAD answers and dispatch
// (handle), and the help text (Usage).
var clientKinds = [numKinds]clientKind{
	kindStream: {"/test/", "GET /test/{id}", "a chunked HTML stream of every message sent to integer id",
		"text/html; charset=utf-8", (*Gateway).handleStream},
	kindSSE: {"/sse/", "GET /sse/{id}", "an EventSource stream; Last-Event-ID or ?cursor= resumes",
		"text/event-stream; charset=utf-8", (*Gateway).handleSSE},
	kindPoll: {"/poll/", "GET /poll/{id}?cursor=C&timeout=30s", "a long-poll: the messages after cursor C, as JSON",
		"application/json", (*Gateway).handlePoll},
	kindWS: {"/ws/", "GET /ws/{id}?cursor=C", "a WebSocket: a text frame per message, and requests\n(publish, send, join, leave, ping) as JSON text frames",
		"text/html; charset=utf-8", (*Gateway).handleWS},
}

// Usage is the help's list of what the gateway serves, one request a
// line (continuations indented), from clientKinds.
func Usage() string {
	const col = 36
	var b strings.Builder
	line := func(req, about string) {
		for i, l := range strings.Split(about, "\n") {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s%s\n", col, req, l)
			} else {
				fmt.Fprintf(&b, "%-*s%s\n", col+1, "", l)
			}
		}
	}
	for _, k := range clientKinds {
		line(k.usage, k.about)
	}
	line("   ?topics=a,b on any of them", "also every message published to topics a and b")
	line("   &presence=1", "and who joins and leaves them")
	line("GET /demo", "a page that shows an id's messages as they arrive")
	line("GET /comet.js", "the JavaScript client library (an ES module)")
	return b.String()
}

// kinds is the hub's kind table; ops carries out WebSocket clients'
// requests (nil: for the kinds' names only).
func (c *Config) kinds(ops ws.Ops) []hub.Kind {
	return []hub.Kind{
		kindStream: chunked.Stream{Heartbeat: c.StreamHeartbeat},
		kindSSE:    sse.Stream{Retry: c.SSERetry, Heartbeat: c.SSEHeartbeat, CORS: corsHead(c.AllowOrigin)},
		kindPoll:   longpoll.Poll{ResumeWait: c.PollResumeWait, CORS: corsHead(c.AllowOrigin)},
		kindWS:     ws.Socket{MaxMessage: c.WSMaxMessage, Ping: c.WSPing, PongWait: c.WSPongWait, ControlRate: c.WSControlRate, RequestRate: c.WSRequestRate, Ops: ops},
	}
}
