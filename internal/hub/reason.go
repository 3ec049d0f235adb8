package hub

import "fmt"

// Reason says why a session was closed.
type Reason uint8

// Close reasons.
const (
	ReasonPeer        Reason = iota // the client closed or reset the connection
	ReasonSlow                      // pending output passed Config.MaxPending
	ReasonTimeout                   // pending output made no progress for Config.WriteTimeout, or the kernel gave up on the connection (TCP_USER_TIMEOUT, keep-alive)
	ReasonWriteError                // a write failed
	ReasonProtocol                  // the client sent more than its kind may
	ReasonShutdown                  // the gateway is shutting down
	ReasonAnswered                  // the session's one request was answered (a long-poll)
	ReasonExpired                   // the client's credentials expired (Request.Expires)
	ReasonKicked                    // an operator closed the id's sessions (router kick)
	ReasonRate                      // the client sent control or empty frames past its kind's rate
	ReasonStalled                   // the client's input stayed incomplete past Config.InputTimeout
	ReasonInputBudget               // input held for all sessions passed Config.InputBudget: the largest holders close
	ReasonDrained                   // the gateway is stopping and ended the session in its drain (Hub.Drain)
	numReasons
)

var reasonNames = [numReasons]string{"peer", "slow", "timeout", "write_error", "protocol", "shutdown", "answered", "expired", "kicked", "rate", "stalled", "input_budget", "drained"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons lists every close reason, for metrics.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}
