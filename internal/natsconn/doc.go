// Package natsconn is how every comet process connects to NATS and lets
// go of it: one set of reconnect options and log handlers, a connect that
// retries while the server starts, and a drain with a deadline.
package natsconn
