package e2e

import (
	"debug/elf"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// repo is the repository's root (the e2e package runs in e2e/).
func repo(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireTool returns the path of tool, skipping the test without it
// unless CI requires the outside tools (COMET_REQUIRE_OUTSIDE=1).
func requireTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("COMET_REQUIRE_OUTSIDE") == "1" {
			t.Fatalf("%s is required (scripts/test-deps.sh installs it): %v", tool, err)
		}
		t.Skipf("no %s: %v", tool, err)
	}
	return p
}

// TestSystemdUnits: systemd-analyze verify finds nothing to say about
// the units (with the binaries where they are here).
func TestSystemdUnits(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	bin, dir := binDir(t), t.TempDir()
	var units []string
	for _, u := range []string{"comet-router.service", "comet-gateway@.service"} {
		b, err := os.ReadFile(filepath.Join(repo(t), "deploy/systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Replace(u, "@.", "@0.", 1) // an instance of the template
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != u {
			os.WriteFile(filepath.Join(dir, u), []byte(strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")), 0o644)
		}
		units = append(units, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDeployConfigs: the example configurations check.
func TestDeployConfigs(t *testing.T) {
	bin := binDir(t)
	for _, c := range []struct{ cmd, file string }{{"router", "router.toml"}, {"gateway", "gateway.toml"}} {
		out, err := runCmd(t, bin+"/"+c.cmd, "-config", filepath.Join(repo(t), "deploy/config", c.file), "-check-config")
		if err != nil || !strings.Contains(out, "# file ") {
			t.Fatalf("%s -check-config: %v\n%s", c.cmd, err, out)
		}
	}
}

// TestStaticBuild: the binaries build static the way the container's
// Dockerfile builds them (CGO_ENABLED=0): no interpreter, no shared
// library, so they run on distroless/static. (No container engine runs
// on these machines to build the image itself.)
func TestStaticBuild(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(repo(t), "deploy/container/Dockerfile"))
	if err != nil || !strings.Contains(string(df), "CGO_ENABLED=0 go build") || !strings.Contains(string(df), "nonroot") {
		t.Fatalf("Dockerfile: %v", err)
	}
	out := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/gateway")
	cmd.Dir, cmd.Env = repo(t), append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the CGO_ENABLED=0 gateway is dynamically linked (%v)", p.Type)
		}
	}
	if v, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(v), "gateway ") {
		t.Fatalf("static gateway version: %v %s", err, v)
	}
}

// TestAlertRules: the alert rules parse as promtool check rules parses
// them (deploy/check, its own module: rulefmt).
func TestAlertRules(t *testing.T) {
	cmd := exec.Command("go", "run", ".", "../prometheus/comet-alerts.yml")
	cmd.Dir = filepath.Join(repo(t), "deploy/check")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("rules check: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}

// metricNames are the comet_* (and process_*) metric names in text.
func metricNames(text string) []string {
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(comet_[a-z_]+|process_[a-z_]+)`).FindAllString(text, -1) {
		seen[m] = true
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// TestDashboardMetricsLive: every metric the Grafana dashboard and the
// alert rules name is on a live /metrics of a router (redundant and
// partitioned, so its lead and partition metrics are there) or a
// gateway.
func TestDashboardMetricsLive(t *testing.T) {
	bin := binDir(t)
	natsAddr, routerAdmin, gwAddr, gwAdmin := freePort(t), freePort(t), freePort(t), freePort(t)
	// With a webhook and a connect hook (nobody listens there), so that
	// their metrics are there too.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("a webhook secret for the metrics test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nobody := "http://" + freePort(t) + "/nobody"
	start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin, "-redundant", "-partitions", "2", "-partition", "0",
		"-webhook", nobody, "-webhook-secret-file", secret, "-log-level", "warn")
	start(t, bin+"/gateway", "-addr", gwAddr, "-admin", gwAdmin, "-nats", "nats://"+natsAddr, "-partitions", "2", "-connect-hook", nobody, "-log-level", "warn")
	waitFor(t, "the router leading", func() bool { code, _ := readyz(routerAdmin); return code == 200 })
	scrape := func(admin string) string {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var live string
	waitFor(t, "both scraped with their comet metrics", func() bool {
		live = scrape(routerAdmin) + scrape(gwAdmin)
		return strings.Contains(live, "comet_router_leader") && strings.Contains(live, "comet_gateway_ready")
	})
	have := map[string]bool{}
	for _, line := range strings.Split(live, "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			if i := strings.IndexByte(name, '{'); i >= 0 {
				name = name[:i]
			}
			have[name] = true
		}
	}
	dash, err := os.ReadFile(filepath.Join(repo(t), "deploy/grafana/comet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil || len(d.Panels) < 10 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(d.Panels))
	}
	var exprs strings.Builder
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs.WriteString(tg.Expr + "\n")
		}
	}
	rules, err := os.ReadFile(filepath.Join(repo(t), "deploy/prometheus/comet-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"dashboard": exprs.String(), "alert rules": string(rules)} {
		names := metricNames(text)
		for _, n := range names {
			if !have[n] {
				t.Errorf("the %s name %s, which no live /metrics has", what, n)
			}
		}
		t.Logf("%s: %d metrics, all live", what, len(names))
	}
}

// TestOperationsFlags: docs/OPERATIONS.md has every command's -h as the
// binaries print it (make docs writes it).
func TestOperationsFlags(t *testing.T) {
	bin := binDir(t)
	doc, err := os.ReadFile(filepath.Join(repo(t), "docs/OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"router", "gateway", "msggen", "floodtest"} {
		m := regexp.MustCompile("(?s)<!-- flags: " + cmd + " -->\n```\n(.*?)```\n<!-- end flags -->").FindSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/OPERATIONS.md has no flags block for %s", cmd)
		}
		out, _ := exec.Command(bin+"/"+cmd, "-h").CombinedOutput()
		if got := strings.TrimRight(string(out), "\n") + "\n"; got != string(m[1]) {
			t.Errorf("docs/OPERATIONS.md's %s flags differ from %s -h: run make docs", cmd, cmd)
		}
	}
}
