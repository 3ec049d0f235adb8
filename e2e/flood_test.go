package e2e

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFloodtestWorkersMemlogPlotReport runs floodtest as a user would:
// more clients than one process may hold (-per-process 1000), so it starts
// worker processes on 127.1.x.y sources; msggen sends numbered messages;
// floodtest counts them all, logs memory, and its plot and report verbs
// turn that into a chart and a summary.
func TestFloodtestWorkersMemlogPlotReport(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	natsAddr, routerAdmin, gwAddr := freePort(t), freePort(t), freePort(t)
	start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin)
	gw := start(t, bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", "nats://"+natsAddr, "-name", "flood")
	routerConns := func() int {
		var s struct {
			Conns    int `json:"conns"`
			Gateways int `json:"gateways"`
		}
		getJSON("http://"+routerAdmin+"/stats", &s)
		return s.Conns + 1000000*s.Gateways
	}
	waitFor(t, "gateway registered", func() bool { return routerConns() >= 1000000 })

	const clients = 2500
	flood := start(t, bin+"/floodtest", "-url", "http://"+gwAddr+"/test/", "-n", fmt.Sprint(clients),
		"-per-process", "1000", "-rate", "5000/s", "-duration", "10s", "-every", "2s",
		"-memlog", dir+"/mochimem.log", "-memlog-every", "1s", "-gateway-pids", fmt.Sprint(gw.cmd.Process.Pid),
		"-summary", dir+"/floodtest.json")
	waitFor(t, "all clients logged in", func() bool { return routerConns() == 1000000+clients })

	out, err := runCmd(t, bin+"/msggen", "-nats", "nats://"+natsAddr, "-numbered", "-n", "500", "-procs", "2",
		"-max", fmt.Sprint(clients), "-interval", "0", "-summary", dir+"/msggen.json")
	if err != nil || !strings.Contains(out, "sent 1000 messages") {
		t.Fatalf("msggen: %v\n%s", err, out)
	}
	select {
	case <-flood.done:
	case <-time.After(30 * time.Second):
		t.Fatal("floodtest did not stop after -duration")
	}
	if flood.err != nil {
		t.Fatalf("floodtest: %v\n%s", flood.err, flood.out)
	}
	fout := flood.out.String()
	for _, want := range []string{"starting 3 worker processes", "Stats: {2500,0,", "1000 messages received, errors: none", "KB per client"} {
		if !strings.Contains(fout, want) {
			t.Fatalf("floodtest output lacks %q:\n%s", want, fout)
		}
	}
	var sum struct {
		Stats struct {
			Messages   uint64            `json:"messages"`
			Chunks     uint64            `json:"chunks"`
			PeakActive int64             `json:"peak_active"`
			Errors     map[string]uint64 `json:"errors"`
		} `json:"stats"`
	}
	b, _ := os.ReadFile(dir + "/floodtest.json")
	if err := json.Unmarshal(b, &sum); err != nil || sum.Stats.Messages != 1000 || sum.Stats.Chunks != clients+1000 || sum.Stats.PeakActive != clients {
		t.Fatalf("summary %s (%v)", b, err)
	}

	log, _ := os.ReadFile(dir + "/mochimem.log")
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) < 3 || !strings.Contains(string(log), fmt.Sprintf("\t%d\t", clients)) && !strings.Contains(string(log), fmt.Sprintf("\t%d\t", clients+1)) {
		t.Fatalf("memory log:\n%s", log)
	}
	out, err = runCmd(t, bin+"/floodtest", "plot", dir+"/mochimem.log", "-o", dir+"/mem.png")
	if err != nil {
		t.Fatalf("plot: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "mem.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("mem.png: %v", err)
	}
	out, err = runCmd(t, bin+"/floodtest", "report", "-dir", dir)
	if err != nil || !strings.Contains(out, "| lost | 0 ") || !strings.Contains(out, "| duplicated | 0 |") {
		t.Fatalf("report: %v\n%s", err, out)
	}
	out, err = runCmd(t, bin+"/floodtest", "-url", "http://10.1.2.3:8000/test/", "-n", "1")
	if err == nil || !strings.Contains(out, "only loopback") {
		t.Fatalf("non-loopback target: %v\n%s", err, out)
	}
}
