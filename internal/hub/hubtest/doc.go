// Package hubtest runs a hub.Hub alone for tests: sessions are socketpairs
// handed to Hub.OpenFD, the listener records every login and logout, and
// the test reads what each session wrote from the other end. No NATS, no
// HTTP server; a test runs in milliseconds.
package hubtest
