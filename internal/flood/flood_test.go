package flood

import (
	"bufio"
	"bytes"
	"errors"
	"image/png"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckMessage(t *testing.T) {
	tests := []struct {
		chunk              string
		next, last         uint64
		seq                uint64
		order, lost, dupes uint64
	}{
		{"Recvd msg #1: 'x'<br/>\n", 1, 0, 0, 0, 0, 0},
		{"Recvd msg #2: 'x'<br/>\n", 1, 0, 0, 1, 0, 0},
		{"Recvd msg #1: 'Fake message Num = 3 seq=7'<br/>\n", 1, 0, 7, 0, 0, 0},
		{"Recvd msg #2: 'Fake message Num = 3 seq=8'<br/>\n", 2, 7, 8, 0, 0, 0},
		{"Recvd msg #3: 'Fake message Num = 3 seq=11'<br/>\n", 3, 8, 11, 0, 2, 0},
		{"Recvd msg #4: 'Fake message Num = 3 seq=11'<br/>\n", 4, 11, 11, 0, 0, 1},
		{"Recvd msg #5: 'Fake message Num = 3 seq=4'<br/>\n", 5, 11, 11, 0, 0, 1},
		{"garbage", 1, 5, 5, 1, 0, 0},
		{"Recvd msg #x: 'seq='", 1, 5, 5, 1, 0, 0},
	}
	for _, tt := range tests {
		seq, order, lost, dup := checkMessage([]byte(tt.chunk), tt.next, tt.last)
		if seq != tt.seq || order != tt.order || lost != tt.lost || dup != tt.dupes {
			t.Errorf("checkMessage(%q, %d, %d) = %d %d %d %d; want %d %d %d %d", tt.chunk, tt.next, tt.last,
				seq, order, lost, dup, tt.seq, tt.order, tt.lost, tt.dupes)
		}
	}
	if !checkWelcome([]byte("Comet gateway welcomes you! Your Id: 12<br/>\n"), []byte("12")) ||
		checkWelcome([]byte("Comet gateway welcomes you! Your Id: 123<br/>\n"), []byte("12")) {
		t.Error("checkWelcome")
	}
}

func TestParseURL(t *testing.T) {
	good := map[string]Target{
		"http://127.0.0.1:8000/test/5": {Host: "127.0.0.1:8000", Path: "/test/5", ID: []byte("5")},
		"http://localhost:8000/test/7": {Host: "localhost:8000", Path: "/test/7", ID: []byte("7")},
		"http://127.9.8.7/poll/3?x=1":  {Host: "127.9.8.7", Path: "/poll/3?x=1", ID: []byte("3")},
		"http://[::1]:9000/test/-1":    {Host: "[::1]:9000", Path: "/test/-1", ID: []byte("-1")},
	}
	for raw, want := range good {
		got, err := ParseURL(raw)
		if err != nil || got.Host != want.Host || got.Path != want.Path || string(got.ID) != string(want.ID) {
			t.Errorf("ParseURL(%q) = %+v, %v", raw, got, err)
		}
	}
	for _, raw := range []string{"http://10.0.0.1:8000/x", "http://example.com/x", "https://127.0.0.1/x", "ftp://127.0.0.1/", "http://127.0.0.1:0/x", "http://127.0.0.1:99999/", "::"} {
		if _, err := ParseURL(raw); err == nil {
			t.Errorf("ParseURL(%q) accepted", raw)
		}
	}
	if _, err := ParseURL("http://192.168.1.1/test/1"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("private address: %v", err)
	}
}

func TestReadURLsAndPlan(t *testing.T) {
	urls, err := ReadURLs(strings.NewReader("# ids\nhttp://127.0.0.1:8000/test/1\n\nhttp://127.0.0.1:8000/test/2\n"))
	if err != nil || len(urls) != 2 {
		t.Fatalf("%v %v", urls, err)
	}
	if _, err := ReadURLs(strings.NewReader("http://127.0.0.1/test/1\nhttp://8.8.8.8/x\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v", err)
	}
	p := Plan{Prefix: "http://127.0.0.1:8000/test/", First: 10, N: 7}
	var got []string
	for w := 0; w < 3; w++ {
		target, n := p.Share(w, 3)
		for i := 0; i < n; i++ {
			tg, err := target(i)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(tg.ID))
		}
	}
	if strings.Join(got, ",") != "10,13,16,11,14,12,15" {
		t.Fatalf("shares = %v", got)
	}
	fp := Plan{URLs: urls}
	target, n := fp.Share(1, 2)
	if tg, _ := target(0); n != 1 || string(tg.ID) != "2" {
		t.Fatalf("file share %d %+v", n, tg)
	}
}

func TestMemlogLine(t *testing.T) {
	s := Sample{Time: time.Unix(1224518244, 0).UTC(), RSSKB: 40388, Conns: 1, SockKB: 12, RouterKB: 20480, Messages: 7}
	line := FormatSample(s)
	if line != "Mon Oct 20 15:57:24 UTC 2008\t1224518244\t40388\t1\t12\t20480\t7" {
		t.Fatalf("line = %q", line)
	}
	back, err := ParseSample(line)
	if err != nil || back.Time.Unix() != s.Time.Unix() {
		t.Fatalf("%+v %v", back, err)
	}
	if back.Time = s.Time; back != s {
		t.Fatalf("%+v, want %+v", back, s)
	}
	// Five-column lines of earlier studies parse too.
	if s, err := ParseSample("Mon Oct 20 15:57:24 UTC 2008\t1224518244\t40388\t1\t12"); err != nil || s.SockKB != 12 || s.RouterKB != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	// The original's own four-column lines parse too.
	orig := "Mon Oct 20 16:57:24 BST 2008\t1224518244\t40388\t1\n"
	if s, err := ParseSample(orig); err != nil || s.RSSKB != 40388 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"", "a\tb", "x\ty\t1\t2", "x\t1\tz\t2", "x\t1\t2\tw", "x\t1\t2\t3\tv", "x\t1\t2\t3\t4\tr", "x\t1\t2\t3\t4\t5\t-1"} {
		if _, err := ParseSample(bad); err == nil {
			t.Errorf("ParseSample(%q) accepted", bad)
		}
	}
	all, err := ReadMemlog(strings.NewReader(orig + "\n" + line + "\n"))
	if err != nil || len(all) != 2 {
		t.Fatalf("%v %v", all, err)
	}
}

func TestPlotPNGAndSVG(t *testing.T) {
	var samples []Sample
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 30; i++ {
		samples = append(samples, Sample{Time: t0.Add(time.Duration(i) * time.Minute), RSSKB: int64(40000 + 1000*min(i, 10)), Conns: min(i*1000, 10000), SockKB: int64(i * 100)})
	}
	var buf bytes.Buffer
	if err := Plot(samples, DefaultTitle(samples), "png", &buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
		t.Fatalf("image %v", b)
	}
	buf.Reset()
	if err := Plot(samples, "t", "svg", &buf); err != nil || !bytes.Contains(buf.Bytes(), []byte("<svg")) {
		t.Fatalf("svg: %v", err)
	}
	// With the router's memory and the messages received: a third panel,
	// messages per second.
	for i := range samples {
		samples[i].RouterKB, samples[i].Messages = 20000, uint64(i*i*6000)
	}
	buf.Reset()
	if err := Plot(samples, "t", "svg", &buf); err != nil || !bytes.Contains(buf.Bytes(), []byte("Received msgs/s")) ||
		!bytes.Contains(buf.Bytes(), []byte("router resident")) {
		t.Fatalf("svg with rates: %v", err)
	}
	if err := Plot(nil, "t", "png", &buf); err == nil {
		t.Fatal("empty log plotted")
	}
	for name, ok := range map[string]bool{"a.png": true, "a.SVG": true, "a.pdf": true, "a.jpg": false, "a": false} {
		if _, err := PlotFormat(name); (err == nil) != ok {
			t.Errorf("PlotFormat(%q): %v", name, err)
		}
	}
}

func TestLimitsAdvice(t *testing.T) {
	l := Limits{OpenFiles: 512, PortsLow: 50000, PortsHigh: 60000, SoMaxConn: 128, FileMax: 1000, NetdevBacklog: 1000}
	adv := strings.Join(l.Advice(100000, 5000), "\n")
	for _, want := range []string{"ulimit -n", "ip_local_port_range", "somaxconn", "fs.file-max", "netdev_max_backlog"} {
		if !strings.Contains(adv, want) {
			t.Errorf("advice lacks %s:\n%s", want, adv)
		}
	}
	if got := (Limits{OpenFiles: 20000, PortsLow: 10000, PortsHigh: 65000, SoMaxConn: 4096, FileMax: 1 << 30, NetdevBacklog: 65536}).Advice(100, 10); len(got) != 0 {
		t.Errorf("advice on a good machine: %v", got)
	}
}

func FuzzChunkChecks(f *testing.F) {
	f.Add([]byte("Recvd msg #1: 'Fake message Num = 3 seq=7'<br/>\n"), uint64(1), uint64(6))
	f.Fuzz(func(t *testing.T, chunk []byte, next, last uint64) {
		seq, order, lost, dup := checkMessage(chunk, next, last)
		if order > 1 || dup > 1 || (lost > 0 && dup > 0) {
			t.Fatalf("counts %d %d %d", order, lost, dup)
		}
		if dup == 0 && seq < last {
			t.Fatalf("seq went back %d -> %d", last, seq)
		}
		checkWelcome(chunk, []byte("1"))
		sc := bufio.NewScanner(bytes.NewReader(chunk))
		for sc.Scan() {
			ParseSample(sc.Text())
		}
	})
}

func TestStatsAddAndErrorText(t *testing.T) {
	a := Stats{Opened: 1, Active: 2, Closed: 3, Chunks: 4, Messages: 5, RSSKB: 6, BaseRSSKB: 1, Errors: map[string]uint64{"lost": 1}}
	b := Stats{Opened: 10, Active: 20, Closed: 30, Chunks: 40, Messages: 50, RSSKB: 60, BaseRSSKB: 10, Errors: map[string]uint64{"lost": 2, "reset": 1}}
	s := Stats{}.Add(a).Add(b)
	if s.Opened != 11 || s.Active != 22 || s.Closed != 33 || s.Chunks != 44 || s.Messages != 55 || s.RSSKB != 66 || s.BaseRSSKB != 11 {
		t.Fatalf("sum %+v", s)
	}
	if got := ErrorText(s.Errors); got != "lost 3, reset 1" {
		t.Fatalf("ErrorText = %q", got)
	}
	if got := ErrorText(map[string]uint64{"x": 0}); got != "none" {
		t.Fatalf("ErrorText = %q", got)
	}
}

func TestLatencyBuckets(t *testing.T) {
	for _, ns := range []int64{0, 1, 15, 16, 17, 100, 999, 1000, 123456789, 1 << 40, 1<<62 + 5} {
		i := latBucket(ns)
		if lo, hi := latLow(i), latLow(i+1); ns < lo || ns >= hi {
			t.Errorf("%d in bucket %d [%d, %d)", ns, i, lo, hi)
		}
	}
	var l latencies
	now := int64(10_000_000_000)
	for i := range 100 {
		l.record([]byte("Recvd msg #1: 'Fake seq=3 t="+strconv.FormatInt(now-int64(i+1)*1_000_000, 10)+"'"), now)
	}
	l.record([]byte("Broadcast #7 t="+strconv.FormatInt(now-50_000_000, 10)), now)
	l.record([]byte("Broadcast #7 t="+strconv.FormatInt(now-80_000_000, 10)), now)
	l.record([]byte("no stamp"), now)
	b, bc := l.snapshot()
	st := Stats{LatencyBuckets: b, Broadcasts: bc}.Add(Stats{Broadcasts: map[string]int64{"7": 70_000_000, "8": 5}})
	sum := st.Latency()
	if sum.Messages != 102 || sum.P50 < 40*time.Millisecond || sum.P50 > 60*time.Millisecond || sum.Max < 100*time.Millisecond {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Broadcasts != 2 || sum.BroadcastMax != 80*time.Millisecond {
		t.Fatalf("broadcasts %+v", sum)
	}
}

func TestCurve(t *testing.T) {
	c, err := ReadCurve(strings.NewReader("deliveries/s,p50 ms,p99 ms\n25000,2.1,15.7\n100000,6.8,46.1\n400000,31.5,167.8\n"))
	if err != nil || len(c.Rows) != 3 || c.X != "deliveries/s" || len(c.Series) != 2 || c.Rows[2][2] != 167.8 {
		t.Fatalf("%+v %v", c, err)
	}
	var buf bytes.Buffer
	if err := PlotCurve(c, "Chat latency", "ms", true, "svg", &buf); err != nil || !bytes.Contains(buf.Bytes(), []byte("p99 ms")) {
		t.Fatalf("svg: %v", err)
	}
	for _, bad := range []string{"", "x\n1\n", "x,y\n1,abc\n", "x,y\n"} {
		if _, err := ReadCurve(strings.NewReader(bad)); err == nil {
			t.Errorf("%q read", bad)
		}
	}
}
