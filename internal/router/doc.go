// Package router is the message router of the original: login(id, conn),
// logout(conn) and send(id, msg) over NATS, with the registry of every
// gateway's logins, an embedded nats-server by default, and an admin HTTP
// API.
//
// Beyond the original it keeps each resumable id's history (package
// retention) and positions, topics and presence (package topics),
// broadcasts, stored subscriptions (package subs), flow control with each
// gateway, frames sent again, redundant routers that share one lead and
// history log, and partitions of the ids.
//
// Each job is its own type in its own file: router.go (Router: New, Run,
// Close, the subscriptions), config.go, gateways.go (the gateway table),
// members.go (the gateways' up frames and resumes), flow.go (windows,
// flights, acks), send.go (the entry points of a send) and fanout.go (one
// send frame's fan-out), frames.go (frames sent again), stored.go,
// presence.go, lead.go (the lease), histlog.go (the history log),
// partition.go, admin.go (the HTTP API and metrics).
// docs/ARCHITECTURE.md has the path of a message and of a resume through
// them and the lock order; docs/PROTOCOL.md is the wire contract.
package router
