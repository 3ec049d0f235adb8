package flood

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cometgw/comet/internal/memstat"
)

// MemlogConfig configures the memory log.
type MemlogConfig struct {
	// Path is the log file, appended to (like `tee -a mochimem.log`).
	Path string
	// Every is the sampling period. Default 60s.
	Every time.Duration
	// GatewayPids are the processes whose memory is summed, with their
	// descendants (the processes of gateway -procs N); if empty,
	// every process named GatewayName is, looked up at each sample (so
	// restarted or added gateway processes count).
	GatewayPids []int
	// GatewayName defaults to "gateway".
	GatewayName string
	// RouterPids and RouterName are the same for the router's memory
	// (default: every process named "router"; none found logs 0).
	RouterPids []int
	RouterName string
	// Messages, if set, reads how many messages the clients have received
	// so far: logged, it gives the delivered rate over the run.
	Messages func() uint64
}

// Sample is one memory log line.
type Sample struct {
	Time     time.Time
	RSSKB    int64  // resident memory of the gateway processes, summed
	Conns    int    // established connections to the gateway's port(s)
	SockKB   int64  // the kernel's TCP socket memory
	RouterKB int64  // resident memory of the router processes
	Messages uint64 // messages the clients had received
}

// FormatSample formats s as the original's mochimem.log line, tab
// separated: `date`, unix time, resident KB, established connections,
// plus the kernel's TCP socket memory in KB, the router's resident KB and
// the messages received so far.
func FormatSample(s Sample) string {
	return fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d\t%d", s.Time.Format(time.UnixDate), s.Time.Unix(), s.RSSKB, s.Conns, s.SockKB, s.RouterKB, s.Messages)
}

// ParseSample parses a memory log line (the original's four columns, or
// ours with up to three more).
func ParseSample(line string) (Sample, error) {
	f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
	if len(f) < 4 {
		return Sample{}, fmt.Errorf("memlog: want at least 4 tab-separated fields, got %d", len(f))
	}
	unix, err := strconv.ParseInt(strings.TrimSpace(f[1]), 10, 64)
	if err != nil {
		return Sample{}, fmt.Errorf("memlog: unix time %q: %w", f[1], err)
	}
	s := Sample{Time: time.Unix(unix, 0)}
	if s.RSSKB, err = strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64); err != nil {
		return Sample{}, fmt.Errorf("memlog: memory %q: %w", f[2], err)
	}
	if s.Conns, err = strconv.Atoi(strings.TrimSpace(f[3])); err != nil {
		return Sample{}, fmt.Errorf("memlog: connections %q: %w", f[3], err)
	}
	if len(f) > 4 {
		if s.SockKB, err = strconv.ParseInt(strings.TrimSpace(f[4]), 10, 64); err != nil {
			return Sample{}, fmt.Errorf("memlog: socket memory %q: %w", f[4], err)
		}
	}
	if len(f) > 5 {
		if s.RouterKB, err = strconv.ParseInt(strings.TrimSpace(f[5]), 10, 64); err != nil {
			return Sample{}, fmt.Errorf("memlog: router memory %q: %w", f[5], err)
		}
	}
	if len(f) > 6 {
		if s.Messages, err = strconv.ParseUint(strings.TrimSpace(f[6]), 10, 64); err != nil {
			return Sample{}, fmt.Errorf("memlog: messages %q: %w", f[6], err)
		}
	}
	return s, nil
}

// ReadMemlog reads every sample of a memory log; blank lines are skipped.
func ReadMemlog(r io.Reader) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		s, err := ParseSample(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// TakeSample measures now.
func TakeSample(cfg MemlogConfig, addrs map[netip.AddrPort]bool) Sample {
	s := Sample{Time: time.Now()}
	s.RSSKB = residentKB(cfg.GatewayPids, cfg.GatewayName, "gateway")
	s.RouterKB = residentKB(cfg.RouterPids, cfg.RouterName, "router")
	s.Conns, _ = memstat.Established(addrs)
	s.SockKB, _ = memstat.TCPMemKB()
	if cfg.Messages != nil {
		s.Messages = cfg.Messages()
	}
	return s
}

// residentKB sums the memory of pids and their descendants, or of every
// process named name (def if empty).
func residentKB(pids []int, name, def string) int64 {
	ps := memstat.WithDescendants(pids)
	if len(ps) == 0 {
		if name == "" {
			name = def
		}
		ps = memstat.FindPids(name)
	}
	kb, _ := memstat.SumRSSKB(ps)
	return kb
}

// Memlog is an open memory log.
type Memlog struct {
	cfg   MemlogConfig
	addrs map[netip.AddrPort]bool
	f     *os.File
}

// OpenMemlog opens (appends to) cfg.Path; the gateway's port is taken from
// plan's URLs.
func OpenMemlog(cfg MemlogConfig, plan Plan) (*Memlog, error) {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	addrs := map[netip.AddrPort]bool{}
	for i := 0; i < plan.Len() && i < 1000; i++ {
		if t, err := ParseURL(plan.URL(i)); err == nil {
			addrs[t.Addr] = true
		}
	}
	f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("memlog: %w", err)
	}
	return &Memlog{cfg: cfg, addrs: addrs, f: f}, nil
}

// Sample appends one line now. Each line is written and synced on its
// own, so the log survives a crash and can be read while the run goes on.
func (m *Memlog) Sample() error {
	if _, err := fmt.Fprintln(m.f, FormatSample(TakeSample(m.cfg, m.addrs))); err != nil {
		return fmt.Errorf("memlog: %w", err)
	}
	return m.f.Sync()
}

// Run samples every cfg.Every until ctx ends, and once more then.
func (m *Memlog) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// The closing sample, taken as the run ends (clients may
			// already be closing).
			return m.Sample()
		case <-t.C:
			if err := m.Sample(); err != nil {
				return err
			}
		}
	}
}

// Close closes the file.
func (m *Memlog) Close() error { return m.f.Close() }
