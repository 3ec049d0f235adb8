#!/usr/bin/env bash
# make bench-social: the mochiweb series' part 3 plan on this system. A
# generated social graph: USERS users (default 100,000), each following a
# power-law number of others (10/U^0.9 for U uniform, at most 2,000), each
# user subscribed (stored subscriptions) to the topics user-K of the users
# K it follows. floodtest holds every user's stream (no ?topics=: the
# stored subscriptions apply), msggen publishes EVENTS events (default
# 20,000) "by a user" (to user-K, K random) at RATE/s (default 1,000),
# and the streams must receive exactly the copies the acks counted, each
# in order, none twice.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
USERS=${USERS:-100000}
EVENTS=${EVENTS:-20000}
RATE=${RATE:-1000}
RAMP=${RAMP:-5000}
PER=19000
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-social
mkdir -p "$out"
store=$(mktemp -d)
. scripts/bench-lib.sh
trap 'stop_and_restore; rm -rf "$store" "$out/graph.csv"' EXIT
set_backlogs
echo "bench-social: writing to $out"
awk -v users="$USERS" 'BEGIN { srand(11); for (u = 1; u <= users; u++) { k = int(10 / (rand() ^ 0.9)); if (k > 2000) k = 2000; if (k >= users) k = users - 1; for (i = 0; i < k; i++) printf "%d,user-%d\n", u, int(rand() * users) + 1 } }' > "$out/graph.csv"
edges=$(wc -l < "$out/graph.csv")
"$BIN"/router -nats-addr 127.0.0.1:4552 -admin 127.0.0.1:8559 -store "$store" -log-level warn > "$out/router.log" 2>&1 &
router=$!; pids+=("$router")
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8559/stats && break; sleep 0.1; done
t0=$(date +%s%N)
"$BIN"/router subscribe -file "$out/graph.csv" -nats nats://127.0.0.1:4552 > "$out/load.out"
load_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
procs=$(( (USERS + PER - 1) / PER ))
"$BIN"/gateway -procs "$procs" -expect "$USERS" -addr 127.0.0.1:8550 -admin off -nats nats://127.0.0.1:4552 -name social -log-level warn > "$out/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8559/stats | grep -c '"name": "social')" -ge "$procs" ] && break; sleep 0.1; done
sleep 1
"$BIN"/floodtest -url http://127.0.0.1:8550/test/ -n "$USERS" -rate "$RAMP/s" -duration 20m -every 5s -summary "$out/floodtest.json" > "$out/floodtest.out" 2>&1 &
fl=$!; pids+=("$fl")
for _ in $(seq $(( USERS / RAMP * 4 + 120 ))); do grep -q "^Stats: {$USERS," "$out/floodtest.out" && break; sleep 1; done
subs=$(curl -s http://127.0.0.1:8559/stats | grep -o '"subscriptions": [0-9][0-9]*' | head -1 | awk '{print $2}')
sleep 2
"$BIN"/msggen -nats nats://127.0.0.1:4552 -topics "$USERS" -topic-prefix user- -n "$EVENTS" -rate "$RATE" -stamp -every 5s \
	-summary "$out/msggen.json" > "$out/msggen.out" 2>&1 || true
delivered=$(grep -o '"delivered": [0-9]*' "$out/msggen.json" | awk '{print $2}')
for _ in $(seq 60); do
	[ "$(grep -o "[0-9]* messages received" "$out/floodtest.out" | tail -1 | cut -d' ' -f1)" -ge "$delivered" ] 2>/dev/null && break
	sleep 1
done
sleep 2
kill -INT "$fl"; wait "$fl" || true
received=$(grep -o "[0-9]* messages received" "$out/floodtest.out" | tail -1 | cut -d' ' -f1)
errors=$(grep -o "errors: .*" "$out/floodtest.out" | tail -1 | sed 's/errors: //')
lat=$(grep -o "stamped messages took .*" "$out/floodtest.out" | tail -1)
field() { grep -o "\"$1\": [0-9.]*" "$out/msggen.json" | head -1 | awk '{print $2}'; }
{
	echo "| what | figure |"
	echo "|---|---|"
	echo "| users, streams held | $USERS, $USERS (gateway processes: $procs) |"
	echo "| follows (lines), stored subscriptions (distinct) | $edges, $subs |"
	echo "| \`router subscribe -file\` | $((load_ms / 1000)).$(( (load_ms % 1000) / 100 )) s |"
	echo "| events published (msggen -topics $USERS -topic-prefix user-) | $(field sent) at $(field rate | cut -d. -f1)/s acked; $(field void) by users nobody follows |"
	echo "| copies the acks counted delivered | **$delivered** |"
	echo "| copies the streams received | **$received** |"
	echo "| floodtest errors (order, duplicates) | $errors |"
	echo "| latency | $lat |"
	echo
	echo "Made by \`make bench-social\` (USERS=$USERS EVENTS=$EVENTS RATE=$RATE) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)."
} | tee "$out/table.md"
[ "$received" = "$delivered" ] || { echo "bench-social: the streams received $received copies, the acks said $delivered" >&2; exit 1; }
