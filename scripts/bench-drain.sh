#!/usr/bin/env bash
# make bench-drain: restart one of GATEWAYS (6) gateway processes that hold
# N (100,000) SSE streams in all (floodtest -resume: each stream comes back
# with its cursor), while msggen sends RATE (1,000) numbered messages/s to
# them; once with the drain (-drain-period PERIOD, 30s) and once without
# (-drain-period 0: every stream of the process ends at once). It prints,
# for each: the peak logins per second at the router after the SIGTERM
# (the reconnect storm), the even spread of the drained streams over the
# period, the time until every stream is back, and what floodtest counted
# lost or repeated and msggen unacknowledged.
#
# NEW=after (default) starts the restarted process once the old one has
# exited (systemctl restart); NEW=early starts it at the SIGTERM, beside
# the draining one (a rolling deploy that brings the new process up
# first). Six processes hold 19,900 each at most here (20,000 open
# files): after, the five others cannot hold all 100,000, and the last
# few hundred wait for the restarted one.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-100000}
GATEWAYS=${GATEWAYS:-6}
RATE=${RATE:-1000}
PERIOD=${PERIOD:-30s}
SECS=${SECS:-150}
MODES=${MODES:-"drain nodrain"}
NEW=${NEW:-after}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-drain
mkdir -p "$out"
echo "bench-drain: writing to $out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
stat() { curl -sf -m 2 http://127.0.0.1:7851/stats | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['$1'])"; }

echo "| mode | restarted process started | streams | drained (gateway 0) | drain period | even spread (/s) | peak logins/s | peak / even | all back after SIGTERM | messages | received | lost | repeated | not acked |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" >> "$out/table.md"
for mode in $MODES; do
	log=$out/$mode
	period=$PERIOD
	[ "$mode" = nodrain ] && period=0
	"$BIN"/router -nats-addr 127.0.0.1:7831 -admin 127.0.0.1:7851 -log-level warn > "$log.router.log" 2>&1 &
	pids+=($!)
	wait_http http://127.0.0.1:7851/stats 60
	gwpid=()
	gateway() { # i [name]: start gateway process i (a new name: a process beside the old one)
		"$BIN"/gateway -reuseport -addr 127.0.0.1:7860 -admin 127.0.0.1:$((7870 + $1)) -nats nats://127.0.0.1:7831 \
			-name "${2:-drain-$1}" -drain-period "$period" -log-level warn >> "$log.gateway$1.log" 2>&1 &
		gwpid[$1]=$!; pids+=($!)
	}
	for i in $(seq 0 $((GATEWAYS - 1))); do gateway "$i"; done
	for _ in $(seq 300); do [ "$(stat gateways)" = "$GATEWAYS" ] && break; sleep 0.2; done
	[ "$(stat gateways)" = "$GATEWAYS" ] || { echo "bench-drain: the gateways did not all start (see $log.gateway*.log)" >&2; exit 1; }
	"$BIN"/floodtest -url http://127.0.0.1:7860/sse/ -n "$N" -rate 5000/s -resume -duration 30m -every 5s -summary "$log.floodtest.json" > "$log.floodtest.out" 2>&1 &
	fl=$!; pids+=("$fl")
	for _ in $(seq 600); do grep -q "^Stats: {$N," "$log.floodtest.out" && break; sleep 1; done
	for _ in $(seq 300); do [ "$(stat conns)" = "$N" ] && break; sleep 0.2; done
	"$BIN"/msggen -nats nats://127.0.0.1:7831 -numbered -rate "$RATE" -n $((RATE * SECS / 2)) -max "$N" -procs 2 \
		-every 10s -summary "$log.msggen.json" > "$log.msggen.out" 2>&1 &
	mg=$!; pids+=("$mg")
	# The router's logins every 0.2 s (one kept-alive connection): every
	# stream that comes back logs in once.
	python3 -u -c '
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", 7851, timeout=2)
while True:
    try:
        c.request("GET", "/stats"); d = json.loads(c.getresponse().read())
        print("%.3f %d %d" % (time.time(), d["logins_total"], d["conns"]))
    except Exception:
        c = http.client.HTTPConnection("127.0.0.1", 7851, timeout=2)
    time.sleep(0.2)' > "$log.logins" 2>/dev/null &
	sampler=$!; pids+=("$sampler")
	sleep 15
	drained=$(curl -sf http://127.0.0.1:7870/stats | python3 -c "import json,sys; print(json.load(sys.stdin)['streams']['open'])")
	t0=$(date +%s.%N)
	old=${gwpid[0]}
	kill -TERM "$old"
	# The new process has its own name and admin port (the old one's is
	# still taken while it drains).
	[ "$NEW" = early ] && gateway "$GATEWAYS" drain-new
	wait "$old" || true
	t1=$(date +%s.%N)
	[ "$NEW" = early ] || gateway 0
	back=""
	for _ in $(seq 1200); do
		if [ "$(stat conns)" = "$N" ]; then back=$(date +%s.%N); break; fi
		sleep 0.2
	done
	wait "$mg" || true
	sleep 5
	kill -INT "$fl"; wait "$fl" || true
	kill "$sampler" 2>/dev/null || true
	# The most logins in any one second after the SIGTERM (the counter
	# read between samples by interpolation, windows 0.1 s apart).
	peak=$(python3 -c '
import sys
t0 = float(sys.argv[2])
pts = [tuple(map(float, l.split()[:2])) for l in open(sys.argv[1]) if len(l.split()) >= 2]
def at(t):
    for (a, x), (b, y) in zip(pts, pts[1:]):
        if a <= t <= b:
            return x + (y - x) * (t - a) / (b - a) if b > a else y
    return None
best, t = 0, t0
while t + 1 <= pts[-1][0]:
    x, y = at(t), at(t + 1)
    if x is not None and y is not None:
        best = max(best, y - x)
    t += 0.1
print(round(best))' "$log.logins" "$t0")
	secs=$(echo "$period" | sed 's/s$//'); [ "$secs" = 0 ] && secs=0
	# The drain's own pace: over the period, but at least -drain-min-rate
	# (200) a second.
	even=$(awk -v d="$drained" -v p="$secs" 'BEGIN { if (p > 0) { r = d / p; if (r < 200) r = 200; printf "%.0f", r } else print "-" }')
	ratio=$(awk -v m="$peak" -v e="$even" 'BEGIN { if (e != "-" && e > 0) printf "%.2f", m / e; else print "-" }')
	took=$(awk -v a="$t0" -v b="$back" 'BEGIN { if (b == "") print "not all back"; else printf "%.1f s", b - a }')
	sent=$(json "$log.msggen.json" 'd["sent"]')
	unacked=$(json "$log.msggen.json" 'd["unacknowledged"]')
	got=$(json "$log.floodtest.json" 'd["stats"]["messages"]')
	lost=$(json "$log.floodtest.json" '(d["stats"]["errors"] or {}).get("lost", 0)')
	dup=$(json "$log.floodtest.json" '(d["stats"]["errors"] or {}).get("duplicate", 0)')
	stopped=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }')
	echo "| $mode | $NEW | $N SSE on $GATEWAYS | $drained (exited after $stopped) | $period | $even | $peak | $ratio | $took | $sent | $got | $lost | $dup | $unacked |" >> "$out/table.md"
	stop_and_restore
	pids=()
	sleep 2
done
echo "command: NEW=$NEW N=$N GATEWAYS=$GATEWAYS RATE=$RATE PERIOD=$PERIOD SECS=$SECS ./scripts/bench-drain.sh ($(date -u +%F), $(nproc) cores)" >> "$out/table.md"
cat "$out/table.md"
