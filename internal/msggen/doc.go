// Package msggen is the message spammer of the original
// (msggen:start(Num, Interval, Max) run by P senders in parallel), plus a
// rate mode and a flat-out mode. Senders publish batched send frames to the
// router as NATS requests and wait for each ack, so a router that falls
// behind slows them down instead of losing messages.
package msggen
