package subs_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometgw/comet/internal/natstest"
	"github.com/cometgw/comet/internal/subs"
)

func TestIndex(t *testing.T) {
	x := subs.NewIndex()
	b := []byte{subs.Version}
	for _, r := range []struct {
		op    byte
		id    int64
		topic string
	}{{1, 1, "a"}, {1, 1, "b"}, {1, 2, "a"}, {1, 1, "a"}, {2, 1, "b"}, {2, 3, "a"}, {2, 1, "zzz"}} {
		b = subs.AppendRecord(b, r.op, r.id, r.topic)
	}
	if err := x.ApplyBatch(b); err != nil {
		t.Fatal(err)
	}
	if st := x.Stats(); st != (subs.Stats{Subscriptions: 2, Topics: 1, IDs: 2}) {
		t.Fatalf("stats %+v", st)
	}
	var got []int64
	x.Subscribers([]byte("a"), func(name string, ids []int64) { got = slices.Sorted(slices.Values(ids)) })
	if !slices.Equal(got, []int64{1, 2}) || !slices.Equal(x.Topics(1, nil), []string{"a"}) {
		t.Fatalf("subscribers %v, topics of 1 %v", got, x.Topics(1, nil))
	}
	x.Compact()
	x.Apply(subs.OpUnsubscribe, 2, []byte("a"))
	x.Apply(subs.OpUnsubscribe, 1, []byte("a"))
	if st := x.Stats(); st != (subs.Stats{}) {
		t.Fatalf("stats after unsubscribing all %+v", st)
	}
}

// A partitioned router's index holds its own ids' subscriptions only.
func TestIndexOnly(t *testing.T) {
	x := subs.NewIndex()
	x.Only(func(id int64) bool { return id%2 == 0 })
	b := []byte{subs.Version}
	for id := int64(1); id <= 10; id++ {
		b = subs.AppendRecord(b, subs.OpSubscribe, id, "a")
	}
	if err := x.ApplyBatch(b); err != nil {
		t.Fatal(err)
	}
	var got []int64
	x.Subscribers([]byte("a"), func(_ string, ids []int64) { got = slices.Sorted(slices.Values(ids)) })
	if !slices.Equal(got, []int64{2, 4, 6, 8, 10}) || x.Stats().Subscriptions != 5 {
		t.Fatalf("subscribers %v", got)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := subs.AppendRecord([]byte{subs.Version}, subs.OpSubscribe, 5, "lobby")
	for name, b := range map[string][]byte{
		"empty":        nil,
		"version":      {9},
		"op":           append(append([]byte{}, good...), 7),
		"truncated":    good[:len(good)-2],
		"bad topic":    subs.AppendRecord([]byte{subs.Version}, subs.OpSubscribe, 5, "a b"),
		"empty topic":  subs.AppendRecord([]byte{subs.Version}, subs.OpSubscribe, 5, ""),
		"topic length": append([]byte{subs.Version, 1, 2}, 0xff, 0xff, 0x03),
	} {
		if err := subs.Decode(b, func(byte, int64, []byte) {}); !errors.Is(err, subs.ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(subs.AppendRecord(subs.AppendRecord([]byte{subs.Version}, 1, 5, "lobby"), 2, -9, "a.b:c"))
	f.Add([]byte{subs.Version, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []byte
		err := subs.Decode(b, func(op byte, id int64, topic []byte) {
			if len(recs) == 0 {
				recs = []byte{subs.Version}
			}
			recs = subs.AppendRecord(recs, op, id, string(topic))
		})
		if err != nil || recs == nil {
			return
		}
		// What decodes re-encodes to what decodes the same.
		var again []byte
		if err := subs.Decode(recs, func(op byte, id int64, topic []byte) {
			if len(again) == 0 {
				again = []byte{subs.Version}
			}
			again = subs.AppendRecord(again, op, id, string(topic))
		}); err != nil || !bytes.Equal(recs, again) {
			t.Fatalf("%x: re-encoded %x, again %x (%v)", b, recs, again, err)
		}
	})
}

func TestBatcher(t *testing.T) {
	var bt subs.Batcher
	var batches [][]byte
	topic := strings.Repeat("t", 100)
	for i := range 20000 {
		if full := bt.Add(subs.OpSubscribe, int64(i), topic); full != nil {
			batches = append(batches, full)
		}
	}
	batches = append(batches, bt.Flush())
	n := 0
	for _, b := range batches {
		if len(b) > subs.MaxBatch {
			t.Fatalf("batch of %d bytes", len(b))
		}
		if err := subs.Decode(b, func(byte, int64, []byte) { n++ }); err != nil {
			t.Fatal(err)
		}
	}
	if n != 20000 || len(batches) < 2 || bt.Flush() != nil {
		t.Fatalf("%d records in %d batches", n, len(batches))
	}
}

// The stream on a real embedded NATS: a load, a bad line, a follower
// that catches up, and a second follower (another router, or this one
// restarted) that gets the same index.
func TestLoadAndFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openStream(ctx, t)
	x := subs.NewIndex()
	f, err := st.Follow(ctx, x, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var csv strings.Builder
	csv.WriteString("# id,topic\n\n")
	for i := 1; i <= 50000; i++ {
		csv.WriteString(strings.Repeat(" ", i%2) + itoa(i) + ",room-" + itoa(i%7) + "\n")
	}
	n, err := subs.Load(ctx, st, strings.NewReader(csv.String()), nil)
	if err != nil || n != 50000 {
		t.Fatalf("load: %d %v", n, err)
	}
	n, err = subs.Load(ctx, st, strings.NewReader("1,ok\n2,also-ok\nthree,bad\n4,never\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 3: bad id") || n != 2 {
		t.Fatalf("bad line: %d %v", n, err)
	}
	n, err = subs.Load(ctx, st, strings.NewReader("1,ok\n2,bad topic\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `line 2: bad topic "bad topic"`) {
		t.Fatalf("bad topic: %d %v", n, err)
	}
	seq, err := st.Publish(ctx, subs.AppendRecord([]byte{subs.Version}, subs.OpUnsubscribe, 7, "room-0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	// 50,000, the two before the bad line and the one before the bad
	// topic (1,ok again: no change), less the unsubscribe.
	if got := x.Stats().Subscriptions; got != 50001 || !slices.Contains(x.Topics(2, nil), "also-ok") {
		t.Fatalf("%d subscriptions applied, want 50001; topics of 2: %v", got, x.Topics(2, nil))
	}
	y := subs.NewIndex()
	g, err := st.Follow(ctx, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	select {
	case <-g.Ready():
	case <-ctx.Done():
		t.Fatal("second follower not ready")
	}
	if x.Stats() != y.Stats() || !slices.Equal(x.Topics(8, nil), y.Topics(8, nil)) {
		t.Fatalf("followers differ: %+v %+v", x.Stats(), y.Stats())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// openStream starts a NATS server with JetStream and opens the
// subscriptions' stream on it.
func openStream(ctx context.Context, t *testing.T) *subs.Stream {
	t.Helper()
	st, err := subs.Open(ctx, natstest.Connect(t, natstest.Start(t, true)), 1)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCompact: a stream of subscribes and unsubscribes is rewritten as
// the subscriptions it holds, while another writer stores records: the
// snapshot is fenced after them, the batches before it are purged, a
// router that was following keeps the same subscriptions and one that
// starts afterwards reads the same from the snapshot alone.
func TestCompact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := openStream(ctx, t)
	store := func(op byte, from, to int) {
		t.Helper()
		var bt subs.Batcher
		for i := from; i <= to; i++ {
			if full := bt.Add(op, int64(i), "room-"+itoa(i%5)); full != nil {
				if _, err := st.Publish(ctx, full); err != nil {
					t.Fatal(err)
				}
			}
			if i%1000 == 0 { // many small batches, as single subscribes make
				if b := bt.Flush(); b != nil {
					if _, err := st.Publish(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if b := bt.Flush(); b != nil {
			if _, err := st.Publish(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	store(subs.OpSubscribe, 1, 40000)
	store(subs.OpUnsubscribe, 1, 30000)
	store(subs.OpSubscribe, 30001, 40000) // repeats: no change
	x := subs.NewIndex()
	f, err := st.Follow(ctx, x, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	<-f.Ready()
	// Another writer stores while the compaction runs: each of its
	// records lands before the snapshot (which then starts over) or
	// after it, never lost.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 40001; i <= 40200; i++ {
			if _, err := st.Publish(ctx, subs.AppendRecord([]byte{subs.Version}, subs.OpSubscribe, int64(i), "late")); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	c, err := st.Compact(ctx, nil)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if c.Purged == 0 || c.BytesAfter >= c.BytesBefore || c.Subscriptions < 10000 {
		t.Fatalf("compaction: %+v", c)
	}
	seq, err := st.Publish(ctx, subs.AppendRecord([]byte{subs.Version}, subs.OpUnsubscribe, 40001, "late"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	want := subs.Stats{Subscriptions: 10000 + 199, Topics: 6, IDs: 10000 + 199}
	if got := x.Stats(); got != want {
		t.Fatalf("the follower has %+v, want %+v (compaction %+v)", got, want, c)
	}
	y := subs.NewIndex()
	g, err := st.Follow(ctx, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	<-g.Ready()
	if got := y.Stats(); got != want || !slices.Equal(y.Topics(35000, nil), []string{"room-0"}) || len(y.Topics(3, nil)) != 0 {
		t.Fatalf("a follower after the compaction has %+v, want %+v", got, want)
	}
	t.Logf("compaction: %+v", c)
}

// Find names a NATS with no subscriptions' stream (no router ever ran on
// it) once its wait for a forming cluster is over, instead of waiting
// forever.
func TestFindWithoutStream(t *testing.T) {
	_, err := subs.Find(context.Background(), natstest.Connect(t, natstest.Start(t, true)))
	if err == nil || !strings.Contains(err.Error(), "start a router on it first") {
		t.Fatalf("find without a stream: %v", err)
	}
}
