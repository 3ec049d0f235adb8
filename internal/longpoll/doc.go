// Package longpoll is the long-poll kind of session, GET
// /poll/{id}?cursor=C&timeout=T: one request answered with every kept
// message after cursor C as JSON, at once if there are some, or as soon
// as one comes, or empty after T.
//
// Poll is its hub.Kind: it gathers the messages of its answer, writes the
// answer, and hands the connection back to the HTTP server for the
// client's next poll. answer.go has the JSON answer (and Answer, its
// decoded form, for clients).
package longpoll
