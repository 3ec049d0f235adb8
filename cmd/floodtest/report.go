package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/flood"
)

// runReport is `floodtest report -dir DIR`: the study's summary.md from
// DIR/mochimem.log, DIR/floodtest.json and DIR/msggen.json (and, for a
// mixed study, DIR/floodtest-sse.json, DIR/floodtest-poll.json and the
// router's DIR/router-stats.json).
func runReport(args []string) error {
	fs := flag.NewFlagSet("floodtest report", flag.ContinueOnError)
	dir := fs.String("dir", "", "the study directory")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return cli.Usagef("report takes -dir DIR")
	}
	md, err := report(*dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "summary.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

type floodSummary struct {
	Stats   flood.Stats `json:"stats"`
	Elapsed float64     `json:"elapsed_seconds"`
	Clients int         `json:"clients"`
}

type msggenSummary struct {
	Sent      uint64            `json:"sent"`
	Delivered uint64            `json:"delivered"`
	Void      uint64            `json:"void"`
	Kept      uint64            `json:"kept"`
	Dropped   map[string]uint64 `json:"dropped"`
	Errors    uint64            `json:"errors"`
	Unacked   uint64            `json:"unacknowledged"`
	Elapsed   float64           `json:"elapsed_seconds"`
	Rate      float64           `json:"rate"`
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func report(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, "mochimem.log"))
	if err != nil {
		return "", err
	}
	samples, err := flood.ReadMemlog(f)
	f.Close()
	if err != nil {
		return "", err
	}
	if len(samples) < 2 {
		return "", fmt.Errorf("%s: need at least 2 memory samples, have %d", dir, len(samples))
	}
	var fl floodSummary
	if err := readJSON(filepath.Join(dir, "floodtest.json"), &fl); err != nil {
		return "", err
	}
	// A mixed study's SSE and long-poll clients count with the streams.
	var kinds []string
	for _, k := range []string{"sse", "poll"} {
		var more floodSummary
		if err := readJSON(filepath.Join(dir, "floodtest-"+k+".json"), &more); err == nil {
			fl.Stats = fl.Stats.Add(more.Stats)
			fl.Stats.PeakActive += more.Stats.PeakActive // held at once: all ramp before messages start
			fl.Stats.PeakRSSKB += more.Stats.PeakRSSKB
			fl.Clients += more.Clients
			kinds = append(kinds, fmt.Sprintf("%d %s", more.Clients, k))
		}
	}
	var mg msggenSummary
	if err := readJSON(filepath.Join(dir, "msggen.json"), &mg); err != nil {
		return "", err
	}
	// Sends to a long-poll client's id between two of its polls reach no
	// gateway at once: the router keeps them and the next poll gets them.
	var rs struct {
		KeptOnly uint64 `json:"kept_only"`
	}
	readJSON(filepath.Join(dir, "router-stats.json"), &rs)

	// What the gateways lost with clients they closed (the first gateway
	// process's stats, as the study saved them).
	var gs struct {
		Streams struct {
			LostPending map[string]uint64 `json:"lost_pending"`
		} `json:"streams"`
	}
	readJSON(filepath.Join(dir, "gateway-stats.json"), &gs)

	base := samples[0]
	ramped := -1
	maxConns := 0
	for _, s := range samples {
		maxConns = max(maxConns, s.Conns)
	}
	// The peaks are taken while every client was connected (99% of the
	// most seen): a sample in the middle of the ramp divides memory by a
	// fraction of the clients.
	var peak, routerPeak flood.Sample
	for i, s := range samples {
		if maxConns == 0 || s.Conns < maxConns*99/100 {
			continue
		}
		if ramped < 0 {
			ramped = i
		}
		if s.RSSKB > peak.RSSKB {
			peak = s
		}
		if s.RouterKB > routerPeak.RouterKB {
			routerPeak = s
		}
	}
	last := samples[len(samples)-1]
	// The last sample may be taken as clients close: use the last one
	// with every client connected for "final".
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].Conns >= maxConns*99/100 {
			last = samples[i]
			break
		}
	}
	perConn := func(s flood.Sample) string {
		if s.Conns == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f KB (%.2f KB above the %d KB before any client)",
			float64(s.RSSKB)/float64(s.Conns), float64(s.RSSKB-base.RSSKB)/float64(s.Conns), base.RSSKB)
	}
	received := fl.Stats.Messages
	gapLost := fl.Stats.Errors[flood.ErrLost]
	expected := mg.Delivered + rs.KeptOnly
	var undelivered uint64
	if expected > received {
		undelivered = expected - received
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Memory study %s\n\n", filepath.Base(dir))
	if cmd, err := os.ReadFile(filepath.Join(dir, "command.txt")); err == nil {
		fmt.Fprintf(&b, "Made by:\n\n```\n%s```\n\n", cmd)
	}
	fmt.Fprintf(&b, "Chart: [mem.png](mem.png). Memory log: [mochimem.log](mochimem.log) (%d samples over %s).\n\n",
		len(samples), last.Time.Sub(base.Time).Round(time.Second))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| clients asked / most streaming at once | %d / %d |\n", fl.Clients, fl.Stats.PeakActive)
	if len(kinds) > 0 {
		fmt.Fprintf(&b, "| of them SSE and long-poll clients | %s |\n", strings.Join(kinds, ", "))
	}
	if fl.Stats.RampSeconds > 0 {
		fmt.Fprintf(&b, "| ramp | all streaming after %.1f s: %.0f new streams/s |\n", fl.Stats.RampSeconds, float64(fl.Clients)/fl.Stats.RampSeconds)
	}
	fmt.Fprintf(&b, "| gateway resident memory before clients | %d KB |\n", base.RSSKB)
	if ramped >= 0 {
		fmt.Fprintf(&b, "| peak gateway memory while every client was connected | %d KB with %d connections (minute %.1f): %s per connection |\n",
			peak.RSSKB, peak.Conns, peak.Time.Sub(base.Time).Minutes(), perConn(peak))
	}
	fmt.Fprintf(&b, "| final gateway memory | %d KB with %d connections: %s per connection |\n", last.RSSKB, last.Conns, perConn(last))
	if ramped >= 0 {
		r := samples[ramped]
		fmt.Fprintf(&b, "| memory growth after the ramp | %+d KB (%d KB at minute %.0f, %d KB at minute %.0f) |\n",
			last.RSSKB-r.RSSKB, r.RSSKB, r.Time.Sub(base.Time).Minutes(), last.RSSKB, last.Time.Sub(base.Time).Minutes())
	}
	fmt.Fprintf(&b, "| kernel TCP buffers (sockstat), final | %d KB |\n", last.SockKB)
	if base.RouterKB > 0 || last.RouterKB > 0 {
		fmt.Fprintf(&b, "| router resident memory (with its embedded NATS) | %d KB before clients, %d KB at its peak while every client was connected, %d KB final |\n",
			base.RouterKB, routerPeak.RouterKB, last.RouterKB)
	}
	if rate := receivedRate(samples); rate.peak > 0 {
		fmt.Fprintf(&b, "| messages received by the clients per second (memory log) | %.0f at the most, %.0f on average while messages flowed |\n", rate.peak, rate.mean)
	}
	if before, at := memUsedKB(filepath.Join(dir, "meminfo-before.txt")), memUsedKB(filepath.Join(dir, "meminfo-peak.txt")); before > 0 && at > 0 {
		fmt.Fprintf(&b, "| machine memory in use (MemTotal - MemAvailable, kernel included) | %.2f GiB before, %.2f GiB with every client connected: %.2f KB per client+server connection pair |\n",
			float64(before)/(1<<20), float64(at)/(1<<20), float64(at-before)/float64(max(int64(maxConns), 1)))
	}
	fmt.Fprintf(&b, "| messages sent (acknowledged by the router) | %d in %.0f s (%.0f/s), %d into the void, %d send errors (%d messages unacknowledged) |\n",
		mg.Sent, mg.Elapsed, mg.Rate, mg.Void, mg.Errors, mg.Unacked)
	fmt.Fprintf(&b, "| copies the acks said delivered / received by clients | %d / %d |\n", mg.Delivered, received)
	fmt.Fprintf(&b, "| copies the acks said dropped | %d (gone %d, slow %d, gateway %d) |\n",
		mg.Dropped["gone"]+mg.Dropped["slow"]+mg.Dropped["gateway"], mg.Dropped["gone"], mg.Dropped["slow"], mg.Dropped["gateway"])
	var lostPending uint64
	for _, n := range gs.Streams.LostPending {
		lostPending += n
	}
	fmt.Fprintf(&b, "| messages the gateway lost with clients it closed (pending output) | %d |\n", lostPending)
	if rs.KeptOnly > 0 {
		fmt.Fprintf(&b, "| kept by the router for long-polls between polls (received on the next poll) | %d |\n", rs.KeptOnly)
	}
	if m := fl.Stats.Errors[flood.ErrMissed]; len(kinds) > 0 {
		fmt.Fprintf(&b, "| answers and events saying messages were missed | %d |\n", m)
	}
	fmt.Fprintf(&b, "| lost | %d (%d seq gaps, %d delivered but not received) |\n", gapLost+undelivered, gapLost, undelivered)
	fmt.Fprintf(&b, "| duplicated | %d |\n", fl.Stats.Errors[flood.ErrDup])
	fmt.Fprintf(&b, "| out of order (Recvd msg #N) | %d |\n", fl.Stats.Errors[flood.ErrOrder])
	fmt.Fprintf(&b, "| connections closed by the server or network | %d (%s) |\n", fl.Stats.Closed, flood.ErrorText(fl.Stats.Errors))
	if fl.Stats.PeakActive > 0 {
		fmt.Fprintf(&b, "| floodtest's own memory | %d KB with %d clients: %.2f KB per client (%.2f KB above its %d KB before any client) |\n",
			fl.Stats.PeakRSSKB, fl.Stats.PeakActive, float64(fl.Stats.PeakRSSKB)/float64(fl.Stats.PeakActive),
			float64(fl.Stats.PeakRSSKB-fl.Stats.BaseRSSKB)/float64(fl.Stats.PeakActive), fl.Stats.BaseRSSKB)
	}
	return b.String(), nil
}

// memUsedKB reads MemTotal - MemAvailable from a copy of /proc/meminfo.
func memUsedKB(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var total, avail int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			fmt.Sscan(f[1], &total)
		case "MemAvailable:":
			fmt.Sscan(f[1], &avail)
		}
	}
	return total - avail
}

type rates struct{ peak, mean float64 }

// receivedRate is the messages the clients received per second, between
// samples: the most, and the mean over the samples in which some came.
func receivedRate(samples []flood.Sample) rates {
	var r rates
	var msgs uint64
	var secs float64
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		dt := b.Time.Sub(a.Time).Seconds()
		if dt <= 0 || b.Messages <= a.Messages {
			continue
		}
		r.peak = max(r.peak, float64(b.Messages-a.Messages)/dt)
		msgs += b.Messages - a.Messages
		secs += dt
	}
	if secs > 0 {
		r.mean = float64(msgs) / secs
	}
	return r
}
