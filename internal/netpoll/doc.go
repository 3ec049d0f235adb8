// Package netpoll is a minimal edge-triggered epoll set for raw socket file
// descriptors owned outside Go's runtime poller. One goroutine waits on the
// set for every registered descriptor, so an idle connection costs no
// goroutine and no buffer.
package netpoll
