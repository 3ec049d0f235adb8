package flood

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Target is one client's URL, resolved.
type Target struct {
	Addr netip.AddrPort
	Host string // the Host header
	Path string // path and query
	ID   []byte // the last path segment: the id the welcome chunk names
}

// ErrNotLoopback refuses targets off this machine: floodtest is a load
// generator and only ever aims at loopback.
var ErrNotLoopback = errors.New("flood: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")

// ParseURL parses an http:// URL whose host is a loopback address.
func ParseURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("flood: url %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("flood: url %q: only http:// is supported", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return Target{}, fmt.Errorf("flood: url %q: host must be an IP address or localhost", raw)
	}
	if !ip.IsLoopback() {
		return Target{}, fmt.Errorf("%w: %q", ErrNotLoopback, raw)
	}
	port := uint16(80)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Target{}, fmt.Errorf("flood: url %q: bad port", raw)
		}
		port = uint16(n)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	seg := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	return Target{Addr: netip.AddrPortFrom(ip.Unmap(), port), Host: u.Host, Path: path, ID: []byte(seg)}, nil
}

// ReadURLs reads a URL file: one URL per line; blank lines and lines
// starting with # are skipped. Every URL is checked.
func ReadURLs(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if _, err := ParseURL(s); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadURLFile reads a URL file by name.
func ReadURLFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	urls, err := ReadURLs(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return urls, nil
}

// Plan is the whole run's clients: either explicit URLs, or Prefix with
// the ids First, First+1, ... First+N-1 appended.
type Plan struct {
	URLs   []string
	Prefix string
	First  int64
	N      int
	// Topics, if > 0 (with Prefix), makes the client of id join one
	// topic: ?topics=topic-K with K = (id-1) mod Topics + 1, the topics
	// msggen -topics publishes to.
	Topics int `json:",omitempty"`
}

// query is the client of id's query ("" without Topics).
func (p *Plan) query(id int64) string {
	if p.Topics <= 0 {
		return ""
	}
	k := (id-1)%int64(p.Topics) + 1
	if k <= 0 {
		k += int64(p.Topics)
	}
	return "?topics=topic-" + strconv.FormatInt(k, 10)
}

// Len is the number of clients.
func (p *Plan) Len() int {
	if p.URLs != nil {
		return len(p.URLs)
	}
	return p.N
}

// URL returns client i's URL.
func (p *Plan) URL(i int) string {
	if p.URLs != nil {
		return p.URLs[i]
	}
	id := p.First + int64(i)
	return p.Prefix + strconv.FormatInt(id, 10) + p.query(id)
}

// Share returns the Target function and count of worker w out of workers:
// clients w, w+workers, w+2*workers, ...
func (p *Plan) Share(w, workers int) (func(i int) (Target, error), int) {
	count := (p.Len() - w + workers - 1) / workers
	if count < 0 {
		count = 0
	}
	if p.URLs == nil {
		// Generated URLs differ only in the id: parse the prefix once.
		base, err := ParseURL(p.Prefix + "0")
		return func(i int) (Target, error) {
			if err != nil {
				return Target{}, err
			}
			n := p.First + int64(w+i*workers)
			id := strconv.FormatInt(n, 10)
			t := base
			t.Path = base.Path[:len(base.Path)-1] + id + p.query(n)
			t.ID = []byte(id)
			return t, nil
		}, count
	}
	return func(i int) (Target, error) { return ParseURL(p.URLs[w+i*workers]) }, count
}
