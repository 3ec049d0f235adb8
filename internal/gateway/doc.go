// Package gateway is the edge process: it accepts HTTP clients, hands
// each one to the hub as a session of its kind, logs the sessions in with
// the router over NATS, and feeds them the deliveries the router sends
// back.
//
//   - gateway.go: configuration, start, Run, the drain, readiness and stop;
//     admin.go: stats and metrics.
//   - kinds.go: the table of session kinds the hub serves.
//   - handler.go and handler_*.go: the HTTP routes, one file per kind of
//     client; pages.go the index, the demo page and the client library (/comet.js).
//   - listener.go and direct.go: the listening socket, and the direct
//     accept path that hands a plain stream request to the hub without
//     fasthttp.
//   - link.go: the gateway's side of the NATS protocol (docs/PROTOCOL.md).
package gateway
