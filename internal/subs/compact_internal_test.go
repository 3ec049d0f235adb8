package subs

import (
	"slices"
	"testing"
)

// A follower that meets a gap in the stream's sequences (a compaction
// purged batches it had not applied) starts its index over from the
// batch after the gap, the compaction's snapshot.
func TestFollowerStartsOverAfterAGap(t *testing.T) {
	x := NewIndex()
	var f Follower
	batch := func(op byte, id int64, topic string) []byte { return AppendRecord([]byte{Version}, op, id, topic) }
	f.apply(x, 1, batch(OpSubscribe, 1, "a"), nil)
	f.apply(x, 2, batch(OpSubscribe, 2, "a"), nil)
	// Purged: 3 unsubscribed 1; 4 and 5 are the snapshot.
	f.apply(x, 4, batch(OpSubscribe, 2, "a"), nil)
	f.apply(x, 5, batch(OpSubscribe, 3, "b"), nil)
	var a []int64
	x.Subscribers([]byte("a"), func(_ string, ids []int64) { a = slices.Sorted(slices.Values(ids)) })
	if !slices.Equal(a, []int64{2}) || x.Stats().Subscriptions != 2 || f.Restarts() != 1 || f.Applied() != 5 {
		t.Fatalf("after the gap: a %v, %+v, restarts %d, applied %d", a, x.Stats(), f.Restarts(), f.Applied())
	}
}
