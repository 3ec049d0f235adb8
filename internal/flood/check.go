package flood

import (
	"bytes"
)

// Problem kinds counted by the engine.
const (
	ErrConnect  = "connect"   // the TCP connection failed
	ErrTimeout  = "timeout"   // no response head within the connect timeout
	ErrStatus   = "status"    // the response was not 200 (nor 503)
	ErrBusy     = "busy"      // the response was 503: the server is busy for now (a gateway whose router has not answered a resume yet, or full)
	ErrHead     = "head"      // the response head was malformed or too long
	ErrFraming  = "framing"   // the chunked body was malformed
	ErrOrder    = "order"     // "Recvd msg #N" did not count up by one
	ErrLost     = "lost"      // numbered messages skipped (seq jumped)
	ErrDup      = "duplicate" // numbered messages repeated or went back
	ErrReset    = "reset"     // the connection was reset or failed mid-stream
	ErrWelcome  = "welcome"   // the first chunk was not the welcome for the id
	ErrEnded    = "ended"     // the server ended the body (terminating chunk)
	ErrPeerShut = "peer_closed"
	ErrMissed   = "missed" // an SSE or long-poll client was told messages were missed
	ErrAnswer   = "answer" // a long-poll answer was malformed
)

var (
	msgPrefix = []byte("Recvd msg #")
	seqMark   = []byte(" seq=")
	welcome   = []byte("welcomes you! Your Id: ")
)

// parseUint reads decimal digits at the start of b.
func parseUint(b []byte) (v uint64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' && n < 20 {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

// lastIndex is bytes.LastIndex for the short marks msggen appends at
// the end of a message: a scan back from the end, which finds them in a
// few bytes (bytes.LastIndex hashes with Rabin-Karp, 3% of the machine
// in floodtest's reads at 500,000 messages/s).
func lastIndex(b, mark []byte) int {
	for i := len(b) - len(mark); i >= 0; i-- {
		if b[i] == mark[0] && bytes.Equal(b[i:i+len(mark)], mark) {
			return i
		}
	}
	return -1
}

// checkMessage checks one message chunk against what the stream expects:
// its "Recvd msg #N" must be next, and, if it carries " seq=S", S must be
// last+1 (the first seq a stream sees sets the start). It returns the new
// last seq and the problems found: order is 1 if N was not next; lost is
// how many seqs were skipped; dup is 1 for a repeated or earlier seq.
func checkMessage(chunk []byte, next uint64, last uint64) (seq uint64, order, lost, dup uint64) {
	seq = last
	if !bytes.HasPrefix(chunk, msgPrefix) {
		return seq, 1, 0, 0
	}
	n, k := parseUint(chunk[len(msgPrefix):])
	if k == 0 || n != next {
		order = 1
	}
	i := lastIndex(chunk, seqMark)
	if i < 0 {
		return seq, order, 0, 0
	}
	s, k := parseUint(chunk[i+len(seqMark):])
	if k == 0 {
		return seq, order, 0, 0
	}
	seq, lost, dup = nextSeq(s, last)
	return seq, order, lost, dup
}

// nextSeq checks msggen's numbered seq s against the last one seen (0:
// none yet) and returns the new last seq and what was lost or repeated.
func nextSeq(s, last uint64) (seq, lost, dup uint64) {
	seq = last
	switch {
	case last == 0:
		seq = s
	case s == last+1:
		seq = s
	case s > last+1:
		lost = s - last - 1
		seq = s
	default:
		dup = 1
	}
	return seq, lost, dup
}

// numberedSeq returns the " seq=S" msggen -numbered appends to data, if any.
func numberedSeq(data []byte) (uint64, bool) {
	i := lastIndex(data, seqMark)
	if i < 0 {
		return 0, false
	}
	s, k := parseUint(data[i+len(seqMark):])
	return s, k > 0
}

// checkWelcome reports whether chunk is the welcome chunk for id.
func checkWelcome(chunk []byte, id []byte) bool {
	i := bytes.Index(chunk, welcome)
	if i < 0 {
		return false
	}
	rest := chunk[i+len(welcome):]
	return bytes.HasPrefix(rest, id) && bytes.HasPrefix(rest[len(id):], []byte("<br/>"))
}

// status503 starts the answer of a server busy for now.
var status503 = []byte("HTTP/1.1 503")

// statusProblem is the kind of an answer that is not the one wanted,
// whose byte at offset at of its status line starts rest: busy for a 503
// (a client tries again, as a real one would after Retry-After), status
// for anything else.
func statusProblem(at uint16, rest []byte) string {
	const code = len("HTTP/1.1 ")
	switch {
	case at == 0 && bytes.HasPrefix(rest, status503),
		int(at) == code && bytes.HasPrefix(rest, status503[code:]):
		return ErrBusy
	}
	return ErrStatus
}
