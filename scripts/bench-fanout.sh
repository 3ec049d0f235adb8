#!/usr/bin/env bash
# make bench-fanout: topics and broadcast at size, one table from one run.
#
#   1. Broadcast to N streams (default 100,000; FULL=1: 1,000,000): 20
#      broadcasts, one a second (msggen -broadcast-every 1s -stamp); for
#      each, the time from sending it to the last stream having it
#      (floodtest's stamped-message latency), p50 and p99 over the 20.
#   2. A topic of M members (default 10,000, ids 1..M, floodtest -topics 1)
#      while N others are connected: msggen publishes P messages (default
#      2,000) to it at R/s (default 100), numbered; every member must get
#      every message once, in order (floodtest checks the numbers), and
#      the others none.
#   3. The Haskell chat: CHAT WebSocket clients (default 10,000) in one
#      room, each publishing a stamped message into it every PERIOD
#      (default 10s; floodtest -ws-publish), for HOLD seconds (60): what
#      each client received per publish, and the latency from the
#      publisher's clock to every receiver, p50 and p99. make bench-chat
#      runs the same alone, with the gateway's account of the publishes.
#
# PHASES picks some ("broadcast topic chat"). Everything on this
# machine's loopback, stopping by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-100000}
M=${M:-10000}
P=${P:-2000}
R=${R:-100}
RAMP=${RAMP:-5000}
BROADCASTS=${BROADCASTS:-20}
CHAT=${CHAT:-10000}
PERIOD=${PERIOD:-10s}
HOLD=${HOLD:-60}
PHASES=${PHASES:-"broadcast topic chat"}
ROUTER_FLAGS=()
if [ "${FULL:-0}" = 1 ]; then
	# A million streams: the broadcasts only (the topic test is defined
	# at 100,000), ramped like bench-million, with a router that waits
	# longer for heartbeats from ~100 processes on two cores.
	# FULL_N=2000000 FULL_RAMP=5000 FULL_BROADCASTS=1: two million (make
	# bench-2m); above a million, ramp at 5,000/s (at 20,000/s the
	# connections queue faster than ~200 processes serve them).
	N=${FULL_N:-1000000} RAMP=${FULL_RAMP:-20000} BROADCASTS=${FULL_BROADCASTS:-5} PHASES=broadcast
	ROUTER_FLAGS=(-gateway-timeout 30s)
fi
# The gateway's -write-delay (default: the gateway's own, adaptive).
WRITE_DELAY=${WRITE_DELAY:-}
PER=19000 # streams per gateway process
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-fanout
mkdir -p "$out"
echo "bench-fanout: writing to $out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs
setsys net.ipv4.ip_local_port_range "1024 65535"
setsys fs.file-max 4194304

# streaming FILE N: floodtest's output says all N clients stream.
streaming() { grep -q "^Stats: {$2," "$1"; }
stats() { grep -o "[0-9]* messages received, errors: .*" "$1" | tail -1; }
received() { stats "$1" | cut -d' ' -f1; } # FILE: the messages floodtest received
errs() { stats "$1" | sed 's/.*errors: //'; } # FILE: its errors
# chunks FILE: the chunks floodtest's last progress line counts (one
# welcome per stream, then the messages).
chunks() { grep -o "^Stats: {[0-9]*,[0-9]*,[0-9]*" "$1" | tail -1 | awk -F'[{,]' '{print $4}'; }

start_system() { # clients; sets procs, router, gw
	procs=$(( ($1 + PER - 1) / PER ))
	"$BIN"/router -nats-addr 127.0.0.1:4532 -admin 127.0.0.1:8589 "${ROUTER_FLAGS[@]}" -log-level warn > "$out/$phase.router.log" 2>&1 &
	router=$!; pids+=("$router")
	for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8589/stats && break; sleep 0.1; done
	"$BIN"/gateway -procs "$procs" -expect "$1" -addr 127.0.0.1:8580 -admin off -nats nats://127.0.0.1:4532 -name fanout \
		${WRITE_DELAY:+-write-delay "$WRITE_DELAY"} -log-level warn > "$out/$phase.gateway.log" 2>&1 &
	gw=$!; pids+=("$gw")
	for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8589/stats | grep -c '"name": "fanout')" -ge "$procs" ] && break; sleep 0.1; done
	sleep 1
}
stop_system() {
	kill -TERM "$gw"; wait "$gw" || true
	kill -TERM "$router"; wait "$router" || true
	pids=()
	sleep 3
}
flood() { # name first n [flags...]; sets flooder. FLOOD_PATH: /test/ or /ws/
	local name=$1 first=$2 n=$3
	shift 3
	"$BIN"/floodtest -url "http://127.0.0.1:8580${FLOOD_PATH:-/test/}" -first "$first" -n "$n" -rate "$RAMP/s" -duration 20m -every 5s \
		-summary "$out/$phase.$name.json" "$@" > "$out/$phase.$name.out" 2>&1 &
	flooder=$!
}
wait_streaming() { # file n
	for _ in $(seq $(( $2 / RAMP * 4 + 120 ))); do streaming "$1" "$2" && return 0; sleep 1; done
	echo "bench-fanout: not every client streams: $(tail -1 "$1")" >&2
	return 1
}
field() { grep -o "\"$2\": [0-9.]*" "$1" | head -1 | awk '{print $2}'; }
ms() { awk -v ns="${1:-0}" 'BEGIN { printf "%.1f", ns / 1e6 }'; }

{
	echo "| test | streams | gateway processes | sent | received | errors | result |"
	echo "|---|---|---|---|---|---|---|"
} > "$out/table.md"

# 1. Broadcast to N streams.
phase=broadcast
if [[ " $PHASES " == *" broadcast "* ]]; then
start_system "$N"
flood all 1 "$N"; fl=$flooder; pids+=("$fl")
wait_streaming "$out/$phase.all.out" "$N"
sleep 2
"$BIN"/msggen -nats nats://127.0.0.1:4532 -n 0 -broadcast-every 1s -stamp -duration "$((BROADCASTS + 1))s" -every 0 \
	-summary "$out/$phase.msggen.json" > "$out/$phase.msggen.out" 2>&1 || true
# Until every broadcast has reached every stream (or five minutes).
for _ in $(seq 300); do
	[ "$(chunks "$out/$phase.all.out")" -ge $((N + N * BROADCASTS)) ] 2>/dev/null && break
	sleep 1
done
sleep 3
kill -INT "$fl"; wait "$fl" || true
stop_system
b=$out/$phase.all.json
sent=$(field "$out/$phase.msggen.json" sent)
printf "| broadcast to every stream, one a second | %d | %d | %s broadcasts | %s | %s | time to the last stream: p50 **%s ms**, p99 **%s ms**, max %s ms (over %s broadcasts) |\n" \
	"$N" "$procs" "$sent" "$(received "$out/$phase.all.out")" "$(errs "$out/$phase.all.out")" \
	"$(ms "$(field "$b" broadcast_p50_ns)")" "$(ms "$(field "$b" broadcast_p99_ns)")" "$(ms "$(field "$b" broadcast_max_ns)")" "$(field "$b" broadcasts)" | tee -a "$out/table.md"
fi

# 2. A topic of M members among N others.
phase=topic
if [[ " $PHASES " == *" topic "* ]]; then
start_system $((N + M))
flood members 1 "$M" -topics 1; members=$flooder; pids+=("$members")
flood others $((M + 1)) "$N"; others=$flooder; pids+=("$others")
wait_streaming "$out/$phase.members.out" "$M"
wait_streaming "$out/$phase.others.out" "$N"
sleep 2
"$BIN"/msggen -nats nats://127.0.0.1:4532 -topics 1 -n "$P" -rate "$R" -numbered -stamp -every 5s \
	-summary "$out/$phase.msggen.json" > "$out/$phase.msggen.out" 2>&1 || true
for _ in $(seq 60); do
	[ "$(chunks "$out/$phase.members.out")" -ge $((M + M * P)) ] 2>/dev/null && break
	sleep 1
done
sleep 2
kill -INT "$members" "$others"; wait "$members" "$others" || true
stop_system
m=$out/$phase.members.json
printf "| publish to a topic of %d members at %s/s while %d others stream | %d | %d | %s publishes, acked rate %s/s | members %s, others %s | members: %s; others: %s | every member %d of %d messages; latency p50 **%s ms**, p99 **%s ms** |\n" \
	"$M" "$R" "$N" $((N + M)) "$procs" "$(field "$out/$phase.msggen.json" sent)" "$(field "$out/$phase.msggen.json" rate | cut -d. -f1)" \
	"$(received "$out/$phase.members.out")" "$(received "$out/$phase.others.out")" \
	"$(errs "$out/$phase.members.out")" "$(errs "$out/$phase.others.out")" \
	"$(( $(received "$out/$phase.members.out") / M ))" "$P" "$(ms "$(field "$m" p50_ns)")" "$(ms "$(field "$m" p99_ns)")" | tee -a "$out/table.md"
fi

# 3. The Haskell chat: CHAT WebSockets in one room, each publishing.
phase=chat
if [[ " $PHASES " == *" chat "* ]]; then
start_system "$CHAT"
FLOOD_PATH=/ws/ flood chat 1 "$CHAT" -topics 1 -ws-publish "$PERIOD"; fl=$flooder; pids+=("$fl")
wait_streaming "$out/$phase.chat.out" "$CHAT"
sleep "$HOLD"
kill -INT "$fl"; wait "$fl" || true
stop_system
c=$out/$phase.chat.json
published=$(field "$c" published); got=$(received "$out/$phase.chat.out")
printf "| the Haskell chat: %d WebSockets in one room, each publishing every %s | %d | %d | %s publishes | %s | %s | each client %s messages per publish; latency from publish to each receiver p50 **%s ms**, p99 **%s ms** |\n" \
	"$CHAT" "$PERIOD" "$CHAT" "$procs" "$published" "$got" "$(errs "$out/$phase.chat.out")" \
	"$(awk -v g="$got" -v p="$published" -v c="$CHAT" 'BEGIN { if (p > 0) printf "%.0f of %d", g / p, c; else print "?" }')" \
	"$(ms "$(field "$c" p50_ns)")" "$(ms "$(field "$c" p99_ns)")" | tee -a "$out/table.md"
fi

{
	echo
	echo "Made by \`make bench-fanout${FULL:+ FULL=$FULL}\` (N=$N M=$M P=$P R=$R BROADCASTS=$BROADCASTS CHAT=$CHAT PERIOD=$PERIOD HOLD=$HOLD RAMP=$RAMP${WRITE_DELAY:+ WRITE_DELAY=$WRITE_DELAY}) on $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)."
} >> "$out/table.md"
cat "$out/table.md"
