#!/usr/bin/env bash
# make bench-chat: the Haskell chat on this machine. CLIENTS WebSocket
# clients (default 10,000) in one room (topic-1), each publishing a
# stamped message into it every PERIOD (default 10s, spread over the
# clients: CLIENTS/PERIOD publishes a second, each to every client), for
# HOLD seconds (default 60) once all are in. floodtest checks every frame
# and reports what the publishes took from the publisher's clock to each
# receiver (p50, p99), how many each client got, and the gateway's count
# of publishes sent, acked and failed; the daemons' stage histograms say
# where the time went (router: routing a frame, a down frame's flight;
# gateway: waiting for the writers, a batch in a writer's queue, a
# writer's round), counted over the hold.
#
# SWEEP="500 1000 2000 3000" runs one room of each size, one after the
# other with a fresh router and gateway each, and draws p50 and p99
# against the deliveries a second asked (CLIENTS x CLIENTS / PERIOD):
# latency.svg beside the table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
CLIENTS=${CLIENTS:-10000}
SWEEP=${SWEEP:-$CLIENTS}
PERIOD=${PERIOD:-10s}
HOLD=${HOLD:-60}
RAMP=${RAMP:-5000}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-chat
mkdir -p "$out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
setsys net.core.somaxconn 65535
setsys net.ipv4.tcp_max_syn_backlog 65535
echo "bench-chat: writing to $out"
period_s=$(awk -v p="$PERIOD" 'BEGIN { v = p + 0; if (p ~ /ms$/) v /= 1000; else if (p ~ /m$/) v *= 60; print v }')
echo "| clients | deliveries/s asked | published | received | per publish | acked / failed by the gateway | p50 | p99 | max | errors |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|---|---|" >> "$out/table.md"
echo "deliveries/s asked,p50 ms,p99 ms" > "$out/sweep.csv"

# room N: one room of N clients, its results in $out/N/.
room() {
	local n=$1 dir=$out/$1 router gw fl procs urls
	mkdir -p "$dir"
	"$BIN"/router -nats-addr 127.0.0.1:4562 -admin 127.0.0.1:8569 -log-level warn > "$dir/router.log" 2>&1 &
	router=$!; pids=("$router")
	wait_http http://127.0.0.1:8569/stats
	"$BIN"/gateway -expect "$n" -procs auto -addr 127.0.0.1:8560 -admin 127.0.0.1:8561 -nats nats://127.0.0.1:4562 -name chat -log-level warn > "$dir/gateway.log" 2>&1 &
	gw=$!; pids+=("$gw")
	wait_http http://127.0.0.1:8561/stats
	sleep 1
	procs=$(pgrep -P "$gw" | wc -l); procs=$((procs > 0 ? procs : 1))
	urls=(http://127.0.0.1:8569/metrics)
	for i in $(seq 0 $((procs - 1))); do urls+=("http://127.0.0.1:$((8561 + i))/metrics"); done
	"$BIN"/floodtest -url http://127.0.0.1:8560/ws/ -n "$n" -topics 1 -ws-publish "$PERIOD" -rate "$RAMP/s" \
		-duration "$(( n / RAMP + HOLD + 5 ))s" -every 10s -summary "$dir/floodtest.json" > "$dir/floodtest.out" 2>&1 &
	fl=$!
	sleep $(( n / RAMP + 5 ))
	scripts/stages.py save "${urls[@]}" > "$dir/stages-before.json"
	wait "$fl" || true
	scripts/stages.py save "${urls[@]}" > "$dir/stages-after.json"
	for i in $(seq 0 $((procs - 1))); do curl -sf "http://127.0.0.1:$((8561 + i))/stats" > "$dir/gateway-stats.$i.json" || true; done
	kill -TERM "$gw"; wait "$gw" || true
	kill -TERM "$router"; wait "$router" || true
	pids=()
	tail -1 "$dir/floodtest.out"
	python3 - "$dir" "$n" "$period_s" "$out" <<'PY'
import json, sys
d, clients, period, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
f = json.load(open(d + "/floodtest.json"))
st, lat = f["stats"], f.get("latency") or {}
import glob
g = {}
for p in glob.glob(d + "/gateway-stats.*.json"):  # every gateway process's
    try:
        for k, v in json.load(open(p))["client_requests"].items():
            g[k] = g.get(k, 0) + v
    except Exception:
        pass
pub, got = st.get("published", 0), st.get("messages", 0)
asked = clients * clients / period
ms = lambda k: f"{lat[k] / 1e6:.1f} ms" if k in lat else "?"
errs = {k: v for k, v in (st.get("errors") or {}).items() if v}
with open(out + "/table.md", "a") as t:
    t.write(f"| {clients} | {asked:,.0f} | {pub} | {got} | {got / max(pub, 1):.0f} | {g.get('acked', '?')} / {g.get('failed', '?')} | {ms('p50_ns')} | {ms('p99_ns')} | {ms('max_ns')} | {errs or 'none'} |\n")
if "p50_ns" in lat and "p99_ns" in lat:
    with open(out + "/sweep.csv", "a") as c:
        c.write(f"{asked:.0f},{lat['p50_ns'] / 1e6:.2f},{lat['p99_ns'] / 1e6:.2f}\n")
PY
	scripts/stages.py table "$dir/stages-before.json" "$dir/stages-after.json" > "$dir/stages.md"
	sleep 3
}

for n in $SWEEP; do
	echo "bench-chat: a room of $n"
	room "$n"
done
{
	echo
	echo "Made by \`make bench-chat${SWEEP:+ SWEEP=\"$SWEEP\"}\` (PERIOD=$PERIOD HOLD=$HOLD) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)."
	for n in $SWEEP; do
		echo
		echo "Stages over the hold, a room of $n:"
		echo
		cat "$out/$n/stages.md"
	done
} >> "$out/table.md"
if [ "$(wc -l < "$out/sweep.csv")" -gt 2 ]; then
	"$BIN"/floodtest curve "$out/sweep.csv" -o "$out/latency.svg" -log -y "publish to receive (ms)" \
		-title "Chat room: latency against deliveries/s asked (each client every $PERIOD)"
fi
cat "$out/table.md"
