// Package router is the message router of the original: login(id, conn),
// logout(conn) and send(id, msg) over NATS, with the registry of every
// gateway's logins, an embedded nats-server by default, and an admin HTTP
// API.
//
// Beyond the original it keeps each resumable id's history (package
// retention) and positions, topics and presence (package topics),
// broadcasts, stored subscriptions (package subs), flow control with
// each gateway (a window of unconfirmed bytes, done records: flow.go),
// frames sent again (frames.go), redundant routers that share one lead
// and history log (lead.go) and partitions of the ids (partition.go).
// Files: router.go (New, Run, Close, the up frames from gateways),
// send.go (routing a send frame and its ack), admin.go (the HTTP API and
// metrics). docs/PROTOCOL.md is the wire contract it keeps.
package router
