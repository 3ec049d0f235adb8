package ws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// The client protocol: a client sends requests as JSON text messages and
// gets a reply or an error for each, as JSON text messages; the messages
// it receives are text messages too, told apart by their first byte
// (docs/PROTOCOL.md, "WebSocket clients").
//
//	{"op":"publish","topic":"lobby","data":"hi","ref":1}
//	{"op":"send","id":123,"data":"hi","ref":2}
//	{"op":"join","topics":["news"],"presence":true,"rewind":20,"ref":3}
//	{"op":"leave","topics":["news"],"ref":4}
//	{"op":"ping","ref":5}
//	{"op":"auth","token":"eyJ...","ref":6}

// Request is one client request. Ref is the client's number for it,
// echoed in the reply (0 if it gave none).
type Request struct {
	Op       string   `json:"op"`
	Ref      uint64   `json:"ref"`
	Topic    string   `json:"topic"`
	Topics   []string `json:"topics"`
	ID       *int64   `json:"id"`
	Data     *string  `json:"data"`
	Presence bool     `json:"presence"`
	// Rewind (join): up to that many of each topic's kept messages
	// first (the router's -topic-history), 0 to MaxRewind.
	Rewind int    `json:"rewind"`
	Token  string `json:"token"`
}

// MaxRewind bounds a join's rewind (topichist.MaxRewind).
const MaxRewind = 1000

// ParseRequest reads a client's request message; an error says what is
// wrong with it in one line (the error reply's text).
func ParseRequest(msg []byte) (*Request, error) {
	var r Request
	d := json.NewDecoder(bytes.NewReader(msg))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a request: %v (want a JSON object like {\"op\":\"publish\",\"topic\":\"lobby\",\"data\":\"hi\"})", err)
	}
	if d.More() {
		return &r, fmt.Errorf("not a request: more than one JSON value")
	}
	switch r.Op {
	case "publish":
		if r.Topic == "" || r.Data == nil {
			return &r, fmt.Errorf("publish needs a topic and data")
		}
	case "send":
		if r.ID == nil || r.Data == nil {
			return &r, fmt.Errorf("send needs an id and data")
		}
	case "join", "leave":
		if len(r.Topics) == 0 {
			return &r, fmt.Errorf("%s needs topics", r.Op)
		}
		if r.Rewind < 0 || r.Rewind > MaxRewind || r.Op == "leave" && r.Rewind != 0 {
			return &r, fmt.Errorf("rewind %d: want 0 to %d, with join", r.Rewind, MaxRewind)
		}
	case "auth":
		if r.Token == "" {
			return &r, fmt.Errorf("auth needs a token")
		}
	case "ping":
	case "":
		return &r, fmt.Errorf("no op: want publish, send, join, leave, auth or ping")
	default:
		return &r, fmt.Errorf("unknown op %q: want publish, send, join, leave, auth or ping", clip(r.Op))
	}
	return &r, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Reply is what became of a request: for publish and send, the router's
// account of every copy (as its ack says: delivered, or dropped by
// reason), for the others just ok.
type Reply struct {
	Type      string            `json:"type"` // "reply"
	Ref       uint64            `json:"ref"`
	Op        string            `json:"op"`
	Delivered uint64            `json:"delivered,omitempty"`
	Dropped   map[string]uint64 `json:"dropped,omitempty"`
	// Void: the message reached no one and was kept for no one (no one
	// holds the id, or no one is in the topic).
	Void bool `json:"void,omitempty"`
	// Kept: no one holds it now, and it was kept for a client that
	// resumes.
	Kept bool `json:"kept,omitempty"`
}

// AppendReply appends r as a text frame.
func AppendReply(b []byte, r *Reply) []byte {
	r.Type = "reply"
	j, _ := json.Marshal(r)
	return AppendFrame(b, OpText, j)
}

// AppendError appends an error reply to request ref (op may be empty) as
// a text frame: {"type":"error","ref":R,"op":"publish","error":"..."}.
func AppendError(b []byte, ref uint64, op, text string) []byte {
	var j []byte
	j = append(j, `{"type":"error","ref":`...)
	j = strconv.AppendUint(j, ref, 10)
	if op != "" {
		j = append(j, `,"op":`...)
		o, _ := json.Marshal(clip(op))
		j = append(j, o...)
	}
	j = append(j, `,"error":`...)
	e, _ := json.Marshal(text)
	j = append(append(j, e...), '}')
	return AppendFrame(b, OpText, j)
}
