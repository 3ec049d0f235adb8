package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/flood"
)

// parseRate reads "2000", "2000/s" or "120/m".
func parseRate(s string) (float64, error) {
	unit := 1.0
	switch {
	case strings.HasSuffix(s, "/s"):
		s = strings.TrimSuffix(s, "/s")
	case strings.HasSuffix(s, "/m"):
		s, unit = strings.TrimSuffix(s, "/m"), 60
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("rate %q: want a number of connections per second like 2000/s", s)
	}
	return v / unit, nil
}

func parsePids(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}

func runFlood(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floodtest", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: floodtest -url PREFIX -n N [-first 1] [-rate R/s] [flags]
       floodtest -urls FILE [-wait 10ms] [flags]
       floodtest plot LOG -o OUT.png|.svg [-title T]
       floodtest report -dir DIR

Opens streaming clients (one URL per client, loopback only) at a set
arrival rate and holds them with one epoll set per process; more clients
than one process can hold are spread over worker processes and 127.1.x.y
source addresses. Every -every it prints Stats: {Active,Closed,Chunks} like
the original, with the arrival rate, messages/s and errors by kind. It
checks each stream's framing, that "Recvd msg #N" counts up by one, and,
for msggen -numbered messages, that no seq is lost or repeated.

The URL's path picks the client: /test/{id} a chunked stream, /sse/{id} an
EventSource stream (each event's id must be the next position), /poll/{id}
a long-poll client that polls again at once with its cursor on the same
connection (positions checked the same way). "missed" counts answers and
events that said messages were missed.

Flags:
`)
		fs.PrintDefaults()
	}
	urlFile := fs.String("urls", "", "file of URLs, one per line")
	wait := fs.Duration("wait", 0, "wait between two connections (the original's Wait); sets the rate to 1/wait")
	prefix := fs.String("url", "", "URL prefix; client i gets PREFIX + (first+i)")
	n := fs.Int("n", 0, "number of clients with -url")
	first := fs.Int64("first", 1, "first id with -url")
	wsPublish := fs.Duration("ws-publish", 0, "with /ws/ clients in topics (-topics): each publishes \"chat from ID t=NANOS\" into its topic every this long, each at its own 10 ms step of the period so that their publishes come evenly spread (the Haskell chat; 0: never)")
	topics := fs.Int("topics", 0, "with -url: client of id joins topic-K, K = (id-1) mod N + 1 (?topics=), the topics msggen -topics N publishes to")
	rateS := fs.String("rate", "", "arrival rate, e.g. 2000/s (default: as fast as the connect window allows)")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long, closing every connection")
	every := fs.Duration("every", 10*time.Second, "print a Stats line this often")
	memlog := fs.String("memlog", "", "append memory samples to this file (date, unix time, gateway RSS KB, connections, kernel TCP KB, router RSS KB, messages received)")
	memlogEvery := fs.Duration("memlog-every", time.Minute, "memory sampling period")
	gwPids := fs.String("gateway-pids", "", "gateway pids to measure, comma separated (default: every process named -gateway-name)")
	gwName := fs.String("gateway-name", "gateway", "process name of the gateway, for -memlog")
	rtPids := fs.String("router-pids", "", "router pids to measure for -memlog, comma separated (default: every process named router)")
	workers := fs.Int("workers", 0, "worker processes (0: as many as the clients need)")
	perProc := fs.Int("per-process", 0, "most clients in one process (0: from the open-files limit and port range)")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "time allowed for connect plus response head")
	resume := fs.Bool("resume", false, "SSE and long-poll clients whose stream the server or the network ended dial again after -retry with their cursor (Last-Event-ID), as an EventSource does, so a gateway restarted under them loses nothing unchecked")
	retry := fs.Duration("retry", time.Second, "dial again after this long a client whose connect failed, timed out or broke before its response head (the failure is still counted); 0: never")
	summary := fs.String("summary", "", "write the final stats as JSON to this file")
	var headers headerList
	fs.Var(&headers, "header", `extra request header "Name: value" (repeatable), e.g. "TE: chunked" for nchan`)
	pollTimeout := fs.Duration("poll-timeout", 30*time.Second, "the ?timeout= of long-poll clients (/poll/ URLs)")
	noCheck := fs.Bool("no-check", false, "count chunks without checking their content (servers other than the gateway)")
	tokenSecret := fs.String("token-secret-file", "", "send each client's request with a token for its id (HS256, this secret), for a gateway run with -auth-secret-file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg := flood.RunConfig{
		Duration: *duration, Every: *every, ConnectTimeout: *connectTimeout, Retry: *retry, Resume: *resume,
		Workers: *workers, PerProcess: *perProc, Out: os.Stdout, Headers: headers, NoCheck: *noCheck,
		PollTimeout: *pollTimeout, WSPublish: *wsPublish, TokenSecretFile: *tokenSecret,
		WorkerArgs: func(spec flood.WorkerSpec) []string {
			b, _ := json.Marshal(spec)
			return []string{"worker", string(b)}
		},
	}
	switch {
	case *urlFile != "" && *prefix != "":
		return cli.Usagef("-urls and -url exclude each other")
	case *urlFile != "":
		urls, err := flood.ReadURLFile(*urlFile)
		if err != nil {
			return err
		}
		cfg.Plan.URLs, cfg.URLFile = urls, *urlFile
	case *prefix != "":
		if *n <= 0 {
			return cli.Usagef("-url needs -n > 0")
		}
		if strings.ContainsAny(*prefix, "?#") {
			return cli.Usagef("-url prefix %q: the id is appended to the path; no query or fragment", *prefix)
		}
		if _, err := flood.ParseURL(*prefix + "1"); err != nil {
			return err
		}
		if *topics < 0 {
			return cli.Usagef("-topics %d: must be >= 0", *topics)
		}
		cfg.Plan = flood.Plan{Prefix: *prefix, First: *first, N: *n, Topics: *topics}
	default:
		fs.Usage()
		return cli.Usagef("give -url PREFIX -n N or -urls FILE")
	}
	if cfg.Plan.Len() == 0 {
		return cli.Usagef("no URLs")
	}
	if *rateS != "" {
		r, err := parseRate(*rateS)
		if err != nil {
			return cli.Usagef("%v", err)
		}
		cfg.Rate = r
	}
	if *wait > 0 {
		cfg.Rate = float64(time.Second) / float64(*wait)
	}
	if *memlog != "" {
		pids, err := parsePids(*gwPids)
		if err != nil {
			return cli.Usagef("-gateway-pids: %v", err)
		}
		rpids, err := parsePids(*rtPids)
		if err != nil {
			return cli.Usagef("-router-pids: %v", err)
		}
		cfg.Memlog = flood.MemlogConfig{Path: *memlog, Every: *memlogEvery, GatewayPids: pids, GatewayName: *gwName, RouterPids: rpids}
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		cfg.Live = os.Stderr
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Self = self

	start := time.Now()
	st, err := flood.Run(ctx, cfg)
	elapsed := time.Since(start)
	fmt.Printf("floodtest: done after %s: Stats: {%d,%d,%d}, %d clients opened, %d messages received, errors: %s\n",
		elapsed.Round(time.Second), st.Active, st.Closed, st.Chunks, st.Opened, st.Messages, flood.ErrorText(st.Errors))
	if st.RampSeconds > 0 {
		n := float64(cfg.Plan.Len())
		fmt.Printf("floodtest: all %d clients streaming after %.1fs: %.0f new streams/s", cfg.Plan.Len(), st.RampSeconds, n/st.RampSeconds)
		if st.WindowSeconds > 0 {
			fmt.Printf(" (%.0f/s from the first stream to the last, %.2fs)", (n-1)/st.WindowSeconds, st.WindowSeconds)
		}
		fmt.Println()
	}
	if peak := st.PeakActive; peak > 0 {
		fmt.Printf("floodtest: own memory %d KB with %d clients streaming (%d KB before any): %.2f KB per client, %.2f KB above the start\n",
			st.PeakRSSKB, peak, st.BaseRSSKB, float64(st.PeakRSSKB)/float64(peak), float64(st.PeakRSSKB-st.BaseRSSKB)/float64(peak))
	}
	lat := st.Latency()
	if lat != nil {
		fmt.Printf("floodtest: %d stamped messages took p50 %s, p99 %s, max %s", lat.Messages, lat.P50, lat.P99, lat.Max)
		if lat.Broadcasts > 0 {
			fmt.Printf("; %d broadcasts reached their last client after p50 %s, p99 %s, max %s",
				lat.Broadcasts, lat.BroadcastP50.Round(time.Microsecond), lat.BroadcastP99.Round(time.Microsecond), lat.BroadcastMax.Round(time.Microsecond))
		}
		fmt.Println()
	}
	if *summary != "" {
		b, _ := json.MarshalIndent(map[string]any{"stats": st, "elapsed_seconds": elapsed.Seconds(), "clients": cfg.Plan.Len(), "latency": lat}, "", "  ")
		if werr := os.WriteFile(*summary, append(b, '\n'), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func runWorker(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return cli.Usagef("worker takes one JSON spec (it is started by floodtest itself)")
	}
	var spec flood.WorkerSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("worker spec: %w", err)
	}
	return flood.RunWorker(ctx, spec, os.Stdout)
}

// headerList is a repeatable -header flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }

func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("header %q: want \"Name: value\" on one line", v)
	}
	*h = append(*h, v)
	return nil
}
