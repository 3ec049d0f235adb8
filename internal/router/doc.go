// Package router is the message router of the original: login(id, conn),
// logout(conn) and send(id, msg) over NATS, with the registry of every
// gateway's logins, an embedded nats-server by default, and an admin HTTP
// API.
package router
