#!/usr/bin/env bash
# The memory study of the original, part 2: router and gateway, CLIENTS
# streaming clients ramped at RAMP/s, msggen sending RATE messages/s to
# random ids in 1..CLIENTS, the gateway's memory logged every MEMLOG_EVERY,
# for DURATION. Everything lands in study/<timestamp>/: the memory log, the
# chart, every tool's output and summary.md. ROUTER_FLAGS and GATEWAY_FLAGS
# pass extra flags to those daemons.
#
#   DURATION=10m scripts/study.sh       (make study DURATION=10m)
#   FAST=1 scripts/study.sh             (make study-fast: 24h worth of
#                                        messages, as fast as they go)
#   MIX=1 DURATION=10m scripts/study.sh (a third of the clients each:
#                                        chunked streams, SSE streams,
#                                        long-polls; all checked for loss)
#   KIND=ws scripts/study.sh            (the clients are WebSockets: /ws/;
#                                        also sse, poll; default test,
#                                        chunked streams)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh # family, memory_guard (no kernel setting changed here)

DURATION=${DURATION:-24h}
CLIENTS=${CLIENTS:-10000}
RAMP=${RAMP:-100}
RATE=${RATE:-1000}
MEMLOG_EVERY=${MEMLOG_EVERY:-60s}
PROCS=${PROCS:-4}
GATEWAY_PROCS=${GATEWAY_PROCS:-1} # a number, or auto (enough for CLIENTS)
FAST=${FAST:-0}
MIX=${MIX:-0}
KIND=${KIND:-test}
case $KIND in test | sse | ws) kind_flags=() ;; poll) kind_flags=(-poll-timeout 30s) ;; *)
	echo "study: KIND=$KIND: want test (chunked), sse, poll or ws" >&2; exit 2 ;;
esac
BIN=${BIN:-bin}
GW_ADDR=127.0.0.1:${GW_PORT:-8100}
ROUTER_ADMIN=127.0.0.1:${ROUTER_ADMIN_PORT:-8101}
GW_ADMIN_PORT=${GW_ADMIN_PORT:-8102}
GW_ADMIN=127.0.0.1:$GW_ADMIN_PORT
NATS_ADDR=127.0.0.1:${NATS_PORT:-4322}

seconds() { # 90s, 10m, 24h, 1d -> seconds
	local v=$1
	case $v in
	*d) echo $(( ${v%d} * 86400 )) ;;
	*h) echo $(( ${v%h} * 3600 )) ;;
	*m) echo $(( ${v%m} * 60 )) ;;
	*s) echo "${v%s}" ;;
	*) echo "$v" ;;
	esac
}
dur=$(seconds "$DURATION")
ramp=$(( (CLIENTS + RAMP - 1) / RAMP ))
if [ "$FAST" = 1 ]; then
	total=$(( RATE * 86400 )) # the messages of 24 hours at RATE/s
else
	total=$(( RATE * dur ))
fi
per=$(( (total + PROCS - 1) / PROCS ))

out=study/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
{
	echo "make $([ "$FAST" = 1 ] && echo study-fast || echo study) DURATION=$DURATION CLIENTS=$CLIENTS RAMP=$RAMP RATE=$RATE MEMLOG_EVERY=$MEMLOG_EVERY PROCS=$PROCS GATEWAY_PROCS=$GATEWAY_PROCS MIX=$MIX KIND=$KIND${GATEWAY_FLAGS:+ GATEWAY_FLAGS=\"$GATEWAY_FLAGS\"}${ROUTER_FLAGS:+ ROUTER_FLAGS=\"$ROUTER_FLAGS\"}"
	echo "# on $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
} > "$out/command.txt"
echo "study: writing to $out"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN"/router -nats-addr "$NATS_ADDR" -admin "$ROUTER_ADMIN" -log-level warn ${ROUTER_FLAGS:-} > "$out/router.log" 2>&1 &
router=$!; pids+=("$router")
for _ in $(seq 100); do curl -sf -o /dev/null "http://$ROUTER_ADMIN/stats" && break; sleep 0.1; done
"$BIN"/gateway -procs "$GATEWAY_PROCS" -expect "$CLIENTS" -addr "$GW_ADDR" -admin "$GW_ADMIN" -nats "nats://$NATS_ADDR" -name study -log-level warn ${GATEWAY_FLAGS:-} > "$out/gateway.log" 2>&1 &
gateway=$!; pids+=("$gateway")
for i in $(seq 300); do
	[ "$(curl -sf "http://$ROUTER_ADMIN/stats" | awk -F'[:,]' '/"gateways"/ {gsub(/ /,"",$2); print $2; exit}')" -ge "${GATEWAY_PROCS/auto/1}" ] 2>/dev/null && break
	[ "$i" = 300 ] && { echo "study: the gateway did not register with the router; see $out/gateway.log" >&2; exit 1; }
	sleep 0.2
done
sleep 1 # let the gateway settle before the baseline sample
cp /proc/meminfo "$out/meminfo-before.txt"

# floodtest outlives msggen; it is stopped below once the messages are in.
# With MIX=1 two more floodtests hold a third of the ids each as SSE
# streams and long-poll clients.
streams=$CLIENTS
if [ "$MIX" = 1 ]; then
	third=$(( CLIENTS / 3 ))
	streams=$(( CLIENTS - 2 * third ))
fi
flood_for=$(( ramp + dur * (1 - FAST) + 86400 * FAST + 300 ))
"$BIN"/floodtest -url "http://$GW_ADDR/$KIND/" "${kind_flags[@]}" -n "$streams" -rate "$RAMP/s" -duration "${flood_for}s" \
	-memlog "$out/mochimem.log" -memlog-every "$MEMLOG_EVERY" -gateway-pids "$gateway" -router-pids "$router" \
	-summary "$out/floodtest.json" > "$out/floodtest.out" 2>&1 &
flood=$!; pids+=("$flood")
floods=("$flood")
if [ "$MIX" = 1 ]; then
	"$BIN"/floodtest -url "http://$GW_ADDR/sse/" -first $(( streams + 1 )) -n "$third" -rate "$RAMP/s" -duration "${flood_for}s" \
		-every 10s -summary "$out/floodtest-sse.json" > "$out/floodtest-sse.out" 2>&1 &
	floods+=($!); pids+=($!)
	"$BIN"/floodtest -url "http://$GW_ADDR/poll/" -first $(( streams + third + 1 )) -n "$third" -rate "$RAMP/s" -duration "${flood_for}s" \
		-poll-timeout 30s -every 10s -summary "$out/floodtest-poll.json" > "$out/floodtest-poll.out" 2>&1 &
	floods+=($!); pids+=($!)
fi

# Past what the machine holds, the clients are stopped rather than the
# machine stalled (GUARD_MB, scripts/bench-lib.sh).
memory_guard "$out/memory-guard.txt" "${floods[@]}"
pids+=("$guard")
# What the machine's memory goes to, every 10 s (memory.log).
memory_log "$out/memory.log" "$gateway"
pids+=("$memlogger")

echo "study: ramping $CLIENTS clients at $RAMP/s"
deadline=$(( SECONDS + ramp * 2 + 120 ))
ramped() {
	if [ "$MIX" = 1 ]; then
		grep -q "^Stats: {$streams," "$out/floodtest.out" && grep -q "^Stats: {$third," "$out/floodtest-sse.out" &&
			grep -q "^Stats: {$third," "$out/floodtest-poll.out"
	else
		[ "$(curl -sf "http://$ROUTER_ADMIN/stats" | awk -F'[:,]' '/"conns"/ {gsub(/ /,"",$2); print $2; exit}')" -ge "$CLIENTS" ] 2>/dev/null
	fi
}
until ramped; do
	guarded "$out/memory-guard.txt" study
	if [ $SECONDS -gt $deadline ]; then echo "study: the ramp did not finish; see $out/floodtest*.out" >&2; exit 1; fi
	sleep 1
done

if [ "$FAST" = 1 ]; then
	echo "study: sending $total numbered messages flat out"
	"$BIN"/msggen -nats "nats://$NATS_ADDR" -numbered -interval 0 -n "$per" -max "$CLIENTS" -procs "$PROCS" \
		-every 30s -duration 24h -summary "$out/msggen.json" > "$out/msggen.out" 2>&1
else
	echo "study: sending $RATE numbered messages/s for $DURATION"
	"$BIN"/msggen -nats "nats://$NATS_ADDR" -numbered -rate "$RATE" -n "$per" -max "$CLIENTS" -procs "$PROCS" \
		-every 60s -duration "$(( dur + 60 ))s" -summary "$out/msggen.json" > "$out/msggen.out" 2>&1
fi
guarded "$out/memory-guard.txt" study
# Wait until the gateway processes (admin ports GW_ADMIN_PORT, +1, ...)
# have written every message the router handed them, then a little for
# the clients to read the last ones: a flat-out run leaves a backlog.
written() {
	local i=0 s=0 v
	while v=$(curl -sf -m 2 "http://127.0.0.1:$((GW_ADMIN_PORT + i))/stats" | awk -F'[:,]' '/"messages"/ {gsub(/ /,"",$2); print $2; exit}') && [ -n "$v" ]; do
		s=$((s + v)); i=$((i + 1))
	done
	echo $s
}
want=$(awk -F'[:,]' '/"delivered"/ {gsub(/ /,"",$2); print $2; exit}' "$out/msggen.json")
for i in $(seq 600); do
	[ "$(written)" -ge "$want" ] && break
	[ "$i" = 600 ] && echo "study: after 10 minutes the gateways had written $(written) of $want messages" >&2
	sleep 1
done
sleep 5
cp /proc/meminfo "$out/meminfo-peak.txt"
curl -sf "http://$GW_ADMIN/stats" > "$out/gateway-stats.json" || true # the first gateway process
curl -sf "http://$ROUTER_ADMIN/stats" > "$out/router-stats.json" || true

for f in "${floods[@]}"; do kill -INT "$f"; done
for f in "${floods[@]}"; do wait "$f" || true; done
kill -TERM "$gateway"; wait "$gateway" || true
kill -TERM "$router"; wait "$router" || true
pids=()

"$BIN"/floodtest plot "$out/mochimem.log" -o "$out/mem.png" \
	-title "Gateway memory, $CLIENTS clients, $([ "$FAST" = 1 ] && echo "$total msgs flat out ($DURATION at $RATE/s)" || echo "$RATE msg/s, $DURATION")"
"$BIN"/floodtest plot "$out/mochimem.log" -o "$out/mem.svg" -title "Gateway memory, $CLIENTS clients"
"$BIN"/floodtest report -dir "$out"
if [ "$MIX" = 1 ]; then
	{
		echo
		echo "## Mixed clients"
		echo
		for k in "" -sse -poll; do
			echo "- floodtest$k: \`$(grep '^floodtest: done' "$out/floodtest$k.out")\`"
		done
	} >> "$out/summary.md"
fi
echo "study: done: $out/summary.md"
