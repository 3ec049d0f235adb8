// Package supervise runs N copies of a process as one unit: each is
// restarted if it dies, and all are stopped together.
package supervise
