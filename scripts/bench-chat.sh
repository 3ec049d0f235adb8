#!/usr/bin/env bash
# make bench-chat: the Haskell chat on this machine. CLIENTS WebSocket
# clients (default 10,000) in one room (topic-1), each publishing a
# stamped message into it every PERIOD (default 10s, spread over the
# clients: CLIENTS/PERIOD publishes a second, each to every client), for
# HOLD seconds (default 60) once all are in. floodtest checks every frame
# and reports what the publishes took from the publisher's clock to each
# receiver (p50, p99), how many each client got, and the gateway's count
# of publishes sent, acked and failed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
CLIENTS=${CLIENTS:-10000}
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
"$BIN"/router -nats-addr 127.0.0.1:4562 -admin 127.0.0.1:8569 -log-level warn > "$out/router.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8569/stats && break; sleep 0.1; done
"$BIN"/gateway -expect "$CLIENTS" -procs auto -addr 127.0.0.1:8560 -admin 127.0.0.1:8561 -nats nats://127.0.0.1:4562 -name chat -log-level warn > "$out/gateway.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8561/stats && break; sleep 0.1; done
"$BIN"/floodtest -url http://127.0.0.1:8560/ws/ -n "$CLIENTS" -topics 1 -ws-publish "$PERIOD" -rate "$RAMP/s" \
	-duration "$(( CLIENTS / RAMP + HOLD + 5 ))s" -every 10s -summary "$out/floodtest.json" > "$out/floodtest.out" 2>&1 || true
curl -sf http://127.0.0.1:8561/stats > "$out/gateway-stats.json" || true
cat "$out/floodtest.out"
python3 - "$out" "$CLIENTS" <<'PY' | tee "$out/table.md"
import json, sys
out, clients = sys.argv[1], int(sys.argv[2])
f = json.load(open(out + "/floodtest.json"))
st, lat = f["stats"], f.get("latency") or {}
try:
    g = json.load(open(out + "/gateway-stats.json"))["client_requests"]
except Exception:
    g = {}
pub, got = st.get("published", 0), st.get("messages", 0)
print("| clients | published | received | per publish | acked / failed by the gateway | p50 | p99 | max | errors |")
print("|---|---|---|---|---|---|---|---|---|")
ms = lambda k: f"{lat[k] / 1e6:.1f} ms" if k in lat else "?"
errs = {k: v for k, v in (st.get("errors") or {}).items() if v}
print(f"| {clients} | {pub} | {got} | {got / max(pub, 1):.0f} | {g.get('acked', '?')} / {g.get('failed', '?')} | {ms('p50_ns')} | {ms('p99_ns')} | {ms('max_ns')} | {errs or 'none'} |")
PY
echo "Made by \`make bench-chat\` (CLIENTS=$CLIENTS PERIOD=$PERIOD HOLD=$HOLD) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)." | tee -a "$out/table.md"
