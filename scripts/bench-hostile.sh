#!/usr/bin/env bash
# make bench-hostile: what hostile clients cost the good ones. One gateway
# process; CLIENTS normal clients (default 10,000: half SSE, half
# WebSocket, floodtest checking every numbered message) receive msggen's
# RATE numbered, stamped messages a second (default 1,000) to random ids
# among them for HOLD seconds (default 60). Two phases in one run, each on
# a fresh router and gateway: alone, then beside N (default 100) clients
# of each hostile kind (bench/hostile: frame flooder, fragment holder,
# ping flooder, slowloris, non-reader, oversized head). Reports the normal
# clients' delivery latency p50/p99, messages acked delivered and
# received, the gateway's CPU and peak resident memory, and each hostile
# kind's fate.
#
#   CLIENTS=10000 RATE=1000 HOLD=60 N=100 WRITE_DELAY= ./scripts/bench-hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
CLIENTS=${CLIENTS:-10000}
RATE=${RATE:-1000}
HOLD=${HOLD:-60}
N=${N:-100}
# WRITE_DELAY: the gateway's -write-delay ("" its default, adaptive up to
# 4 s; -1s never delays, so latency shows the loop, not the gathering).
WRITE_DELAY=${WRITE_DELAY:-}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-hostile
mkdir -p "$out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs

echo "bench-hostile: writing to $out"
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }

phase() { # name, hostile (0/1)
	local name=$1 hostile=$2 half=$(( CLIENTS / 2 ))
	"$BIN"/router -nats-addr 127.0.0.1:4762 -admin 127.0.0.1:8769 -log-level warn > "$out/$name.router.log" 2>&1 &
	local router=$!
	pids+=("$router")
	wait_http http://127.0.0.1:8769/stats
	# One process (no -procs): the one whose loop the attackers share.
	local wd=()
	[ -n "$WRITE_DELAY" ] && wd=(-write-delay "$WRITE_DELAY")
	"$BIN"/gateway "${wd[@]}" -addr 127.0.0.1:8760 -admin 127.0.0.1:8761 -nats nats://127.0.0.1:4762 -name hostile -log-level warn > "$out/$name.gateway.log" 2>&1 &
	local gw=$!
	pids+=("$gw")
	wait_http http://127.0.0.1:8761/stats
	local fdur=$(( HOLD + 120 ))
	"$BIN"/floodtest -url http://127.0.0.1:8760/sse/ -n "$half" -first 1 -rate 5000/s -duration "${fdur}s" -every 0 \
		-summary "$out/$name.sse.json" > "$out/$name.sse.out" 2>&1 &
	local fsse=$!
	"$BIN"/floodtest -url http://127.0.0.1:8760/ws/ -n "$(( CLIENTS - half ))" -first $(( half + 1 )) -rate 5000/s -duration "${fdur}s" -every 0 \
		-summary "$out/$name.ws.json" > "$out/$name.ws.out" 2>&1 &
	local fws=$!
	pids+=("$fsse" "$fws")
	for _ in $(seq 600); do
		[ "$(curl -sf http://127.0.0.1:8769/stats | awk -F'[:,]' '/"conns"/ {gsub(/ /,"",$2); print $2; exit}')" = "$CLIENTS" ] && break
		sleep 0.1
	done
	local hpid=""
	if [ "$hostile" = 1 ]; then
		"$BIN"/hostile -addr 127.0.0.1:8760 -n "$N" -duration "$(( HOLD + 10 ))s" -summary "$out/$name.hostile.json" > "$out/$name.hostile.out" 2>&1 &
		hpid=$!
		pids+=("$hpid")
		sleep 3
	fi
	local peak=0 r
	( while kill -0 "$gw" 2>/dev/null; do rss "$gw"; sleep 1; done ) > "$out/$name.rss" &
	local sampler=$!
	local t0 c0
	t0=$(date +%s.%N); c0=$(cpu "$gw")
	"$BIN"/msggen -nats nats://127.0.0.1:4762 -numbered -stamp -rate "$RATE" -n $(( RATE * HOLD / 4 )) -procs 4 -max "$CLIENTS" -every 0 \
		-summary "$out/$name.msggen.json" > "$out/$name.msggen.out" 2>&1 || true
	local t1 c1
	t1=$(date +%s.%N); c1=$(cpu "$gw")
	sleep 6 # the last deliveries out of the gateway's pending output
	curl -sf http://127.0.0.1:8761/stats > "$out/$name.gateway-stats.json" || true
	[ -n "$hpid" ] && wait "$hpid" || true
	kill -INT "$fsse" "$fws" 2>/dev/null || true
	wait "$fsse" "$fws" 2>/dev/null || true
	kill "$sampler" 2>/dev/null || true
	peak=$(sort -n "$out/$name.rss" | tail -1)
	echo "{\"cpu_s\": $(echo "$c1 - $c0" | bc), \"seconds\": $(echo "$t1 - $t0" | bc), \"peak_rss_kb\": ${peak:-0}}" > "$out/$name.gateway.json"
	kill -TERM "$gw" "$router" 2>/dev/null || true
	wait "$gw" "$router" 2>/dev/null || true
	sleep 2
}

phase alone 0
phase hostile 1

python3 - "$out" "$CLIENTS" "$RATE" "$HOLD" "$N" <<'PY' | tee "$out/table.md"
import json, sys
out, clients, rate, hold, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def load(p):
    try:
        return json.load(open(f"{out}/{p}"))
    except Exception:
        return {}
print("| run | acked delivered | received (SSE + WS) | lost | other errors | p50 | p99 | max | gateway CPU | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|---|")
p99s = {}
for name in ("alone", "hostile"):
    m, g = load(f"{name}.msggen.json"), load(f"{name}.gateway.json")
    got, lost, errs, lats = 0, 0, {}, []
    for kind in ("sse", "ws"):
        f = load(f"{name}.{kind}.json")
        st = f.get("stats", {})
        got += st.get("messages", 0)
        for k, v in (st.get("errors") or {}).items():
            if k == "lost":
                lost += v
            elif v:
                errs[f"{kind} {k}"] = v
        if f.get("latency"):
            lats.append(f["latency"])
    ms = lambda k: max(l.get(k, 0) for l in lats) / 1e6 if lats else float("nan")
    p99s[name] = ms("p99_ns")
    cpu = g.get("cpu_s", 0) / max(g.get("seconds", 1), 1e-9)
    print(f"| {name} | {m.get('delivered', '?')} | {got} | {lost} | {errs or 'none'} | {ms('p50_ns'):.1f} ms | {ms('p99_ns'):.1f} ms | {ms('max_ns'):.1f} ms | {cpu * 100:.0f}% of a core | {g.get('peak_rss_kb', 0) / 1024:.0f} MiB |")
print()
print(f"p99 beside the attackers / alone: {p99s['hostile'] / p99s['alone']:.2f}x (the larger of the SSE and WebSocket clients' p99 in each run)")
print()
h, st = load("hostile.hostile.json"), load("hostile.gateway-stats.json")
print("| hostile kind | clients | ended by the gateway (how: count) | p50 / max time to the end | still open at the end | could not connect |")
print("|---|---|---|---|---|---|")
for k, v in h.items():
    ended = ", ".join(f"{how}: {c}" for how, c in sorted(v["ended"].items())) or "none"
    print(f"| {k} | {v['clients']} | {ended} | {v['p50_ms'] / 1000:.1f} s / {v['max_ms'] / 1000:.1f} s | {v['open']} | {v['failed']} |")
print()
closed = (st.get("streams") or {}).get("closed")
if closed:
    print("Gateway sessions closed by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(closed.items()) if v))
PY
echo "Made by \`make bench-hostile\` (CLIENTS=$CLIENTS RATE=$RATE HOLD=$HOLD N=$N WRITE_DELAY=$WRITE_DELAY) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)." | tee -a "$out/table.md"
