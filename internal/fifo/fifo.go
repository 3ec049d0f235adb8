// Package fifo holds the one piece of the queues read from a head index
// (retention's eviction queue, topichist's order of kept messages):
// giving back the room their popped front takes.
package fifo

// Compact returns q with its popped front (before head) gone, and its
// new head, once the front is more than 1024 entries and half of q;
// else q and head as they were. The popped entries are zeroed (their
// pointers let go), and a slice left with more than four times the room
// its entries need is copied to a smaller one.
func Compact[T any](q []T, head int) ([]T, int) {
	if head <= 1024 || head*2 < len(q) {
		return q, head
	}
	n := copy(q, q[head:])
	clear(q[n:])
	q = q[:n]
	if cap(q) > 4*n+4096 {
		q = append(make([]T, 0, 2*n+1024), q...)
	}
	return q, 0
}
