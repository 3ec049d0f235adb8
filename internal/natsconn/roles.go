package natsconn

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/cometgw/comet/internal/subs"
	"github.com/cometgw/comet/internal/wire"
)

// A Role is one kind of process on the system's NATS and what it may
// publish and subscribe to: nothing else. docs/SECURITY.md explains
// them.
type Role struct {
	Name      string // its NKey seed is Name + ".nk"
	Publish   []string
	Subscribe []string
}

// Roles are the system's processes by what they do on NATS (subjects as
// in docs/PROTOCOL.md):
//   - router: takes up frames, sends and done frames; sends down frames
//     to gateways and acks to senders' inboxes; stores and follows the
//     stored subscriptions (JetStream; `router subscribe -file` runs
//     with the router's key).
//   - gateway: sends up frames and done frames; takes down frames; sends
//     its WebSocket clients' requests (comet.v3.client) and takes their
//     acks (comet.v3.reply.>): a gateway checks what each client may do.
//   - sender (msggen, an application): sends send frames, takes their
//     acks.
//
// So a sender cannot pose as a gateway (log ids in, read deliveries) or
// as a router (deliver to clients), and a gateway cannot send on the
// senders' subject.
func Roles() []Role {
	done := wire.DoneSubject(">")
	down := wire.DownSubject(">")
	reply := wire.ReplyPrefix + ">"
	// Partitioned routers' subjects: a subject and its parts (.n.k).
	parts := func(subject string) []string { return []string{subject, subject + ".>"} }
	up, send, history := parts(wire.SubjectUp), parts(wire.SubjectSend), parts(wire.SubjectHistory)
	route := append(parts(wire.SubjectRoute), wire.SubjectPresence+".>", wire.SubjectWatch+".>")
	return []Role{
		// and the stored subscriptions: their stream (subs.Subject) and
		// JetStream's API, whose answers come to its inbox; redundant
		// routers also write the history log and the lease, and a
		// standby hands HTTP sends to the leader (wire.SubjectSend);
		// partitioned routers hand records to each other
		// (wire.SubjectRoute), ask each other for presence
		// (wire.SubjectPresence) and say which topics they watch
		// (wire.SubjectWatch).
		{"router", slices.Concat([]string{down, "_INBOX.>", reply, subs.Subject, "$JS.API.>", wire.SubjectLeader}, history, send, route),
			slices.Concat([]string{wire.SubjectClient, done, "_INBOX.>"}, up, send, route)},
		{"gateway", slices.Concat([]string{done, wire.SubjectClient}, up), []string{down, reply}},
		{"sender", send, []string{"_INBOX.>"}},
	}
}

// RouteUser is the user other servers of a cluster log in as on its
// cluster port (the password is the route secret WriteRoles makes).
const RouteUser = "comet-route"

// WriteRoles makes an NKey for each role in dir (ROLE.nk, the seed, for
// the process's -nats-nkey) and a nats-server authorization block that
// lets each public key do what its role may and nothing else
// (nats-auth.conf: the router's -nats-config, or include it in an
// external nats-server's configuration). It does not overwrite files.
func WriteRoles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names := []string{filepath.Join(dir, "nats-auth.conf")}
	for _, r := range Roles() {
		names = append(names, filepath.Join(dir, r.Name+".nk"))
	}
	for _, n := range names {
		if _, err := os.Lstat(n); err == nil {
			return nil, fmt.Errorf("%s exists: not overwriting keys that may be in use", n)
		}
	}
	var conf strings.Builder
	conf.WriteString("# NATS users of the comet system, one NKey per role (router nats-auth).\n")
	conf.WriteString("# Each role may publish and subscribe to its subjects only (docs/SECURITY.md).\n")
	conf.WriteString("authorization {\n  users = [\n")
	var written []string
	for _, r := range Roles() {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return written, err
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		path := filepath.Join(dir, r.Name+".nk")
		if err := writeNew(path, append(seed, '\n')); err != nil {
			return written, err
		}
		written = append(written, path)
		fmt.Fprintf(&conf, "    # %s\n    { nkey: %s, permissions: { publish: { allow: %s }, subscribe: { allow: %s } } }\n",
			r.Name, pub, quoteList(r.Publish), quoteList(r.Subscribe))
	}
	conf.WriteString("  ]\n}\n")
	// Servers that join one another as a cluster (-nats-cluster) prove
	// themselves with this secret; a stranger's server that dials the
	// cluster port is refused and reads nothing.
	var secret [24]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return written, err
	}
	fmt.Fprintf(&conf, "# The cluster's route secret: other servers of the cluster give it (the\n# router adds it to its -nats-routes); keep this file private.\n")
	fmt.Fprintf(&conf, "cluster {\n  authorization { user: %s, password: %q }\n}\n", RouteUser, hex.EncodeToString(secret[:]))
	path := filepath.Join(dir, "nats-auth.conf")
	if err := writeNew(path, []byte(conf.String())); err != nil {
		return written, err
	}
	return append(written, path), nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = `"` + v + `"`
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
