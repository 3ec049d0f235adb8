package gateway

import (
	"github.com/cometgw/comet/internal/chunked"
	"github.com/cometgw/comet/internal/hub"
	"github.com/cometgw/comet/internal/longpoll"
	"github.com/cometgw/comet/internal/sse"
	"github.com/cometgw/comet/internal/ws"
)

// The kinds of client session, by their index in the hub's kind table.
// A new kind of client is a package implementing hub.Kind, a line here
// and in kinds below, and its handler.
const (
	kindStream = iota // GET /test/{id}: the chunked HTML stream
	kindSSE           // GET /sse/{id}: the EventSource stream
	kindPoll          // GET /poll/{id}: the long-poll
	kindWS            // GET /ws/{id}: the WebSocket
)

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
