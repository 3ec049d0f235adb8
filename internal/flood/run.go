//go:build linux

package flood

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/memstat"
)

// RunConfig configures a whole floodtest run.
type RunConfig struct {
	Plan Plan
	// URLFile is where Plan.URLs came from, if they came from a file
	// (workers read it themselves).
	URLFile string
	// Rate is the total arrival rate (connections/s); 0: as fast as the
	// connect window allows.
	Rate float64
	// Duration stops the run (and closes every client) after this long.
	Duration time.Duration
	// Every prints a Stats line this often.
	Every time.Duration
	// ConnectTimeout bounds connect plus response head per client.
	ConnectTimeout time.Duration
	// Retry and Resume: as in Config.
	Retry  time.Duration
	Resume bool
	// Headers and NoCheck: as in Config.
	Headers []string
	NoCheck bool
	// PollTimeout and TokenSecretFile: as in Config.
	PollTimeout     time.Duration
	WSPublish       time.Duration
	TokenSecretFile string
	// Workers: 0 picks the number of processes from PerProcess; 1 runs
	// every client in this process.
	Workers int
	// PerProcess bounds the clients of one process. 0: derived from the
	// open-files limit and the ephemeral port range.
	PerProcess int
	// Self is the floodtest binary workers are started from; WorkerArgs
	// turns a worker spec into its command line.
	Self       string
	WorkerArgs func(spec WorkerSpec) []string
	// Memlog, if Path is set, logs memory every Memlog.Every.
	Memlog MemlogConfig
	// Out receives the Stats lines and the summary; Live, if set, a
	// progress line rewritten in place while ramping.
	Out, Live io.Writer
}

// WorkerSpec is what a worker process is told (as JSON on its command line).
type WorkerSpec struct {
	Plan           Plan          `json:"plan"`
	URLFile        string        `json:"url_file,omitempty"`
	Worker         int           `json:"worker"`
	Workers        int           `json:"workers"`
	Rate           float64       `json:"rate"`
	Sources        []string      `json:"sources"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	Retry          time.Duration `json:"retry,omitempty"`
	Resume         bool          `json:"resume,omitempty"`
	Headers        []string      `json:"headers,omitempty"`
	NoCheck        bool          `json:"no_check,omitempty"`
	PollTimeout    time.Duration `json:"poll_timeout,omitempty"`
	WSPublish      time.Duration `json:"ws_publish,omitempty"`
	TokenSecret    string        `json:"token_secret_file,omitempty"`
}

// Limits describes this machine's relevant limits.
type Limits struct {
	OpenFiles int // RLIMIT_NOFILE soft limit (after raising it to the hard limit)
	PortsLow  int
	PortsHigh int
	SoMaxConn int
	FileMax   int64
	// NetdevBacklog is net.core.netdev_max_backlog: loopback packets
	// queue there, and a SYN burst beyond it is dropped.
	NetdevBacklog int
	PerProcess    int // clients one process can hold from one source address
}

func readSysctl(name string) string {
	b, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	return strings.TrimSpace(string(b))
}

// ReadLimits raises the open-files soft limit to the hard limit and reads
// the kernel limits floodtest depends on.
func ReadLimits() Limits {
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	l := Limits{OpenFiles: int(min(rl.Cur, 1<<30))}
	if f := strings.Fields(readSysctl("net.ipv4.ip_local_port_range")); len(f) == 2 {
		l.PortsLow, _ = strconv.Atoi(f[0])
		l.PortsHigh, _ = strconv.Atoi(f[1])
	}
	l.SoMaxConn, _ = strconv.Atoi(readSysctl("net.core.somaxconn"))
	l.FileMax, _ = strconv.ParseInt(readSysctl("fs.file-max"), 10, 64)
	l.NetdevBacklog, _ = strconv.Atoi(readSysctl("net.core.netdev_max_backlog"))
	ports := l.PortsHigh - l.PortsLow + 1
	l.PerProcess = l.OpenFiles - 256
	if ports > 0 {
		// At most a third of each of its source addresses' ports.
		l.PerProcess = min(l.PerProcess, sourcesPerProcess*ports/3)
	}
	l.PerProcess = max(l.PerProcess, 1)
	return l
}

// Advice returns the problems with l for n clients at rate, each with its
// fix.
func (l Limits) Advice(n int, rate float64) []string {
	var out []string
	if l.OpenFiles < 1024 {
		out = append(out, fmt.Sprintf("open-files limit is %d: run `ulimit -n 20000` (or more) first", l.OpenFiles))
	}
	if ports := l.PortsHigh - l.PortsLow + 1; ports < 20000 {
		out = append(out, fmt.Sprintf("only %d ephemeral ports: sysctl -w net.ipv4.ip_local_port_range=\"10000 65000\"", ports))
	}
	if l.SoMaxConn > 0 && l.SoMaxConn < 1024 && rate > 1000 {
		out = append(out, fmt.Sprintf("net.core.somaxconn is %d, low for %.0f connections/s: sysctl -w net.core.somaxconn=65535", l.SoMaxConn, rate))
	}
	if l.NetdevBacklog > 0 && l.NetdevBacklog < 16384 && rate > 1000 {
		out = append(out, fmt.Sprintf("net.core.netdev_max_backlog is %d: a fast ramp overflows it on loopback and SYNs are dropped and retried after 1 s, 3 s...: sysctl -w net.core.netdev_max_backlog=65536", l.NetdevBacklog))
	}
	if l.FileMax > 0 && l.FileMax < int64(2*n+10000) {
		out = append(out, fmt.Sprintf("fs.file-max is %d, below the %d descriptors client and server need: sysctl -w fs.file-max=%d", l.FileMax, 2*n, 4*n+100000))
	}
	return out
}

// sourcesPerProcess: one process's clients are spread over this many
// source addresses, so that each address has its ports at most a third
// used (see Config.Sources).
const sourcesPerProcess = 3

// sourcesFor is process w's source addresses: 127.1.0.1, 127.2.0.1 and
// 127.3.0.1 for the first, 127.1.0.2... for the second, and so on.
func sourcesFor(w int) []netip.Addr {
	w++
	out := make([]netip.Addr, sourcesPerProcess)
	for k := range out {
		out[k] = netip.AddrFrom4([4]byte{127, byte(1 + k), byte(w >> 8), byte(w)})
	}
	return out
}

// aggregator sums the processes' stats and keeps the peaks.
type aggregator struct {
	mu        sync.Mutex
	byProc    map[int]Stats
	addSelf   bool // workers run elsewhere: count this process's memory too
	peak      int64
	peakRSSKB int64
	start     time.Time
	n         int64         // clients planned
	rampTook  time.Duration // until all n were streaming; 0 if never
	base      int64         // this process's memory before any client (parent of workers)
}

func (a *aggregator) set(w int, s Stats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byProc[w] = s
	t := a.sumLocked()
	if a.rampTook == 0 && t.Active >= a.n && a.n > 0 {
		a.rampTook = time.Since(a.start)
	}
	if t.Active >= a.peak && t.Active > 0 {
		// The latest reading while holding the most clients: after the
		// ramp has settled.
		a.peak, a.peakRSSKB = t.Active, t.RSSKB
	}
}

func (a *aggregator) sumLocked() Stats {
	var t Stats
	for _, s := range a.byProc {
		t = t.Add(s)
	}
	if a.addSelf {
		t.RSSKB += memstat.SelfRSSKB()
	}
	return t
}

func (a *aggregator) total() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.sumLocked()
	t.PeakActive, t.PeakRSSKB = a.peak, a.peakRSSKB
	if a.rampTook > 0 && t.LastStream > 0 {
		// The moment the last client started streaming, not the
		// stats line (every 250 ms) that showed it.
		t.RampSeconds = time.Duration(t.LastStream - a.start.UnixNano()).Seconds()
		t.WindowSeconds = time.Duration(t.LastStream - t.FirstStream).Seconds()
	}
	if a.addSelf {
		t.BaseRSSKB += a.base // the parent's own, besides its workers'
	}
	return t
}

// Run runs the whole test: in this process, or in worker processes when
// the clients do not fit in one. It returns the final totals.
func Run(ctx context.Context, cfg RunConfig) (Stats, error) {
	n := cfg.Plan.Len()
	lim := ReadLimits()
	per := cfg.PerProcess
	if per <= 0 {
		per = lim.PerProcess
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = (n + per - 1) / per
		workers = max(workers, 1)
	}
	for _, a := range lim.Advice(n, cfg.Rate) {
		fmt.Fprintln(cfg.Out, "floodtest: warning:", a)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	agg := &aggregator{byProc: map[int]Stats{}, addSelf: workers > 1, n: int64(n)}
	errc := make(chan error, workers+2)
	// The memory log's first line is taken before any client connects.
	var mlDone chan struct{}
	if cfg.Memlog.Path != "" {
		cfg.Memlog.Messages = func() uint64 { return agg.total().Messages }
		ml, err := OpenMemlog(cfg.Memlog, cfg.Plan)
		if err != nil {
			return Stats{}, err
		}
		if err := ml.Sample(); err != nil {
			ml.Close()
			return Stats{}, err
		}
		mlDone = make(chan struct{})
		go func() {
			defer close(mlDone)
			defer ml.Close()
			if err := ml.Run(ctx); err != nil {
				errc <- err
			}
		}()
	}
	agg.base = memstat.SelfRSSKB()
	agg.start = time.Now()
	var wg sync.WaitGroup

	if workers == 1 {
		target, count := cfg.Plan.Share(0, 1)
		e, err := New(Config{Target: target, Count: count, Rate: cfg.Rate, ConnectTimeout: cfg.ConnectTimeout, Retry: cfg.Retry, Resume: cfg.Resume,
			Headers: cfg.Headers, NoCheck: cfg.NoCheck, Sources: sourcesFor(0), PollTimeout: cfg.PollTimeout, WSPublish: cfg.WSPublish, TokenSecretFile: cfg.TokenSecretFile})
		if err != nil {
			return Stats{}, err
		}
		fmt.Fprintf(cfg.Out, "floodtest: %d clients from this process, from source addresses %v, at %s\n", n, sourcesFor(0), rateText(cfg.Rate))
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				agg.set(0, e.Stats())
				select {
				case err := <-done:
					agg.set(0, e.Stats())
					if err != nil {
						errc <- err
					}
					return
				case <-t.C:
				}
			}
		}()
	} else {
		fmt.Fprintf(cfg.Out, "floodtest: %d clients do not fit in one process (%d open files, %d ephemeral ports per source address): "+
			"starting %d worker processes of up to %d clients, each from %d source addresses (%s to %s), at %s\n",
			n, lim.OpenFiles, lim.PortsHigh-lim.PortsLow+1, workers, (n+workers-1)/workers, sourcesPerProcess,
			sourcesFor(0)[0], sourcesFor(workers - 1)[sourcesPerProcess-1], rateText(cfg.Rate))
		for w := 0; w < workers; w++ {
			spec := WorkerSpec{Plan: cfg.Plan, URLFile: cfg.URLFile, Worker: w, Workers: workers, Rate: cfg.Rate / float64(workers),
				ConnectTimeout: cfg.ConnectTimeout, Retry: cfg.Retry, Resume: cfg.Resume, Headers: cfg.Headers, NoCheck: cfg.NoCheck, PollTimeout: cfg.PollTimeout, WSPublish: cfg.WSPublish, TokenSecret: cfg.TokenSecretFile}
			for _, a := range sourcesFor(w) {
				spec.Sources = append(spec.Sources, a.String())
			}
			if spec.URLFile != "" {
				spec.Plan.URLs = nil // each worker reads the file itself
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := runWorkerProcess(ctx, cfg, spec, agg); err != nil {
					errc <- err
				}
			}()
		}
	}

	report(ctx, cfg, n, agg)
	wg.Wait()
	if mlDone != nil {
		<-mlDone
	}
	final := agg.total()
	select {
	case err := <-errc:
		return final, err
	default:
	}
	return final, nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmt.Sprintf("%.0f connections/s", r)
}

// report prints the Stats lines until ctx ends.
func report(ctx context.Context, cfg RunConfig, n int, agg *aggregator) {
	every := cfg.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	stats := time.NewTicker(every)
	defer stats.Stop()
	live := time.NewTicker(time.Second)
	defer live.Stop()
	start := time.Now()
	last, lastAt := agg.total(), start
	ramped := false
	for {
		select {
		case <-ctx.Done():
			if cfg.Live != nil && !ramped {
				fmt.Fprintln(cfg.Live)
			}
			return
		case <-live.C:
			if cfg.Live == nil || ramped {
				continue
			}
			s := agg.total()
			fmt.Fprintf(cfg.Live, "\rramping: %d/%d streaming, %d connecting, %d closed (%.0f/s)   ",
				s.Active, n, s.Connecting, s.Closed, float64(s.Opened)/time.Since(start).Seconds())
			if s.Opened >= int64(n) && s.Connecting == 0 {
				ramped = true
				fmt.Fprintln(cfg.Live)
			}
		case now := <-stats.C:
			s := agg.total()
			dt := now.Sub(lastAt).Seconds()
			retried := ""
			if s.Retried > 0 {
				retried = fmt.Sprintf(" (%d dials were retries)", s.Retried)
			}
			if s.Resumed > 0 {
				retried += fmt.Sprintf(" (%d streams resumed with their cursor)", s.Resumed)
			}
			fmt.Fprintf(cfg.Out, "Stats: {%d,%d,%d}  arrivals %.0f/s, %.0f msgs/s, errors: %s%s\n",
				s.Active, s.Closed, s.Chunks, float64(s.Opened-last.Opened)/dt, float64(s.Messages-last.Messages)/dt, ErrorText(s.Errors), retried)
			last, lastAt = s, now
		}
	}
}

// ErrorText formats error counts as "kind n, kind n" or "none".
func ErrorText(m map[string]uint64) string {
	var keys []string
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// runWorkerProcess starts one worker and feeds its stats lines to agg.
func runWorkerProcess(ctx context.Context, cfg RunConfig, spec WorkerSpec, agg *aggregator) error {
	cmd := exec.Command(cfg.Self, cfg.WorkerArgs(spec)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("floodtest: start worker %d: %w", spec.Worker, err)
	}
	go func() {
		<-ctx.Done()
		cmd.Process.Signal(unix.SIGTERM)
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var s Stats
		if json.Unmarshal(sc.Bytes(), &s) == nil {
			agg.set(spec.Worker, s)
		}
	}
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("floodtest: worker %d: %w", spec.Worker, err)
	}
	return nil
}

// RunWorker is a worker process's main: it runs its share and writes its
// stats as a JSON line to out every 250ms, and once more at the end.
func RunWorker(ctx context.Context, spec WorkerSpec, out io.Writer) error {
	plan := spec.Plan
	if spec.URLFile != "" {
		urls, err := ReadURLFile(spec.URLFile)
		if err != nil {
			return err
		}
		plan.URLs = urls
	}
	var srcs []netip.Addr
	for _, s := range spec.Sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("worker source %q: %w", s, err)
		}
		srcs = append(srcs, a)
	}
	ReadLimits()
	target, count := plan.Share(spec.Worker, spec.Workers)
	e, err := New(Config{Target: target, Count: count, Rate: spec.Rate, Sources: srcs, ConnectTimeout: spec.ConnectTimeout, Retry: spec.Retry, Resume: spec.Resume,
		Headers: spec.Headers, NoCheck: spec.NoCheck, PollTimeout: spec.PollTimeout, WSPublish: spec.WSPublish, TokenSecretFile: spec.TokenSecret})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	enc := json.NewEncoder(out)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			enc.Encode(e.Stats())
			return err
		case <-t.C:
			enc.Encode(e.Stats())
		}
	}
}
