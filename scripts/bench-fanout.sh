#!/usr/bin/env bash
# make bench-fanout: topics and broadcast at size, one table from one run.
#
#   1. Broadcast to N streams (default 100,000; FULL=1: 1,000,000),
#      BROADCASTS of them (20; FULL: 5), one every EVERY seconds (2; FULL:
#      10), so that each reaches the last stream before the next starts
#      (the table says if one did not): first to the kernel's floor,
#      bench/floor, a bare program that writes the same chunk to the same
#      N loopback sockets in tight loops of write(2) on as many threads as
#      the gateway has writers, in as many processes; then to the gateway
#      (msggen -broadcast-every -stamp). The same floodtest reads both.
#      For each: the time from sending a broadcast to the last stream
#      having it, p50 and p99, and the CPU time per delivery (the
#      gateway's processes over the broadcasts, the floor's writing); and
#      the gateway's figures as ratios to the floor's.
#   2. A topic of M members (default 10,000, ids 1..M, floodtest -topics 1)
#      while N others are connected: msggen publishes P messages (default
#      2,000) to it at R/s (default 100), numbered; every member must get
#      every message once, in order (floodtest checks the numbers), and
#      the others none; latency p50 and p99 from msggen's stamp. The
#      members are read by MEMBER_WORKERS floodtest processes (4): one
#      process, one reading thread, fell behind at 500,000 messages/s
#      beside six gateways (up to 29 MB unread in its sockets, p99 1.6 s)
#      and measured itself, not the gateway. First (FLOOR=1), the floor
#      for it: bench/floor -members writes the same messages at the same
#      rate to the same members, gathered every FLOOR_GATHER (one run
#      each, default "100ms 200ms"), read by the same floodtests; the
#      table gives both latencies and CPU per delivery.
#   3. The Haskell chat: CHAT WebSocket clients (default 10,000) in one
#      room, each publishing a stamped message into it every PERIOD
#      (default 10s; floodtest -ws-publish), for HOLD seconds (60): what
#      each client received per publish, and the latency from the
#      publisher's clock to every receiver, p50 and p99. make bench-chat
#      runs the same alone (SWEEP= for several sizes, with a chart).
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
EVERY=${EVERY:-2} # seconds between broadcasts (at 100,000 one takes about 1 s)
CHAT=${CHAT:-10000}
PERIOD=${PERIOD:-10s}
HOLD=${HOLD:-60}
PHASES=${PHASES:-"broadcast topic chat"}
MEMBER_WORKERS=${MEMBER_WORKERS:-4}
FLOOR=${FLOOR:-1}
FLOOR_GATHER=${FLOOR_GATHER:-"100ms 200ms"} # the topic's floor: one run per gather
ROUTER_FLAGS=()
if [ "${FULL:-0}" = 1 ]; then
	# A million streams: the broadcasts only (the topic test is defined
	# at 100,000), ramped like bench-million, with a router that waits
	# longer for heartbeats from ~100 processes on two cores.
	# FULL_N=2000000 FULL_RAMP=5000 FULL_BROADCASTS=1: two million (make
	# bench-2m); above a million, ramp at 5,000/s (at 20,000/s the
	# connections queue faster than ~200 processes serve them).
	N=${FULL_N:-1000000} RAMP=${FULL_RAMP:-20000} BROADCASTS=${FULL_BROADCASTS:-5} EVERY=${FULL_EVERY:-10} PHASES=broadcast
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
	"$BIN"/gateway -procs "$procs" -expect "$1" -addr 127.0.0.1:8580 -admin 127.0.100.1:8600 -nats nats://127.0.0.1:4532 -name fanout \
		${WRITE_DELAY:+-write-delay "$WRITE_DELAY"} -log-level warn > "$out/$phase.gateway.log" 2>&1 &
	gw=$!; pids+=("$gw")
	for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8589/stats | grep -c '"name": "fanout')" -ge "$procs" ] && break; sleep 0.1; done
	sleep 1
}
# metrics_urls: the router's and every gateway process's /metrics. The
# gateways' admin ports are on 127.0.100.1, which no client uses as its
# source address: with the ephemeral range widened, a connection from
# 127.0.0.1 may hold port 86xx there and a restarted process could not
# bind it.
metrics_urls() {
	echo http://127.0.0.1:8589/metrics
	for i in $(seq 0 $((procs - 1))); do echo "http://127.0.100.1:$((8600 + i))/metrics"; done
}
# measure_start / measure_stop: the stage histograms over what runs
# between them ($out/$phase.stages.md), and the gateways' write delay
# sampled every second ($out/$phase.delay.log: the largest of all
# processes, in ms).
measure_start() {
	scripts/stages.py save $(metrics_urls) > "$out/$phase.stages-before.json"
	(while :; do
		for u in $(metrics_urls | tail -n +2); do curl -s -m 1 "$u" | grep '^comet_gateway_write_delay_seconds ' || true; done |
			awk '{ if ($2 > m) m = $2 } END { printf "%d %.1f\n", systime(), m * 1000 }'
		sleep 1
	done) > "$out/$phase.delay.log" 2>/dev/null &
	sampler=$!; pids+=("$sampler") # stop_and_restore waits for every child
}
measure_stop() {
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
	scripts/stages.py save $(metrics_urls) > "$out/$phase.stages-after.json"
	scripts/stages.py table "$out/$phase.stages-before.json" "$out/$phase.stages-after.json" > "$out/$phase.stages.md"
	awk '{ n++; s += $2; if ($2 > m) m = $2 } END { if (n) printf "| gateways'"'"' write delay, sampled each second | %d samples | mean %.1f ms | max %.1f ms | |\n", n, s / n, m }' \
		"$out/$phase.delay.log" >> "$out/$phase.stages.md"
	{ echo; echo "Stages, $phase:"; echo; cat "$out/$phase.stages.md"; } >> "$out/stages.md"
}
stop_system() {
	kill -TERM "$gw"; wait "$gw" || true
	kill -TERM "$router"; wait "$router" || true
	pids=()
	sleep 3
}
flood() { # name first n [flags...]; sets flooder. FLOOD_PATH: /test/ or /ws/; FLOOD_PORT: 8580
	local name=$1 first=$2 n=$3
	shift 3
	"$BIN"/floodtest -url "http://127.0.0.1:${FLOOD_PORT:-8580}${FLOOD_PATH:-/test/}" -first "$first" -n "$n" -rate "$RAMP/s" -duration 20m -every 5s \
		-summary "$out/$phase.$name.json" "$@" > "$out/$phase.$name.out" 2>&1 &
	flooder=$!
	# Past what the machine holds, the clients are stopped rather than
	# the machine stalled (GUARD_MB, scripts/bench-lib.sh).
	memory_guard "$out/memory-guard.txt" "$flooder"
	pids+=("$guard")
	memory_log "$out/$phase.$name.memory.log" "$flooder"
	pids+=("$memlogger")
}
wait_streaming() { # file n
	for _ in $(seq $(( $2 / RAMP * 4 + 120 ))); do streaming "$1" "$2" && return 0; guarded "$out/memory-guard.txt" bench-fanout; sleep 1; done
	echo "bench-fanout: not every client streams: $(tail -1 "$1")" >&2
	return 1
}
field() { [ -f "$1" ] || return 0; grep -o "\"$2\": [0-9.]*" "$1" | head -1 | awk '{print $2}'; }
# cpu PID...: the user and system CPU seconds of the pids and their children.
cpu() { for p in $(family "$@"); do cat "/proc/$p/stat" 2>/dev/null || true; done |
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); t += $12 + $13 } END { printf "%.3f", t / hz }'; }
# until_chunks FILE N SECONDS: wait until floodtest's output counts N chunks.
until_chunks() {
	for _ in $(seq "$3"); do
		[ "$(chunks "$1")" -ge "$2" ] 2>/dev/null && return 0
		guarded "$out/memory-guard.txt" bench-fanout
		sleep 1
	done
	echo "bench-fanout: $(chunks "$1") of $2 chunks after $3 s" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "?" }'; }
ms() { awk -v ns="${1:-0}" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
per() { awk -v c="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / n; else print "?" }'; } # CPU s, deliveries: us each
# jsum FIELD FILE...: the sum of a numeric field over the JSON lines the
# floor processes printed.
jsum() { local f=$1; shift; cat "$@" | grep -o "\"$f\":[0-9.e-]*" | awk -F: '{ s += $2 } END { print s + 0 }'; }
# idle_rate PID: what the gateway spends a second holding its streams
# idle (sweeps, heartbeats, NATS), over 10 s; cpu_less_idle CPU0 CPU1
# RATE T0 T1: its CPU seconds between two readings, less that rate. The
# floor has no such work.
idle_rate() { local a b; a=$(cpu "$1"); sleep 10; b=$(cpu "$1"); awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", (b - a) / 10 }'; }
cpu_less_idle() { awk -v a="$1" -v b="$2" -v i="$3" -v t0="$4" -v t1="$5" 'BEGIN { printf "%.3f", b - a - i * (t1 - t0) }'; }

{
	echo "| test | streams | gateway processes | sent | received | errors | result |"
	echo "|---|---|---|---|---|---|---|"
} > "$out/table.md"

# 1. Broadcast to N streams: the floor, then the gateway.
phase=broadcast
if [[ " $PHASES " == *" broadcast "* ]]; then
procs=$(( (N + PER - 1) / PER ))
wait_for=$(( N / RAMP * 4 + 300 )) # seconds every broadcast may take to arrive
# a. The floor: as many processes as the gateway's, on one port (FLOOR=0:
# not run; at two million the floor's net.Conns do not fit beside the
# kernel's sockets, docs/BENCHMARKS.md "Two million").
floor_cpu=0 floor_written=0
if [ "$FLOOR" = 1 ]; then
floors=()
for i in $(seq "$procs"); do
	"$BIN"/floor -addr 127.0.0.1:8590 -reuseport -count "$BROADCASTS" -every "${EVERY}s" -start-on-usr1 -hold 30m -timeout 30m \
		> "$out/$phase.floor.$i.out" 2>&1 &
	floors+=("$!"); pids+=("$!")
done
sleep 1
FLOOD_PORT=8590 flood floor 1 "$N"; fl=$flooder; pids+=("$fl")
wait_streaming "$out/$phase.floor.out" "$N"
sleep 2
kill -USR1 "${floors[@]}"
until_chunks "$out/$phase.floor.out" $((N + N * BROADCASTS)) $(( BROADCASTS * EVERY + wait_for ))
sleep 2
kill -INT "$fl"; wait "$fl" || true
kill -TERM "${floors[@]}"; wait "${floors[@]}" || true
pids=()
floor_cpu=$(printf "%.3f" "$(jsum cpu_seconds "$out"/$phase.floor.*.out)")
floor_written=$(jsum written "$out"/$phase.floor.*.out)
sleep 3
fi
# b. The gateway.
start_system "$N"
flood all 1 "$N"; fl=$flooder; pids+=("$fl")
wait_streaming "$out/$phase.all.out" "$N"
sleep 2
# What the gateway spends holding N idle streams is taken out of its
# broadcast CPU.
idle=$(idle_rate "$gw")
cpu0=$(cpu "$gw"); t0=$(date +%s.%N)
measure_start
"$BIN"/msggen -nats nats://127.0.0.1:4532 -n 0 -broadcast-every "${EVERY}s" -stamp -duration "$((BROADCASTS * EVERY))s$((EVERY * 500))ms" -every 0 \
	-summary "$out/$phase.msggen.json" > "$out/$phase.msggen.out" 2>&1 || true
until_chunks "$out/$phase.all.out" $((N + N * BROADCASTS)) "$wait_for"
cpu1=$(cpu "$gw"); t1=$(date +%s.%N)
measure_stop
sleep 2
kill -INT "$fl"; wait "$fl" || true
stop_system
b=$out/$phase.all.json f=$out/$phase.floor.json
got=$(received "$out/$phase.all.out")
gw_cpu=$(cpu_less_idle "$cpu0" "$cpu1" "$idle" "$t0" "$t1")
overlap=""
for j in "$b" $([ "$FLOOR" = 1 ] && echo "$f"); do
	if [ "$(field "$j" broadcast_max_ns | cut -d. -f1)" -gt $((EVERY * 1000000000)) ] 2>/dev/null; then
		overlap=" (a broadcast took longer than the ${EVERY} s between them: they overlapped)"
	fi
done
{
	echo
	echo "Broadcast to $N streams, $BROADCASTS broadcasts one every $EVERY s, $procs processes each:$overlap"
	echo "(the gateway's CPU is over the broadcasts, less its idle rate, $idle s/s with the $N streams held)"
	echo
	echo "| | received | time to the last stream p50 | p99 | max | CPU | CPU per delivery |"
	echo "|---|---|---|---|---|---|---|"
	if [ "$FLOOR" = 1 ]; then
		printf "| the floor (bench/floor) | %s | %s ms | %s ms | %s ms | %s s | %s us |\n" "$(received "$out/$phase.floor.out")" \
			"$(ms "$(field "$f" broadcast_p50_ns)")" "$(ms "$(field "$f" broadcast_p99_ns)")" "$(ms "$(field "$f" broadcast_max_ns)")" "$floor_cpu" "$(per "$floor_cpu" "$floor_written")"
	else
		echo "| the floor (bench/floor) | not run (FLOOR=0) | | | | | |"
	fi
	printf "| the gateway | %s | %s ms | %s ms | %s ms | %s s | %s us |\n" "$got" \
		"$(ms "$(field "$b" broadcast_p50_ns)")" "$(ms "$(field "$b" broadcast_p99_ns)")" "$(ms "$(field "$b" broadcast_max_ns)")" "$gw_cpu" "$(per "$gw_cpu" "$got")"
	[ "$FLOOR" = 1 ] && printf "| **gateway / floor** | | **%s** | **%s** | %s | | **%s** |\n" \
		"$(ratio "$(field "$b" broadcast_p50_ns)" "$(field "$f" broadcast_p50_ns)")" "$(ratio "$(field "$b" broadcast_p99_ns)" "$(field "$f" broadcast_p99_ns)")" \
		"$(ratio "$(field "$b" broadcast_max_ns)" "$(field "$f" broadcast_max_ns)")" "$(ratio "$(per "$gw_cpu" "$got")" "$(per "$floor_cpu" "$floor_written")")"
	echo
} > "$out/floor.md"
cat "$out/floor.md"
printf "| broadcast to every stream, one every %s s | %d | %d | %s broadcasts | %s | %s | time to the last stream: p50 **%s ms**, p99 **%s ms**, max %s ms (over %s broadcasts); %s |\n" \
	"$EVERY" "$N" "$procs" "$(field "$out/$phase.msggen.json" sent)" "$got" "$(errs "$out/$phase.all.out")" \
	"$(ms "$(field "$b" broadcast_p50_ns)")" "$(ms "$(field "$b" broadcast_p99_ns)")" "$(ms "$(field "$b" broadcast_max_ns)")" "$(field "$b" broadcasts)" \
	"$(if [ "$FLOOR" = 1 ]; then echo "floor p50 $(ms "$(field "$f" broadcast_p50_ns)") ms, p99 $(ms "$(field "$f" broadcast_p99_ns)") ms"; else echo "floor not run"; fi)" | tee -a "$out/table.md"
fi

# 2. A topic of M members among N others.
phase=topic
if [[ " $PHASES " == *" topic "* ]]; then
# a. The floor (bench/floor -members): the same messages at the same
# rate, written to the same members in tight loops of write(2), each
# gathered for FLOOR_GATHER (one run per value), the others held idle;
# read by the same floodtests.
procs=$(( (N + M + PER - 1) / PER ))
floor_rows=()
if [ "$FLOOR" = 1 ]; then
for g in $FLOOR_GATHER; do
	floors=()
	for i in $(seq "$procs"); do
		"$BIN"/floor -addr 127.0.0.1:8590 -reuseport -members "$M" -count "$P" -rate "$R" -gather "$g" -start-on-usr1 -hold 30m -timeout 30m \
			> "$out/$phase.floor-$g.$i.out" 2>&1 &
		floors+=("$!"); pids+=("$!")
	done
	sleep 1
	FLOOD_PORT=8590 flood "floor-$g-members" 1 "$M" -topics 1 -workers "$MEMBER_WORKERS"; fm=$flooder; pids+=("$fm")
	FLOOD_PORT=8590 flood "floor-$g-others" $((M + 1)) "$N"; fo=$flooder; pids+=("$fo")
	wait_streaming "$out/$phase.floor-$g-members.out" "$M"
	wait_streaming "$out/$phase.floor-$g-others.out" "$N"
	sleep 2
	kill -USR1 "${floors[@]}"
	until_chunks "$out/$phase.floor-$g-members.out" $((M + M * P)) $(( P / R + 90 ))
	sleep 2
	kill -INT "$fm" "$fo"; wait "$fm" "$fo" || true
	kill -TERM "${floors[@]}"; wait "${floors[@]}" || true
	pids=()
	fj=$out/$phase.floor-$g-members.json
	sum() { jsum "$1" "$out"/$phase.floor-"$g".*.out; }
	floor_rows+=("$(printf "| the floor, gathered every %s | %s | %s | %s ms | %s ms | %s us | %s writes, %s partial, %s late ticks |" "$g" \
		"$(received "$out/$phase.floor-$g-members.out")" "$(errs "$out/$phase.floor-$g-members.out")" "$(ms "$(field "$fj" p50_ns)")" "$(ms "$(field "$fj" p99_ns)")" \
		"$(per "$(sum cpu_seconds)" "$(sum written)")" \
		"$(sum writes)" "$(sum partial)" "$(sum late_ticks)")")
	sleep 3
done
fi
# b. The gateway.
start_system $((N + M))
flood members 1 "$M" -topics 1 -workers "$MEMBER_WORKERS"; members=$flooder; pids+=("$members")
flood others $((M + 1)) "$N"; others=$flooder; pids+=("$others")
wait_streaming "$out/$phase.members.out" "$M"
wait_streaming "$out/$phase.others.out" "$N"
sleep 2
idle=$(idle_rate "$gw")
cpu0=$(cpu "$gw"); t0=$(date +%s.%N)
measure_start
"$BIN"/msggen -nats nats://127.0.0.1:4532 -topics 1 -n "$P" -rate "$R" -numbered -stamp -every 5s \
	-summary "$out/$phase.msggen.json" > "$out/$phase.msggen.out" 2>&1 || true
for _ in $(seq 60); do
	[ "$(chunks "$out/$phase.members.out")" -ge $((M + M * P)) ] 2>/dev/null && break
	sleep 1
done
cpu1=$(cpu "$gw"); t1=$(date +%s.%N)
measure_stop
sleep 2
kill -INT "$members" "$others"; wait "$members" "$others" || true
stop_system
m=$out/$phase.members.json
gw_cpu=$(cpu_less_idle "$cpu0" "$cpu1" "$idle" "$t0" "$t1")
{
	echo
	echo "A topic of $M members at $R/s, $P messages, while $N others are held, $procs processes each (the gateway's CPU is over the messages, less its idle rate, $idle s/s):"
	echo
	echo "| | members received | errors | latency p50 | p99 | CPU per delivery | |"
	echo "|---|---|---|---|---|---|---|"
	[ "$FLOOR" = 1 ] && printf "%s\n" "${floor_rows[@]}"
	printf "| the gateway | %s | %s | %s ms | %s ms | %s us | write delay: %s |\n" "$(received "$out/$phase.members.out")" "$(errs "$out/$phase.members.out")" \
		"$(ms "$(field "$m" p50_ns)")" "$(ms "$(field "$m" p99_ns)")" \
		"$(per "$gw_cpu" "$(received "$out/$phase.members.out")")" \
		"$(tail -1 "$out/$phase.stages.md" | cut -d'|' -f4,5 --output-delimiter=',' | tr -s ' ')"
	echo
} > "$out/topic-floor.md"
cat "$out/topic-floor.md"
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
measure_start
sleep "$HOLD"
measure_stop
kill -INT "$fl"; wait "$fl" || true
stop_system
c=$out/$phase.chat.json
published=$(field "$c" published); got=$(received "$out/$phase.chat.out")
printf "| the Haskell chat: %d WebSockets in one room, each publishing every %s | %d | %d | %s publishes | %s | %s | each client %s messages per publish; latency from publish to each receiver p50 **%s ms**, p99 **%s ms** |\n" \
	"$CHAT" "$PERIOD" "$CHAT" "$procs" "$published" "$got" "$(errs "$out/$phase.chat.out")" \
	"$(awk -v g="$got" -v p="$published" -v c="$CHAT" 'BEGIN { if (p > 0) printf "%.0f of %d", g / p, c; else print "?" }')" \
	"$(ms "$(field "$c" p50_ns)")" "$(ms "$(field "$c" p99_ns)")" | tee -a "$out/table.md"
fi

[ -f "$out/floor.md" ] && cat "$out/floor.md" >> "$out/table.md"
[ -f "$out/stages.md" ] && cat "$out/stages.md" >> "$out/table.md"
{
	echo
	echo "Made by \`make bench-fanout${FULL:+ FULL=$FULL}\` (N=$N M=$M MEMBER_WORKERS=$MEMBER_WORKERS P=$P R=$R BROADCASTS=$BROADCASTS EVERY=$EVERY CHAT=$CHAT PERIOD=$PERIOD HOLD=$HOLD RAMP=$RAMP${WRITE_DELAY:+ WRITE_DELAY=$WRITE_DELAY}) on $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)."
} >> "$out/table.md"
cat "$out/table.md"
