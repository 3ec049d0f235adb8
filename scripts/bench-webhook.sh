#!/usr/bin/env bash
# make bench-webhook: webhook throughput. IDS (100,000) chunked streams
# log in and out within 60 s, each id once: floodtest A opens ids
# 1..IDS/2 over 30 s and closes them all at 40 s; floodtest B, started
# at 20 s, opens the other half over 30 s and closes them at 60 s. The
# router (-webhook) sends every online and offline event to bench/hookrecv,
# which checks each POST's signature and counts each event once. With
# TOPICS=K each client also joins topic-((id-1) mod K + 1): joined, left,
# occupied and vacated events too.
#
# Prints: events the router made, queued and lost (by reason), events
# the receiver got (once each, and told again), the lost counts batches
# told it, its arrival rate (first to last event, and the busiest
# second), the queue's high-water mark, and how long after the last
# logout the last event arrived. Writes bench/results/<time>-webhook/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
IDS=${IDS:-100000}
TOPICS=${TOPICS:-0}
half=$(( IDS / 2 ))
rate=$(( (half + 29) / 30 ))
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-webhook
mkdir -p "$out"
. scripts/bench-lib.sh
trap 'stop_and_restore' EXIT
set_backlogs
setsys net.ipv4.ip_local_port_range "1024 65535"
setsys fs.file-max 4194304
echo "bench-webhook: writing to $out"

umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/secret"
"$BIN"/hookrecv -addr 127.0.0.1:9711 -secret-file "$out/secret" > "$out/hookrecv.log" 2>&1 &
pids+=($!)
"$BIN"/router -nats-addr 127.0.0.1:4552 -admin 127.0.0.1:8591 -webhook http://127.0.0.1:9711/hook -webhook-secret-file "$out/secret" \
	-log-level warn > "$out/router.log" 2>&1 &
router=$!; pids+=("$router")
wait_http http://127.0.0.1:8591/stats
procs=$(( (IDS + 18999) / 19000 ))
"$BIN"/gateway -procs "$procs" -expect "$IDS" -addr 127.0.0.1:8582 -admin 127.0.100.1:8620 -nats nats://127.0.0.1:4552 -name hooks \
	-log-level warn > "$out/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ "$(curl -sf http://127.0.0.1:8591/stats | grep -c '"name": "hooks')" -ge "$procs" ] && break; sleep 0.1; done
wait_http http://127.0.0.1:9711/summary

topics=()
[ "$TOPICS" -gt 0 ] && topics=(-topics "$TOPICS")
flood() { # name first
	"$BIN"/floodtest -url http://127.0.0.1:8582/test/ -first "$2" -n "$half" -rate "$rate/s" -duration 40s -every 5s "${topics[@]}" \
		-summary "$out/flood.$1.json" > "$out/flood.$1.out" 2>&1 &
	pids+=($!)
	memory_guard "$out/memory-guard.txt" $!
	pids+=("$guard")
}
webhooks() { curl -s http://127.0.0.1:8591/stats | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["webhooks"]))'; }
t0=$(date +%s)
flood a 1
sleep 20
flood b $(( half + 1 ))
# Sample the queue every second until the receiver has every online and
# offline event (or 3 minutes after the last logout).
want=$(( 2 * IDS ))
while :; do
	now=$(( $(date +%s) - t0 ))
	echo "$now $(webhooks)" >> "$out/queue.log"
	got=$(curl -s http://127.0.0.1:9711/summary | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["by_type"].get("online",0)+s["by_type"].get("offline",0))')
	[ "$got" -ge "$want" ] && break
	[ "$now" -gt 240 ] && { echo "bench-webhook: $got of $want online and offline events after ${now}s" >&2; break; }
	guarded "$out/memory-guard.txt" bench-webhook
	sleep 1
done
done_at=$(date +%s.%N)
sleep 2
webhooks > "$out/router-webhooks.json"
curl -s http://127.0.0.1:9711/summary > "$out/receiver.json"
python3 - "$out" "$t0" "$done_at" "$IDS" <<'PY' | tee "$out/summary.md"
import json, sys, datetime
out, t0, done_at, ids = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
r = json.load(open(out + "/router-webhooks.json"))
s = json.load(open(out + "/receiver.json"))
def ts(x): return datetime.datetime.fromisoformat(x.replace("Z", "+00:00")[:26] + "+00:00" if "." in x else x.replace("Z", "+00:00")).timestamp()
first, last = ts(s["first"]), ts(s["last"])
span = max(last - first, 1e-9)
print("| measure | value |")
print("|---|---|")
print(f"| ids logged in and out | {ids:,} (each once, within 60 s) |")
print(f"| events made / queued by the router | {r['made']:,} / {r['queued']:,} |")
print(f"| events lost: queue full / store | {r['lost_full']:,} / {r['lost_store']:,} |")
print(f"| events received once / told again | {s['events']:,} / {s['again']:,} |")
print(f"| by type | " + ", ".join(f"{k} {v:,}" for k, v in sorted(s['by_type'].items())) + " |")
print(f"| lost told to the receiver | {s['lost']:,} |")
print(f"| bad signatures | {s['bad_signatures']} |")
print(f"| POSTs | {s['posts']:,} ({s['events'] / max(s['posts'], 1):,.0f} events each) |")
print(f"| arrival: first to last event | {span:.1f} s, {s['events'] / span:,.0f} events/s; busiest second {s['peak_per_second']:,} |")
print(f"| last event after the last logout (60 s) | {last - t0 - 60:.1f} s |")
print(f"| queue high-water | {r['queue_high_bytes'] / 1048576:.1f} MiB of {r['queue_max_bytes'] / 1048576:.0f} MiB |")
ok = r["lost_full"] + r["lost_store"] + s["lost"] == 0 and s["by_type"].get("online", 0) == ids and s["by_type"].get("offline", 0) == ids and s["bad_signatures"] == 0
print()
print("result: " + ("every online and offline event delivered, none lost" if ok else "NOT every event delivered"))
sys.exit(0 if ok else 1)
PY
