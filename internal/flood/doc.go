// Package flood is floodtest's engine: it opens many streaming clients at a
// set arrival rate from one process, holds them all with one epoll set and
// no goroutine or buffer per idle client, reads each chunked stream with a
// real framing parser and checks every message it receives.
package flood
