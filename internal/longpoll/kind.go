package longpoll

import (
	"strconv"
	"time"

	"github.com/cometgw/comet/internal/hub"
)

// The poll's flags in its session's kind flags.
const (
	flagKeepAlive uint8 = 1 << iota // hand the connection back after the answer
	flagExpired                     // the timeout passed before the router answered the resume
)

// maxAnswer is the size of gathered messages past which a long-poll is
// answered without waiting for the rest of its catch-up (the rest is kept
// by the router for the next poll).
const maxAnswer = 32 << 10

// Poll is the long-poll kind.
type Poll struct {
	// ResumeWait is how long past its timeout a poll waits for the
	// router's answer to its resume before it is answered 503.
	ResumeWait time.Duration
	// CORS is the CORS header lines of the answer, each ended by CR LF
	// (gateway.Config.AllowOrigin); empty: none.
	CORS string
}

// Traits implements hub.Kind: a poll resumes, and leaves what the client
// sends next (its next request) in the socket.
func (Poll) Traits() hub.Traits { return hub.Traits{Name: "poll", Resumable: true, KeepsInput: true} }

// Open sets the poll's deadline; nothing is written until the answer.
func (Poll) Open(s hub.Session, r *hub.Request) {
	s.SetDeadline(time.Now().Add(r.Wait).UnixNano())
	if r.KeepAlive {
		s.SetFlags(flagKeepAlive)
	}
}

func jsonString(dst []byte, m *hub.Message) []byte { return AppendJSONString(dst, m.Body) }

// Deliver gathers the message into the answer.
func (k Poll) Deliver(s hub.Session, m *hub.Message) bool {
	data := m.EncodedBody(s, jsonString)
	b := s.Scratch()
	*b = (*b)[:0]
	if s.Gathered() != nil {
		*b = append(*b, ',')
	}
	seq := uint64(0) // a broadcast has no position
	if m.Pos.Epoch != 0 {
		seq = s.Cursor().Seq
	}
	*b = AppendMessage(*b, seq, hub.EventName(m.Event), data)
	s.Gather(*b)
	k.check(s)
	return true
}

// Resumed answers at once if there is nothing to wait for.
func (k Poll) Resumed(s hub.Session) { k.check(s) }

// check answers the poll if it has what it waited for.
func (k Poll) check(s hub.Session) {
	if !s.Resumed() {
		return
	}
	g := s.Gathered()
	at := s.Cursor().Seq
	if s.Flags()&flagExpired != 0 || s.Missed() && at >= s.Head() || g != nil && (at >= s.Head() || len(g) >= maxAnswer) {
		k.answer(s)
	}
}

// Tick answers the poll at its deadline (or 503 if the router has not
// answered its resume ResumeWait later).
func (k Poll) Tick(s hub.Session, now int64) {
	if s.Finished() {
		return
	}
	switch dl := s.Deadline(); {
	case dl > now:
	case s.Resumed() || dl+int64(k.ResumeWait) <= now:
		k.answer(s)
	default:
		// Timed out before the router said where the client stands:
		// answer as soon as it does.
		s.SetFlags(s.Flags() | flagExpired)
	}
}

// answer writes the poll's answer: the messages gathered (maybe none, at
// its deadline or shutdown), or 503 if the router never answered its
// resume.
func (k Poll) answer(s hub.Session) {
	body := s.Scratch()
	status := "HTTP/1.1 200 OK\r\n"
	if s.Resumed() {
		*body = AppendAnswer((*body)[:0], s.ID(), s.Cursor(), s.Gathered(), s.Missed())
	} else {
		status = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
		*body = append((*body)[:0], `{"error":"the router did not answer in time; poll again"}`+"\n"...)
	}
	s.Release()
	out := s.OutBuf()
	p := append((*out)[:0], status...)
	p = append(p, "Server: comet-gateway\r\nContent-Type: application/json\r\nCache-Control: no-cache, no-store\r\n"...)
	p = append(p, k.CORS...)
	if s.Flags()&flagKeepAlive == 0 {
		p = append(p, "Connection: close\r\n"...)
	}
	p = append(p, "Content-Length: "...)
	p = strconv.AppendInt(p, int64(len(*body)), 10)
	p = append(append(p, "\r\n\r\n"...), *body...)
	*out = p
	s.Finish()
	if s.Write(p) && s.Idle() {
		k.Written(s)
	}
}

// Written ends an answered poll: the connection goes back to the HTTP
// server for the next request, or is closed.
func (Poll) Written(s hub.Session) {
	if !s.Finished() || !s.IsOpen() {
		return
	}
	if s.Flags()&flagKeepAlive != 0 {
		s.Handback(hub.ReasonAnswered)
	} else {
		s.Close(hub.ReasonAnswered)
	}
}

// Shutdown answers a waiting poll with what it has (its cursor loses
// nothing) and closes: the next poll goes to another gateway process.
func (k Poll) Shutdown(s hub.Session) {
	if !s.Finished() {
		s.SetFlags(s.Flags() &^ flagKeepAlive)
		k.answer(s)
	}
}
