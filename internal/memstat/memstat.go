package memstat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RSSKB returns the resident set size of pid in KB (VmRSS), or an error if
// the process is gone.
func RSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusRSS(b)
}

func parseStatusRSS(b []byte) (int64, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(string(f[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("memstat: no VmRSS line")
}

// SelfRSSKB is this process's RSSKB, or 0 if it cannot be read.
func SelfRSSKB() int64 {
	v, _ := RSSKB(os.Getpid())
	return v
}

// FindPids returns the pids whose command name (/proc/PID/comm) is name.
func FindPids(name string) []int {
	if len(name) > 15 { // the kernel keeps 15 bytes of comm
		name = name[:15]
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WithDescendants returns pids and every process descended from them (a
// supervisor's children count with it).
func WithDescendants(pids []int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after
		// its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		pid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		if len(f) < 2 || err1 != nil {
			continue
		}
		if ppid, err := strconv.Atoi(string(f[1])); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	seen := map[int]bool{}
	var out []int
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, p := range pids {
		walk(p)
	}
	return out
}

// SumRSSKB sums RSSKB over pids, skipping processes that are gone, and
// returns the sum and how many were alive.
func SumRSSKB(pids []int) (kb int64, alive int) {
	for _, p := range pids {
		if v, err := RSSKB(p); err == nil {
			kb += v
			alive++
		}
	}
	return kb, alive
}

// TCPMemKB returns the kernel's memory for TCP sockets in KB: the "mem"
// pages of /proc/net/sockstat's TCP line.
func TCPMemKB() (int64, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	return parseSockstat(b, os.Getpagesize())
}

func parseSockstat(b []byte, pageSize int) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				pages, err := strconv.ParseInt(f[i+1], 10, 64)
				if err != nil {
					return 0, err
				}
				return pages * int64(pageSize) / 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("memstat: no TCP mem in sockstat")
}

// Established counts ESTABLISHED TCP connections whose local address is
// one of addrs (the server side of clients' connections), like the
// original's `netstat -n | awk '/ESTABLISHED/ && $4=="127.0.0.1:8000"' | wc -l`.
func Established(addrs map[netip.AddrPort]bool) (int, error) {
	if n, err := establishedDiag(addrs); err == nil {
		return n, nil
	}
	return establishedProc(addrs)
}

// establishedProc is Established from /proc/net/tcp{,6}: the fallback
// where sock_diag is not available.
func establishedProc(addrs map[netip.AddrPort]bool) (int, error) {
	total := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		n, err := countEstablished(f, addrs)
		if err != nil && !os.IsNotExist(err) {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func countEstablished(path string, addrs map[netip.AddrPort]bool) (int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	return scanEstablished(bufio.NewReaderSize(fh, 64<<10), addrs)
}

// parseProcAddr parses /proc/net/tcp's "0100007F:1F40" (IPv4, each 32-bit
// word in host byte order, little-endian here) or its 32-hex-digit IPv6
// form.
func parseProcAddr(s []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(string(s[i+1:]), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	hex := s[:i]
	if len(hex) != 8 && len(hex) != 32 {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	for w := 0; w < len(hex)/8; w++ {
		v, err := strconv.ParseUint(string(hex[w*8:w*8+8]), 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		binary.LittleEndian.PutUint32(b[w*4:], uint32(v))
	}
	var a netip.Addr
	if len(hex) == 8 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}

func scanEstablished(r *bufio.Reader, addrs map[netip.AddrPort]bool) (int, error) {
	n := 0
	first := true
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && !first {
			// "  sl  local_address rem_address   st ..."
			f := bytes.Fields(line)
			if len(f) > 3 && string(f[3]) == "01" {
				if a, ok := parseProcAddr(f[1]); ok && addrs[a] {
					n++
				}
			}
		}
		first = false
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			return n, err
		}
	}
}
