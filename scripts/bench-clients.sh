#!/usr/bin/env bash
# make bench-clients: what the JavaScript client library (clients/js)
# costs beside the bare npm ws package, and how N of its clients come back
# from a gateway restart (bench/clients/bench.mjs says how). N (10,000)
# clients in WORKERS (2) Node processes, msggen at RATE (1,000) numbered
# messages/s for SECONDS (60). Writes bench/results/<time>-clients/
# (summary.json, table.md, every process's log).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
RATE=${RATE:-1000}
DURATION=${DURATION:-60}
WORKERS=${WORKERS:-2}
PHASES=${PHASES:-overhead,reconnect}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-clients
mkdir -p "$out"
echo "bench-clients: writing to $out"
[ -e clients/js/node_modules/ws/package.json ] || npm ci --prefix clients/js --no-audit --no-fund
COMET_BIN=$PWD/bin node bench/clients/bench.mjs --n "$N" --rate "$RATE" --seconds "$DURATION" --workers "$WORKERS" --phases "$PHASES" --out "$out"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
d = json.load(open(out + "/summary.json"))
lines = []
if d["overhead"]:
    lines += ["| clients | of | msgs sent | received | msgs/s | lost | repeated | missed | client CPU s | CPU µs/msg | client RSS MB | gateway CPU s | latency p50 / p99 / p99.9 ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["overhead"]:
        name = "the library (WebSocket)" if r["mode"] == "lib" else "bare npm ws"
        lines.append(f"| {name} | {r['clients']:,} | {r['sent']:,} | {r['received']:,} | {r['msgs_per_s']:,} | {r['lost']} | {r['dups']} | {r['missed']} | {r['client_cpu_s']} | {r['client_cpu_s'] / max(1, r['received']) * 1e6:.0f} | {r['client_rss_mb']} | {r['gateway_cpu_s']} | {r['p50_ms']} / {r['p99_ms']} / {r['p999_ms']} |")
    lines.append("")
if d["reconnect"]:
    lines += ["| gateway restart | clients | all back after SIGTERM | peak reconnects/s | reconnects per second after SIGTERM | msgs sent | received | lost | repeated | missed |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["reconnect"]:
        per = " ".join(f"{s}:{n}" for s, n in r["per_second"])
        lines.append(f"| {'with the drain (30 s)' if r['drain'] else 'without (-drain-period 0)'} | {r['clients']:,} | {r['all_back_s']} s | {r['peak_per_s']:,} | {per} | {r['sent']:,} | {r['received']:,} | {r['lost']} | {r['dups']} | {r['missed']} |")
open(out + "/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
