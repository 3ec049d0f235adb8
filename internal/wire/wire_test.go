package wire

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

func decodeAll(t testing.TB, frame []byte) (Header, []Record, error) {
	t.Helper()
	var d Decoder
	h, err := d.Reset(frame)
	if err != nil {
		return h, nil, err
	}
	var out []Record
	var r Record
	for d.Next(&r) {
		c := r
		c.Msg = append([]byte(nil), r.Msg...)
		c.Conns = append([]uint64(nil), r.Conns...)
		c.Topic = append([]byte(nil), r.Topic...)
		c.Topics = nil
		for _, tp := range r.Topics {
			c.Topics = append(c.Topics, append([]byte(nil), tp...))
		}
		out = append(out, c)
	}
	return h, out, d.Err()
}

func TestRoundTrip(t *testing.T) {
	long := bytes.Repeat([]byte("x"), MaxMessage)
	tests := []struct {
		name    string
		frame   []byte
		header  Header
		records []Record
	}{
		{
			name: "up",
			frame: func() []byte {
				b := AppendUpHeader(nil, KindUp, "gw-1_a", 1<<40)
				b = AppendHello(b, 3)
				b = AppendLogin(b, 7, 123)
				b = AppendLogin(b, 7, -5)
				b = AppendLogin(b, 1<<63, 1<<62)
				b = AppendLogout(b, 7)
				b = AppendHeartbeat(b, 1)
				b = AppendResume(b, 8, -3, 1<<60, 129)
				b = AppendResume(b, 9, 4, 0, 0)
				return AppendBye(b)
			}(),
			header: Header{Kind: KindUp, Gateway: "gw-1_a", Instance: 1 << 40},
			records: []Record{
				{Op: OpHello, Count: 3},
				{Op: OpLogin, Conn: 7, ID: 123},
				{Op: OpLogin, Conn: 7, ID: -5},
				{Op: OpLogin, Conn: 1 << 63, ID: 1 << 62},
				{Op: OpLogout, Conn: 7},
				{Op: OpHeartbeat, Count: 1},
				{Op: OpResume, Conn: 8, ID: -3, Epoch: 1 << 60, Seq: 129},
				{Op: OpResume, Conn: 9, ID: 4},
				{Op: OpBye},
			},
		},
		{
			name: "send",
			frame: func() []byte {
				b := AppendHeader(nil, KindSend)
				b = AppendSend(b, 123, []byte("Hello World"))
				b = AppendSend(b, -9223372036854775808, nil)
				return AppendSend(b, 9223372036854775807, long)
			}(),
			header: Header{Kind: KindSend},
			records: []Record{
				{Op: OpSend, ID: 123, Msg: []byte("Hello World")},
				{Op: OpSend, ID: -9223372036854775808, Msg: []byte{}},
				{Op: OpSend, ID: 9223372036854775807, Msg: long},
			},
		},
		{
			name: "send with a frame-id",
			frame: func() []byte {
				b := AppendFrameID(AppendHeader(nil, KindSend), 1<<63, 300)
				return AppendSend(b, 5, []byte("x"))
			}(),
			header: Header{Kind: KindSend},
			records: []Record{
				{Op: OpFrameID, Sender: 1 << 63, Seq: 300},
				{Op: OpSend, ID: 5, Msg: []byte("x")},
			},
		},
		{
			name:    "retaken ack",
			frame:   AppendRetaken(AppendAck(AppendHeader(nil, KindAck), 4, 0, 0, Tally{})),
			header:  Header{Kind: KindAck},
			records: []Record{{Op: OpAck, Count: 4}, {Op: OpRetaken}},
		},
		{
			name:    "empty send is a ping",
			frame:   AppendHeader(nil, KindSend),
			header:  Header{Kind: KindSend},
			records: nil,
		},
		{
			name: "down",
			frame: func() []byte {
				b := AppendDownHeader(nil, 1<<33)
				b = AppendDeliver(b, []byte("<b>hi</b>"), []uint64{1, 2, 1 << 50})
				b = AppendResync(b)
				b = AppendDeliver(b, []byte("x"), nil)
				b = AppendResumed(b, 5, 1<<40, 3, 9, true)
				b = AppendResumed(b, 6, 7, 10, 9, false)
				return AppendDeliverAt(b, 1<<40, 3, []byte("y\nz"), []uint64{5})
			}(),
			header: Header{Kind: KindDown, Seq: 1 << 33},
			records: []Record{
				{Op: OpDeliver, Msg: []byte("<b>hi</b>"), Conns: []uint64{1, 2, 1 << 50}},
				{Op: OpResync, Conns: []uint64{}},
				{Op: OpDeliver, Msg: []byte("x"), Conns: []uint64{}},
				{Op: OpResumed, Conn: 5, Epoch: 1 << 40, Seq: 3, Head: 9, Missed: true},
				{Op: OpResumed, Conn: 6, Epoch: 7, Seq: 10, Head: 9},
				{Op: OpDeliverAt, Epoch: 1 << 40, Seq: 3, Msg: []byte("y\nz"), Conns: []uint64{5}},
			},
		},
		{
			name: "topics up",
			frame: func() []byte {
				b := AppendUpHeader(nil, KindUp, "gw", 1)
				b = AppendRewind(b, 7, 100)
				b = AppendLoginTopics(b, 7, 12, []string{"lobby", "a.b:c_d-9"}, true)
				b = AppendResumeTopics(b, 8, -3, 5, 6, nil, false)
				b = AppendJoin(b, 8, -3, true, []string{"news"}, true)
				return AppendPart(b, 8, []string{"news", "lobby"})
			}(),
			header: Header{Kind: KindUp, Gateway: "gw", Instance: 1},
			records: []Record{
				{Op: OpRewind, Conn: 7, Count: 100},
				{Op: OpLoginTopics, Conn: 7, ID: 12, Topics: [][]byte{[]byte("lobby"), []byte("a.b:c_d-9")}, Presence: true},
				{Op: OpResumeTopics, Conn: 8, ID: -3, Epoch: 5, Seq: 6},
				{Op: OpJoin, Conn: 8, ID: -3, Resumable: true, Topics: [][]byte{[]byte("news")}, Presence: true},
				{Op: OpPart, Conn: 8, Topics: [][]byte{[]byte("news"), []byte("lobby")}},
			},
		},
		{
			name: "publish and broadcast",
			frame: func() []byte {
				b := AppendHeader(nil, KindSend)
				b = AppendPublish(b, "lobby", []byte("hi all"))
				b = AppendPresence(b, "lobby", []byte(`{"presence":"lobby"}`))
				return AppendBroadcast(b, []byte("everyone"))
			}(),
			header: Header{Kind: KindSend},
			records: []Record{
				{Op: OpPublish, Topic: []byte("lobby"), Msg: []byte("hi all")},
				{Op: OpPresence, Topic: []byte("lobby"), Msg: []byte(`{"presence":"lobby"}`)},
				{Op: OpBroadcast, Msg: []byte("everyone")},
			},
		},
		{
			name: "fanout",
			frame: func() []byte {
				b := AppendDownHeader(nil, 3)
				b = AppendFanout(b, []byte("m"))
				b = AppendFanoutTo(b, 9, 4, []uint64{1, 2})
				b = AppendFanoutTo(b, 0, 0, []uint64{3})
				b = AppendKick(b, []uint64{4, 5})
				b = AppendFanoutPresence(b, []byte(`{"presence":"t"}`))
				b = AppendFanoutTo(b, 0, 0, []uint64{6})
				b = AppendResyncPart(b, 3)
				return AppendBroadcastAll(b, []byte("all"))
			}(),
			header: Header{Kind: KindDown, Seq: 3},
			records: []Record{
				{Op: OpFanout, Msg: []byte("m")},
				{Op: OpFanoutTo, Epoch: 9, Seq: 4, Conns: []uint64{1, 2}},
				{Op: OpFanoutTo, Conns: []uint64{3}},
				{Op: OpKick, Conns: []uint64{4, 5}},
				{Op: OpFanoutPresence, Msg: []byte(`{"presence":"t"}`)},
				{Op: OpFanoutTo, Conns: []uint64{6}},
				{Op: OpResyncPart, Count: 3},
				{Op: OpBroadcastAll, Msg: []byte("all")},
			},
		},
		{
			name: "ack",
			frame: AppendAck(AppendHeader(nil, KindAck), 10, 3, 2,
				Tally{Delivered: 20, Gone: 1, Slow: 2, Gateway: 1 << 40, Dup: 9, Late: 9}),
			header:  Header{Kind: KindAck},
			records: []Record{{Op: OpAck, Count: 10, Void: 3, Kept: 2, Tally: Tally{Delivered: 20, Gone: 1, Slow: 2, Gateway: 1 << 40}}},
		},
		{
			name: "done",
			frame: func() []byte {
				b := AppendUpHeader(nil, KindDone, "gw-2", 77)
				b = AppendDone(b, 5, Tally{Delivered: 300, Gone: 1, Slow: 2, Gateway: 9, Dup: 4, Late: 5})
				return AppendDone(b, 6, Tally{})
			}(),
			header: Header{Kind: KindDone, Gateway: "gw-2", Instance: 77},
			records: []Record{
				{Op: OpDone, Seq: 5, Tally: Tally{Delivered: 300, Gone: 1, Slow: 2, Dup: 4, Late: 5}},
				{Op: OpDone, Seq: 6},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, recs, err := decodeAll(t, tt.frame)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if h != tt.header {
				t.Fatalf("header = %+v, want %+v", h, tt.header)
			}
			if len(recs) != len(tt.records) {
				t.Fatalf("got %d records, want %d", len(recs), len(tt.records))
			}
			for i := range recs {
				got, want := recs[i], tt.records[i]
				if len(got.Conns) == 0 && len(want.Conns) == 0 {
					got.Conns, want.Conns = nil, nil
				}
				if len(got.Msg) == 0 && len(want.Msg) == 0 {
					got.Msg, want.Msg = nil, nil
				}
				if len(got.Topic) == 0 && len(want.Topic) == 0 {
					got.Topic, want.Topic = nil, nil
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("record %d = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	up := AppendUpHeader(nil, KindUp, "gw", 1)
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrShort},
		{"one byte", []byte{Version}, ErrShort},
		{"bad version", []byte{9, byte(KindSend)}, ErrVersion},
		{"bad kind", []byte{Version, 0}, ErrKind},
		{"kind too big", []byte{Version, 6}, ErrKind},
		{"down without seq", []byte{Version, byte(KindDown)}, ErrShort},
		{"done without name", []byte{Version, byte(KindDone)}, ErrShort},
		{"done truncated", AppendDone(AppendUpHeader(nil, KindDone, "gw", 1), 1, Tally{})[:9], ErrShort},
		{"done in a down frame", AppendDone(AppendDownHeader(nil, 1), 1, Tally{}), ErrOp},
		{"up without name", []byte{Version, byte(KindUp)}, ErrShort},
		{"up bad name", AppendUpHeader(nil, KindUp, "a.b", 1), ErrName},
		{"up empty name", AppendUpHeader(nil, KindUp, "", 1), ErrName},
		{"up long name", AppendUpHeader(nil, KindUp, string(bytes.Repeat([]byte("a"), 65)), 1), ErrTooLarge},
		{"up no instance", append([]byte{Version, byte(KindUp)}, 2, 'g', 'w'), ErrShort},
		{"v1 frame", []byte{1, byte(KindSend)}, ErrVersion},
		{"op of other kind", AppendSend(append([]byte(nil), up...), 1, nil), ErrOp},
		{"unknown op", append(append([]byte(nil), up...), 99), ErrOp},
		{"login truncated", append(append([]byte(nil), up...), byte(OpLogin), 5), ErrShort},
		{"overlong varint", append(append([]byte(nil), up...), byte(OpLogout), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrVarint},
		{"send msg past end", append(AppendHeader(nil, KindSend), byte(OpSend), 2, 10, 'a'), ErrShort},
		{"send msg too large", append(AppendHeader(nil, KindSend), byte(OpSend), 2, 0x81, 0x80, 0x40), ErrTooLarge},
		{"deliver conns past end", append(AppendDownHeader(nil, 0), byte(OpDeliver), 0, 200, 1, 2), ErrShort},
		{"deliver huge count", append(AppendDownHeader(nil, 0), byte(OpDeliver), 0, 0xff, 0xff, 0xff, 0xff, 0x0f), ErrShort},
		{"resume truncated", append(append([]byte(nil), up...), byte(OpResume), 1, 2, 3), ErrShort},
		{"resumed no flag", AppendResumed(AppendDownHeader(nil, 0), 1, 2, 3, 4, false)[:8], ErrShort},
		{"resumed bad flag", append(AppendResumed(AppendDownHeader(nil, 0), 1, 2, 3, 4, false)[:8], 2), ErrVarint},
		{"deliver-at conns past end", append(AppendDownHeader(nil, 0), byte(OpDeliverAt), 1, 1, 0, 3, 1), ErrShort},
		{"publish bad topic", AppendPublish(AppendHeader(nil, KindSend), "a b", nil), ErrTopic},
		{"publish empty topic", AppendPublish(AppendHeader(nil, KindSend), "", nil), ErrTopic},
		{"publish long topic", AppendPublish(AppendHeader(nil, KindSend), string(bytes.Repeat([]byte("t"), 129)), nil), ErrTooLarge},
		{"login-topics bad topic", AppendLoginTopics(append([]byte(nil), up...), 1, 2, []string{"ok", "no*"}, false), ErrTopic},
		{"login-topics too many", append(append([]byte(nil), up...), byte(OpLoginTopics), 1, 2, 0x82, 0x01), ErrTooLarge},
		{"resume-topics truncated", AppendResumeTopics(append([]byte(nil), up...), 1, 2, 3, 4, []string{"abc"}, false)[:12], ErrShort},
		{"fanout-to conns past end", append(AppendDownHeader(nil, 0), byte(OpFanoutTo), 0, 0, 9, 1), ErrShort},
		{"broadcast in a down frame", AppendBroadcast(AppendDownHeader(nil, 0), nil), ErrOp},
		{"ack truncated", append(AppendHeader(nil, KindAck), byte(OpAck), 1, 2, 3, 4, 5, 6), ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeAll(t, tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidTopic(t *testing.T) {
	for name, want := range map[string]bool{
		"lobby": true, "a.b:c_d-9": true, "Z": true,
		"": false, "a b": false, "a*": false, "a>": false, "a/b": false, "é": false, "a,b": false,
		string(bytes.Repeat([]byte("a"), 128)): true,
		string(bytes.Repeat([]byte("a"), 129)): false,
	} {
		if got := ValidTopic([]byte(name)); got != want {
			t.Errorf("ValidTopic(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidGatewayName(t *testing.T) {
	for name, want := range map[string]bool{
		"gw": true, "gw-host_1": true, "A9": true,
		"": false, "a.b": false, "a b": false, "a*": false, "a>": false, "é": false,
		string(bytes.Repeat([]byte("a"), 64)): true,
		string(bytes.Repeat([]byte("a"), 65)): false,
	} {
		if got := ValidGatewayName(name); got != want {
			t.Errorf("ValidGatewayName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzDecode checks that no input crashes the decoder, and that whatever
// decodes cleanly re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(AppendLogout(AppendLogin(AppendUpHeader(nil, KindUp, "gw", 3), 1, 2), 1))
	f.Add(AppendSend(AppendHeader(nil, KindSend), 5, []byte("hi")))
	f.Add(AppendResync(AppendDeliver(AppendDownHeader(nil, 7), []byte("m"), []uint64{1, 300})))
	f.Add(AppendAck(AppendHeader(nil, KindAck), 1, 2, 3, Tally{Delivered: 4, Gone: 5, Slow: 6, Gateway: 7}))
	f.Add(AppendDone(AppendUpHeader(nil, KindDone, "gw", 3), 9, Tally{Delivered: 1, Gone: 2, Slow: 3, Dup: 4, Late: 5}))
	f.Add(AppendResume(AppendUpHeader(nil, KindUp, "gw", 3), 1, 2, 3, 4))
	f.Add(AppendDeliverAt(AppendResumed(AppendDownHeader(nil, 1), 1, 2, 3, 4, true), 2, 3, []byte("m"), []uint64{1}))
	f.Add([]byte{Version, byte(KindDown), 0, byte(OpDeliver), 0, 0xff, 0xff, 0x03})
	f.Add(AppendResumeTopics(AppendLoginTopics(AppendUpHeader(nil, KindUp, "gw", 3), 1, 2, []string{"a", "b.c"}, true), 3, 4, 5, 6, []string{"x"}, false))
	f.Add(AppendBroadcast(AppendPublish(AppendHeader(nil, KindSend), "lobby", []byte("m")), []byte("b")))
	f.Add(AppendSend(AppendFrameID(AppendHeader(nil, KindSend), 7, 8), 5, []byte("hi")))
	f.Add(AppendRetaken(AppendAck(AppendHeader(nil, KindAck), 1, 0, 0, Tally{})))
	f.Add(AppendBroadcastAll(AppendFanoutTo(AppendFanout(AppendDownHeader(nil, 2), []byte("m")), 1, 2, []uint64{3}), []byte("b")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var d Decoder
		h, err := d.Reset(frame)
		if err != nil {
			return
		}
		var out []byte
		switch h.Kind {
		case KindUp, KindDone:
			out = AppendUpHeader(nil, h.Kind, h.Gateway, h.Instance)
		case KindDown:
			out = AppendDownHeader(nil, h.Seq)
		default:
			out = AppendHeader(nil, h.Kind)
		}
		var r Record
		for d.Next(&r) {
			switch r.Op {
			case OpHello:
				out = AppendHello(out, r.Count)
			case OpLogin:
				out = AppendLogin(out, r.Conn, r.ID)
			case OpLogout:
				out = AppendLogout(out, r.Conn)
			case OpHeartbeat:
				out = AppendHeartbeat(out, r.Count)
			case OpBye:
				out = AppendBye(out)
			case OpSend:
				out = AppendSend(out, r.ID, r.Msg)
			case OpDeliver:
				out = AppendDeliver(out, r.Msg, r.Conns)
			case OpResync:
				out = AppendResync(out)
			case OpResume:
				out = AppendResume(out, r.Conn, r.ID, r.Epoch, r.Seq)
			case OpResumed:
				out = AppendResumed(out, r.Conn, r.Epoch, r.Seq, r.Head, r.Missed)
			case OpDeliverAt:
				out = AppendDeliverAt(out, r.Epoch, r.Seq, r.Msg, r.Conns)
			case OpDone:
				out = AppendDone(out, r.Seq, r.Tally)
			case OpAck:
				out = AppendAck(out, r.Count, r.Void, r.Kept, r.Tally)
			case OpPubOutcomes:
				out = AppendPubOutcomes(out, r.Msg)
			case OpFrameID:
				out = AppendFrameID(out, r.Sender, r.Seq)
			case OpRetaken:
				out = AppendRetaken(out)
			case OpLoginTopics:
				out = AppendLoginTopics(out, r.Conn, r.ID, topicStrings(r.Topics), r.Presence)
			case OpResumeTopics:
				out = AppendResumeTopics(out, r.Conn, r.ID, r.Epoch, r.Seq, topicStrings(r.Topics), r.Presence)
			case OpJoin:
				out = AppendJoin(out, r.Conn, r.ID, r.Resumable, topicStrings(r.Topics), r.Presence)
			case OpPart:
				out = AppendPart(out, r.Conn, topicStrings(r.Topics))
			case OpPublish:
				out = AppendPublish(out, string(r.Topic), r.Msg)
			case OpPresence:
				out = AppendPresence(out, string(r.Topic), r.Msg)
			case OpBroadcast:
				out = AppendBroadcast(out, r.Msg)
			case OpFanout:
				out = AppendFanout(out, r.Msg)
			case OpFanoutPresence:
				out = AppendFanoutPresence(out, r.Msg)
			case OpFanoutTo:
				out = AppendFanoutTo(out, r.Epoch, r.Seq, r.Conns)
			case OpBroadcastAll:
				out = AppendBroadcastAll(out, r.Msg)
			case OpKick:
				out = AppendKick(out, r.Conns)
			case OpResyncPart:
				out = AppendResyncPart(out, int(r.Count))
			case OpServer:
				out = AppendServer(out, string(r.Server))
			case OpRewind:
				out = AppendRewind(out, r.Conn, r.Count)
			default:
				t.Fatalf("decoder returned op %v", r.Op)
			}
		}
		if d.Err() != nil {
			return
		}
		// Varints have several encodings (non-minimal forms), so compare
		// by decoding the re-encoding rather than the bytes.
		h2, recs2, err := decodeAll(t, out)
		if err != nil || h2 != h {
			t.Fatalf("re-encoded frame does not decode: %v %+v %+v", err, h2, h)
		}
		_, recs1, _ := decodeAll(t, frame)
		if len(recs1) != len(recs2) {
			t.Fatalf("record count changed: %d -> %d", len(recs1), len(recs2))
		}
		for i := range recs1 {
			a, b := recs1[i], recs2[i]
			if a.Epoch != b.Epoch || a.Seq != b.Seq || a.Head != b.Head || a.Missed != b.Missed {
				t.Fatalf("record %d position changed: %+v -> %+v", i, a, b)
			}
			if a.Count != b.Count || a.Void != b.Void || a.Kept != b.Kept || a.Tally != b.Tally || a.Sender != b.Sender {
				t.Fatalf("record %d counts changed: %+v -> %+v", i, a, b)
			}
			if recs1[i].Op != recs2[i].Op || recs1[i].ID != recs2[i].ID || recs1[i].Conn != recs2[i].Conn ||
				!bytes.Equal(recs1[i].Msg, recs2[i].Msg) || !reflect.DeepEqual(recs1[i].Conns, recs2[i].Conns) ||
				!bytes.Equal(recs1[i].Topic, recs2[i].Topic) || !reflect.DeepEqual(recs1[i].Topics, recs2[i].Topics) || recs1[i].Presence != recs2[i].Presence {
				t.Fatalf("record %d changed: %+v -> %+v", i, recs1[i], recs2[i])
			}
		}
	})
}

func topicStrings(ts [][]byte) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// Ids split evenly into partitions, negative ones too, and every part
// of a partitioned subject names the count and the part.
func TestPartition(t *testing.T) {
	if Partition(7, 1) != 0 || Partition(-7, 0) != 0 {
		t.Fatal("one partition is partition 0")
	}
	counts := make([]int, 3)
	for id := int64(-3000); id < 3000; id++ {
		p := Partition(id, 3)
		if p < 0 || p > 2 {
			t.Fatalf("partition %d of id %d", p, id)
		}
		counts[p]++
	}
	for _, c := range counts {
		if c != 2000 {
			t.Fatalf("uneven: %v", counts)
		}
	}
	if got := Partition(-1, 2); got != 1 { // 2^64-1 is odd
		t.Fatalf("partition of -1: %d", got)
	}
	if PartSubject(SubjectUp, 1, 0) != SubjectUp || PartSubject(SubjectSend, 2, 1) != "comet.v3.send.2.1" {
		t.Fatal(PartSubject(SubjectSend, 2, 1))
	}
}

// A partitioned router's answer carries the publishes' outcomes after
// the ack record; a plain ack has none; anything else after it is an
// error.
func TestParseRouteAck(t *testing.T) {
	ack := AppendAck(AppendHeader(nil, KindAck), 3, 1, 0, Tally{Delivered: 5})
	rec, outs, err := ParseRouteAck(AppendPubOutcomes(slices.Clone(ack), []byte{PubVoid, PubCopies}))
	if err != nil || rec.Count != 3 || rec.Tally.Delivered != 5 || !bytes.Equal(outs, []byte{PubVoid, PubCopies}) {
		t.Fatalf("%+v %v %v", rec, outs, err)
	}
	if _, outs, err := ParseRouteAck(ack); err != nil || outs != nil {
		t.Fatalf("plain ack: %v %v", outs, err)
	}
	if _, _, err := ParseRouteAck(append(slices.Clone(ack), byte(OpAck), 1, 1, 1, 1, 1, 1, 1)); err == nil {
		t.Fatal("two acks taken")
	}
}

// A watch list round-trips; anything malformed is an error, never a
// crash.
func TestWatchList(t *testing.T) {
	b := AppendWatch(nil, 1, []string{"lobby", "news:1"})
	p, ts, err := ParseWatch(b, 2)
	if err != nil || p != 1 || len(ts) != 2 || string(ts[0]) != "lobby" || string(ts[1]) != "news:1" {
		t.Fatalf("%d %q %v", p, ts, err)
	}
	if p, ts, err := ParseWatch(AppendWatch(nil, 0, nil), 2); err != nil || p != 0 || len(ts) != 0 {
		t.Fatalf("empty list: %d %q %v", p, ts, err)
	}
	for _, bad := range [][]byte{nil, {9, 0}, AppendWatch(nil, 2, nil), b[:len(b)-1], AppendWatch(nil, 0, []string{"a b"}), {Version, 0x80}} {
		if _, _, err := ParseWatch(bad, 2); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func FuzzParseWatch(f *testing.F) {
	f.Add(AppendWatch(nil, 1, []string{"lobby", "news"}), 2)
	f.Add([]byte{Version, 0, 3, 'a', 'b'}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 1 || n > MaxPartitions {
			return
		}
		p, ts, err := ParseWatch(b, n)
		if err != nil {
			return
		}
		var names []string
		for _, x := range ts {
			names = append(names, string(x))
		}
		if q, again, err := ParseWatch(AppendWatch(nil, p, names), n); err != nil || q != p || len(again) != len(ts) {
			t.Fatalf("round trip of %x: %d %q %v", b, q, again, err)
		}
	})
}

// TestFrameID: a frame-id is read only as a send frame's first record
// (anywhere else the frame is malformed), FrameID finds it without
// decoding the rest, and ParseAck tells a retaken ack.
func TestFrameID(t *testing.T) {
	f := AppendSend(AppendFrameID(AppendHeader(nil, KindSend), 99, 7), 1, []byte("m"))
	if s, n, ok := FrameID(f); !ok || s != 99 || n != 7 {
		t.Errorf("FrameID = %d, %d, %v; want 99, 7, true", s, n, ok)
	}
	for _, bad := range [][]byte{
		AppendSend(AppendHeader(nil, KindSend), 1, []byte("m")),               // none
		AppendFrameID(AppendHeader(nil, KindAck), 99, 7),                      // not a send frame
		append(AppendHeader(nil, KindSend), byte(OpFrameID), 0x80),            // truncated
		AppendFrameID(AppendDownHeader(nil, 1), 99, 7),                        // down
		{Version + 1, byte(KindSend), byte(OpFrameID), 1, 1},                  // another version
		AppendFrameID(AppendSend(AppendHeader(nil, KindSend), 1, nil), 99, 7), // not first
	} {
		if _, _, ok := FrameID(bad); ok {
			t.Errorf("FrameID(% x) found one", bad)
		}
	}
	late := AppendFrameID(AppendSend(AppendHeader(nil, KindSend), 1, nil), 99, 7)
	if _, _, err := decodeAll(t, late); !errors.Is(err, ErrOp) {
		t.Errorf("a frame-id after a send decoded: %v", err)
	}
	a, err := ParseAck(AppendRetaken(AppendAck(AppendHeader(nil, KindAck), 3, 0, 0, Tally{})))
	if err != nil || !a.Retaken || a.Count != 3 {
		t.Errorf("retaken ack: %+v %v", a, err)
	}
	if a, _ := ParseAck(AppendAck(AppendHeader(nil, KindAck), 3, 0, 0, Tally{})); a.Retaken {
		t.Error("a plain ack parsed as retaken")
	}
}
