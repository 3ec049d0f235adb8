#!/usr/bin/env bash
# Where comet-auth's extra memory goes (docs/BENCHMARKS.md): one gateway,
# open and then with an HS256 secret, 20 warm-up clients, then N streams
# (default 10,000); prints resident memory before and after, resident
# memory by mapping (the executable, libc, anonymous) and the Go heap
# figures from /debug/pprof/heap?debug=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-10000}
tmp=$(mktemp -d)
. scripts/bench-lib.sh
trap 'stop_and_restore; rm -rf "$tmp"' EXIT
(umask 077; head -c 48 /dev/urandom | base64 -w0 > "$tmp/secret")
"$BIN/router" -nats-addr 127.0.0.1:4642 -admin 127.0.0.1:8679 -log-level warn > "$tmp/router.log" 2>&1 &
pids+=($!)
sleep 1
for mode in open auth; do
	gw=() fl=()
	[ $mode = auth ] && gw=(-auth-secret-file "$tmp/secret") fl=(-token-secret-file "$tmp/secret")
	"$BIN/gateway" -addr 127.0.0.1:8680 -admin 127.0.0.1:8681 -nats nats://127.0.0.1:4642 -name footprint -log-level warn "${gw[@]}" > "$tmp/gw.log" 2>&1 &
	g=$!
	sleep 1
	"$BIN/floodtest" -url http://127.0.0.1:8680/test/ -n 20 -rate 1000/s -duration 3s -every 30s "${fl[@]}" > /dev/null 2>&1
	sleep 2
	before=$(awk '/VmRSS/ {print $2}' /proc/$g/status)
	"$BIN/floodtest" -url http://127.0.0.1:8680/test/ -n "$N" -rate 5000/s -duration $((N / 5000 + 20))s -every 60s "${fl[@]}" > "$tmp/flood.$mode" 2>&1 &
	f=$!
	sleep $((N / 5000 + 10))
	echo "== $mode: resident $before KB before, $(awk '/VmRSS/ {print $2}' /proc/$g/status) KB with $N streams; by mapping (KB):"
	awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6; if (name == "") name = "[anonymous]"} /^Rss:/ {rss[name] += $2} END {for (n in rss) if (rss[n] > 100) printf "   %s %d\n", n, rss[n]}' /proc/$g/smaps | sort
	curl -s "http://127.0.0.1:8681/debug/pprof/heap?debug=1" | grep -E "^# (HeapAlloc|HeapInuse|NumGC) "
	wait $f || true
	kill $g
	wait $g 2>/dev/null || true
done
