#!/usr/bin/env bash
# make bench-subscribe: the seed's Mnesia test on this system. Writes
# USERS x PER subscriptions (default 100,000 x 150 = 15,000,000; each user
# to PER random users' topics "user-K") to a CSV file, loads it with
# `router subscribe -file` into a running router's stored subscriptions
# (JetStream on its embedded NATS), and reports: how long the load took
# to be stored, how long until the router had applied all of it, the
# router's resident memory per subscription, how long a restarted
# router takes to load them again, and how long `router subscribe
# -compact` takes to rewrite the stream as its subscriptions (here the
# same, less the repeats: what a compaction costs at this size) while
# that router serves, and that it still holds every one after.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
USERS=${USERS:-100000}
PER=${PER:-150}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-subscribe
mkdir -p "$out"
store=$(mktemp -d)
. scripts/bench-lib.sh
trap 'stop_and_restore; rm -rf "$store" "$out/subs.csv"' EXIT
echo "bench-subscribe: writing to $out"
awk -v users="$USERS" -v per="$PER" 'BEGIN { srand(7); for (u = 1; u <= users; u++) for (k = 0; k < per; k++) printf "%d,user-%d\n", u, int(rand() * users) + 1 }' > "$out/subs.csv"
lines=$(wc -l < "$out/subs.csv")
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
subs() { curl -s http://127.0.0.1:8649/stats | grep -o '"subscriptions": [0-9][0-9]*' | head -1 | awk '{print $2}'; }
start_router() {
	"$BIN"/router -nats-addr 127.0.0.1:4642 -admin 127.0.0.1:8649 -store "$store" -log-level info > "$out/router.$1.log" 2>&1 &
	router=$!; pids+=("$router")
}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

start_router first
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8649/stats && break; sleep 0.1; done
sleep 1
before=$(rss "$router")
t0=$(date +%s%N)
"$BIN"/router subscribe -file "$out/subs.csv" -nats nats://127.0.0.1:4642 | tee "$out/load.out"
stored_ms=$(ms "$t0")
want=$(subs)
prev=-1
while :; do # applied: the count stops moving and the compaction is logged or the count is final
	n=$(subs)
	[ "$n" = "$prev" ] && grep -q "compacted" "$out/router.first.log" && break
	prev=$n
	sleep 0.2
	[ $(( ($(date +%s%N) - t0) / 1000000000 )) -gt 300 ] && break
done
applied_ms=$(ms "$t0")
n=$(subs)
sleep 2
after=$(rss "$router")
kill -TERM "$router"; wait "$router" || true
pids=()

t1=$(date +%s%N)
start_router second
for _ in $(seq 3000); do curl -sf -o /dev/null http://127.0.0.1:8649/stats && break; sleep 0.1; done
reload_ms=$(ms "$t1")
n2=$(subs)
sleep 2
after2=$(rss "$router")
t2=$(date +%s%N)
"$BIN"/router subscribe -compact -nats nats://127.0.0.1:4642 | tee "$out/compact.out"
compact_ms=$(ms "$t2")
sleep 2
n3=$(subs)
{
	echo "| what | figure |"
	echo "|---|---|"
	echo "| lines in the file | $lines ($USERS users x $PER topics) |"
	echo "| distinct subscriptions (a user drew a topic twice: once) | $n |"
	echo "| \`router subscribe -file\`: stored in JetStream | **$((stored_ms / 1000)).$(( (stored_ms % 1000) / 100 )) s** |"
	echo "| ... and applied by the running router | **$((applied_ms / 1000)).$(( (applied_ms % 1000) / 100 )) s** after the start |"
	echo "| router resident before / after (KB) | $before / $after |"
	echo "| **router resident bytes per subscription** | **$(( (after - before) * 1024 / n ))** |"
	echo "| a restarted router: serving after (its load of all $n2) | **$((reload_ms / 1000)).$(( (reload_ms % 1000) / 100 )) s** |"
	echo "| ... resident (KB), bytes per subscription over the first router's start | $after2, $(( (after2 - before) * 1024 / n2 )) |"
	echo "| \`router subscribe -compact\` while that router serves: the stream rewritten as its subscriptions | **$((compact_ms / 1000)).$(( (compact_ms % 1000) / 100 )) s** ($(tail -1 "$out/compact.out" | sed 's/^router subscribe: //')) |"
	echo "| subscriptions the router holds after it | $n3 |"
	echo
	echo "Made by \`make bench-subscribe\` (USERS=$USERS PER=$PER) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)."
} | tee "$out/table.md"
