#!/usr/bin/env bash
# make bench-hooks: what a connect hook costs. N (20,000) chunked streams
# opened as fast as floodtest can (-rate RATE, 40,000/s) against `gateway
# -procs PROCS` (2), in turn: without a hook (requests read from the
# accepted socket, the default), without a hook through fasthttp
# (-no-direct, the path every hooked request takes), and with
# -connect-hook asking bench/hookrecv (a local backend that allows
# everyone); RUNS (2) times each. For each run: new streams/s
# (floodtest's, from its start to all streaming, and from the first
# stream to the last), the hook's answers, and the gateways' resident
# memory per stream (less what they held before) 2 s after every stream
# is held and again 20 s later, and their live heap per stream (after
# two GCs). Writes bench/results/<time>-hooks/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-20000}
RATE=${RATE:-40000}
PROCS=${PROCS:-2}
RUNS=${RUNS:-2}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-hooks
mkdir -p "$out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs
echo "bench-hooks: writing to $out"
"$BIN"/hookrecv -addr 127.0.0.1:9712 > "$out/hookrecv.log" 2>&1 &
pids+=($!)
"$BIN"/router -nats-addr 127.0.0.1:4556 -admin 127.0.0.1:8595 -log-level warn > "$out/router.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:8595/stats
wait_http http://127.0.0.1:9712/summary
base=("${pids[@]}")
allowed() { curl -s http://127.0.0.1:9712/summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["allowed"])'; }
heap() { # the gateways' live heap after two GCs (the second empties what sync.Pools kept), bytes
	local i s=0 v
	for i in $(seq 0 $((PROCS - 1))); do
		curl -s -o /dev/null "http://127.0.100.1:$((8640 + i))/debug/pprof/heap?gc=1"
		curl -s -o /dev/null "http://127.0.100.1:$((8640 + i))/debug/pprof/heap?gc=1"
		v=$(curl -s "http://127.0.100.1:$((8640 + i))/metrics" | awk '/^go_memstats_heap_alloc_bytes / { printf "%d", $2 }')
		s=$((s + ${v:-0}))
	done
	echo "$s"
}
echo "| run | path | new streams/s (start to all streaming) | new streams/s (first to last) | hook answers | gateway RSS per stream, +2 s | +22 s | live heap per stream |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|" >> "$out/table.md"
for run in $(seq "$RUNS"); do
	for with in direct fasthttp hook; do
		for _ in $(seq 90); do [ "$(timewait)" -lt 1000 ] && break; sleep 1; done
		flags=()
		[ "$with" = fasthttp ] && flags=(-no-direct)
		[ "$with" = hook ] && flags=(-connect-hook http://127.0.0.1:9712/allow)
		"$BIN"/gateway -procs "$PROCS" -addr 127.0.0.1:8796 -admin 127.0.100.1:8640 -nats nats://127.0.0.1:4556 -name hooks "${flags[@]}" -log-level warn > "$out/gateway-$run-$with.log" 2>&1 &
		gw=$!; pids+=("$gw")
		for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8595/stats | grep -c '"name": "hooks')" -ge "$PROCS" ] && break; sleep 0.1; done
		sleep 1
		before=$(rss "$gw"); h0=$(heap); a0=$(allowed)
		"$BIN"/floodtest -url http://127.0.0.1:8796/test/ -n "$N" -rate "$RATE/s" -duration 40s -every 1s > "$out/floodtest-$run-$with.out" 2>&1 &
		fl=$!
		for _ in $(seq 200); do grep -q "^floodtest: all" "$out/floodtest-$run-$with.out" && break; sleep 0.05; done
		sleep 2
		after=$(rss "$gw"); a1=$(allowed)
		sleep 20
		later=$(rss "$gw"); h1=$(heap)
		wait "$fl" || true
		line=$(grep "^floodtest: all" "$out/floodtest-$run-$with.out" || echo "")
		ramp=$(sed -n 's/.*streaming after \([0-9.]*\)s: \([0-9]*\) new streams\/s.*/\2/p' <<< "$line")
		win=$(sed -n 's/.*(\([0-9]*\)\/s from the first stream to the last, \([0-9.]*\)s).*/\1/p' <<< "$line")
		per=$(awk -v a="$before" -v b="$after" -v n="$N" 'BEGIN { printf "%.2f KB", (b - a) / n }')
		per2=$(awk -v a="$before" -v b="$later" -v n="$N" 'BEGIN { printf "%.2f KB", (b - a) / n }')
		live=$(awk -v a="$h0" -v b="$h1" -v n="$N" 'BEGIN { printf "%.2f KB", (b - a) / 1024 / n }')
		printf "| %d | %s | %s | %s | %d | %s | %s | %s |\n" "$run" "$with" "${ramp:-?}" "${win:-?}" $((a1 - a0)) "$per" "$per2" "$live" | tee -a "$out/table.md"
		kill -TERM "$gw"; wait "$gw" || true
		pids=("${base[@]}")
	done
done
echo >> "$out/table.md"
echo "Made by \`make bench-hooks\` (N=$N RATE=$RATE PROCS=$PROCS RUNS=$RUNS) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)." >> "$out/table.md"
