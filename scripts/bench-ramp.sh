#!/usr/bin/env bash
# make bench-ramp: the arrival rate. N streams (100,000) opened as fast as
# floodtest can (-rate RATE, 40,000/s, above what the machine takes) against
# `gateway -procs PROCS` (6), RUNS times (3). For each run: floodtest's ramp
# (from its start, and from the first stream to the last) and when the
# router had every stream logged in (polled every 50 ms from floodtest's
# start). Sets the sysctls a ramp needs and restores them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-100000}
RATE=${RATE:-40000}
PROCS=${PROCS:-6}
RUNS=${RUNS:-3}
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs

out=bench/results/ramp-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
"$BIN"/router -nats-addr 127.0.0.1:4722 -admin 127.0.0.1:8799 -log-level warn > "$out/router.log" 2>&1 &
router=$!; pids+=("$router")
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8799/stats && break; sleep 0.1; done
conns() { curl -sf -m 1 http://127.0.0.1:8799/stats | awk -F'[:,]' '/"conns"/ {gsub(/ /,"",$2); print $2; exit}'; }

echo "| run | streams | floodtest: all streaming after | new streams/s | first to last stream | new streams/s | router: all logged in after | logged in/s |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|" >> "$out/table.md"
# Connections closed by the previous run sit in TIME_WAIT for 60 s, holding
# the source ports floodtest uses again: wait until they are gone, or the
# next ramp pays for scanning past them.
for run in $(seq "$RUNS"); do
	for _ in $(seq 90); do [ "$(timewait)" -lt 1000 ] && break; sleep 1; done
	"$BIN"/gateway -procs "$PROCS" -addr 127.0.0.1:8790 -admin off -nats nats://127.0.0.1:4722 -name ramp -log-level warn > "$out/gateway-$run.log" 2>&1 &
	gw=$!; pids+=("$gw")
	for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8799/stats | grep -c '"name": "ramp-')" -ge "$PROCS" ] && break; sleep 0.1; done
	sleep 1
	t0=$(date +%s%N)
	"$BIN"/floodtest -url http://127.0.0.1:8790/test/ -n "$N" -rate "$RATE/s" -duration 20s -every 1s > "$out/floodtest-$run.out" 2>&1 &
	fl=$!
	t1=0
	for _ in $(seq 400); do
		if [ "$(conns)" = "$N" ]; then t1=$(date +%s%N); break; fi
		sleep 0.05
	done
	wait "$fl" || true
	line=$(grep "^floodtest: all" "$out/floodtest-$run.out" || echo "")
	ramp=$(sed -n 's/.*streaming after \([0-9.]*\)s: \([0-9]*\) new streams\/s.*/\1 \2/p' <<< "$line")
	win=$(sed -n 's/.*(\([0-9]*\)\/s from the first stream to the last, \([0-9.]*\)s).*/\2 \1/p' <<< "$line")
	logged=$(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { if (b > 0) printf "%.2f s | %.0f", (b-a)/1e9, n/((b-a)/1e9); else print "never | 0" }')
	printf "| %d | %d | %s s | %s | %s s | %s | %s |\n" "$run" "$N" ${ramp:-"? ?"} ${win:-"? ?"} "$logged" | tee -a "$out/table.md"
	kill -TERM "$gw"; wait "$gw" || true
	pids=("$router")
done
echo >> "$out/table.md"
echo "Made by \`make bench-ramp\` (N=$N RATE=$RATE PROCS=$PROCS RUNS=$RUNS) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)." >> "$out/table.md"
cat "$out/table.md"
