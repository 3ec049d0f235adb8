#!/usr/bin/env bash
# make bench-history: what a topic's kept message costs. A router with
# -topic-history KEEP (100) keeps the last messages of TOPICS (10,000)
# topics; msggen publishes TOPICS x KEEP x 2 messages ("Fake message Num
# = K", 20-26 bytes) flat out to topic-1..topic-TOPICS, so nearly every
# topic is full. Prints the messages kept, the bytes the store counts
# (each message's length and 72), and the router's live heap (after a
# GC) and resident memory before and after, per kept message. Writes
# bench/results/<time>-history/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
TOPICS=${TOPICS:-10000}
KEEP=${KEEP:-100}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-history
mkdir -p "$out"
. scripts/bench-lib.sh
trap 'stop_and_restore' EXIT
echo "bench-history: writing to $out"
admin=127.0.0.1:8593
"$BIN"/router -nats-addr 127.0.0.1:4554 -admin "$admin" -topic-history "$KEEP" -topic-history-age 1h -topic-history-bytes 4294967296 \
	-log-level warn > "$out/router.log" 2>&1 &
router=$!; pids+=("$router")
wait_http "http://$admin/stats"
heap() { # live heap after a GC, bytes
	curl -s -o /dev/null "http://$admin/debug/pprof/heap?gc=1"
	curl -s "http://$admin/metrics" | awk '/^go_memstats_heap_alloc_bytes / { printf "%d\n", $2 }'
}
sleep 1
heap0=$(heap); rss0=$(rss "$router")
per=$(( TOPICS * KEEP * 2 / 4 ))
t0=$(date +%s.%N)
"$BIN"/msggen -nats nats://127.0.0.1:4554 -topics "$TOPICS" -n "$per" -procs 4 -interval 0 -summary "$out/msggen.json" > "$out/msggen.out" 2>&1
t1=$(date +%s.%N)
heap1=$(heap); rss1=$(rss "$router")
curl -s "http://$admin/stats" > "$out/stats.json"
python3 - "$out" "$heap0" "$heap1" "$rss0" "$rss1" "$t0" "$t1" "$TOPICS" "$KEEP" <<'PY' | tee "$out/summary.md"
import json, sys
out, heap0, heap1, rss0, rss1, t0, t1, topics, keep = sys.argv[1], *map(float, sys.argv[2:])
st = json.load(open(out + "/stats.json"))
h = st["topic_history"]
m = json.load(open(out + "/msggen.json"))
n = h["messages"]
print("| measure | value |")
print("|---|---|")
print(f"| topics x kept each | {int(topics):,} x {int(keep)} |")
print(f"| published (msggen, flat out) | {st['topic_kept']:,} in {t1 - t0:.1f} s |")
print(f"| messages kept | {n:,} in {h['topics']:,} topics |")
print(f"| bytes the store counts (length + 72 each) | {h['bytes'] / 1048576:.1f} MiB, {h['bytes'] / n:.1f} B per message |")
print(f"| router live heap, before / after | {heap0 / 1048576:.1f} / {heap1 / 1048576:.1f} MiB: **{(heap1 - heap0) / n:.1f} B per kept message** |")
print(f"| router resident memory, before / after | {rss0 / 1024:.1f} / {rss1 / 1024:.1f} MiB: {(rss1 - rss0) * 1024 / n:.1f} B per kept message |")
PY
