#!/usr/bin/env bash
# make bench-scale: the capacity model's constants, measured on loopback
# with many gateway processes against one router, and the model they
# give (docs/SCALING.md). GATEWAYS gateway processes (default 50) hold
# N chunked streams (default 100,000: 2,000 each) from floodtest; msggen
# sends RATE numbered messages/s (default 10,000) to random ids among
# them for SECONDS_ (60). It reads the router's and the gateways' CPU
# time (/proc/PID/stat) and resident memory, the embedded NATS server's
# message and byte counters (/varz), and what the router delivered:
# before and after IDLE seconds (20) of holding the streams with no
# messages (what the processes cost just running: heartbeats, sweeps,
# the runtime), and after the messages. It prints per delivered message
# the router's and the gateways' CPU above that idle cost, NATS messages
# and bytes; per login, router bytes; per client, gateway bytes; per
# process, the idle CPU. Then what 100 million clients and 1 million
# messages/s would take at those figures (TARGET_CLIENTS, TARGET_RATE).
#
# PARTITIONS=P (default 1) splits the ids over P routers (router
# -partitions, gateways and msggen likewise); REDUNDANT=1 gives each
# partition two -redundant routers (a leader and a standby, every
# position in the replicated history log). With more than one router,
# their embedded NATS servers form one cluster, and the figures add up
# every router and every server (NATS counts then include the hops
# between servers).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
GATEWAYS=${GATEWAYS:-50}
N=${N:-100000}
RATE=${RATE:-10000}
SECONDS_=${SECONDS_:-60}
IDLE=${IDLE:-20}
RAMP=${RAMP:-5000}
TARGET_CLIENTS=${TARGET_CLIENTS:-100000000}
TARGET_RATE=${TARGET_RATE:-1000000}
PARTITIONS=${PARTITIONS:-1}
REDUNDANT=${REDUNDANT:-0}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-scale-p$PARTITIONS-r$REDUNDANT
mkdir -p "$out"
echo "bench-scale: writing to $out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
setsys net.core.somaxconn 65535
setsys net.ipv4.tcp_max_syn_backlog 65535

tck=$(getconf CLK_TCK)
cpu() { # pids...: their and their children's user+system CPU seconds
	local p
	for p in $(family "$@"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk -v t="$tck" '{s += $1} END {printf "%.2f", s / t}'
}
# Routers: router i serves partition i / per; NATS on 4592+i, its
# cluster port 6592+i, admin 8600+i, monitor 8700+i.
per=$(( REDUNDANT ? 2 : 1 )); routers=$(( PARTITIONS * per ))
urls=""; routes=""
for i in $(seq 0 $(( routers - 1 ))); do urls+="${urls:+,}nats://127.0.0.1:$(( 4592 + i ))"; routes+="${routes:+,}nats://127.0.0.1:$(( 6592 + i ))"; done
varz() { # in_msgs out_msgs in_bytes out_bytes, summed over the servers
	python3 -c 'import json,sys,urllib.request as u
vs=[json.load(u.urlopen("http://127.0.0.1:%d/varz" % (8700 + i))) for i in range(int(sys.argv[1]))]
print(*[sum(v[k] for v in vs) for k in ("in_msgs","out_msgs","in_bytes","out_bytes")])' "$routers"
}
delivered() { # copies delivered, summed over the routers
	for i in $(seq 0 $(( routers - 1 ))); do curl -sf http://127.0.0.1:$(( 8600 + i ))/stats; done | awk -F'[:,]' '/"delivered"/ {gsub(/ /,"",$2); s += $2} END {print s+0}'
}
rpids=()
for i in $(seq 0 $(( routers - 1 ))); do
	args=(-nats-addr 127.0.0.1:$(( 4592 + i )) -admin 127.0.0.1:$(( 8600 + i )) -nats-monitor 127.0.0.1:$(( 8700 + i )) -log-level warn)
	if [ "$routers" -gt 1 ]; then
		store=$out/store$i; mkdir -p "$store"
		args+=(-nats-cluster 127.0.0.1:$(( 6592 + i )) -nats-routes "$routes" -store "$store" -store-replicas $(( routers >= 3 ? 3 : 1 )))
	fi
	[ "$PARTITIONS" -gt 1 ] && args+=(-partitions "$PARTITIONS" -partition $(( i / per )))
	[ "$REDUNDANT" = 1 ] && args+=(-redundant)
	"$BIN"/router "${args[@]}" > "$out/router$i.log" 2>&1 &
	rpids+=($!); pids+=($!)
done
router=${rpids[*]}
for i in $(seq 0 $(( routers - 1 ))); do wait_http http://127.0.0.1:$(( 8600 + i ))/stats 120; done
"$BIN"/gateway -procs "$GATEWAYS" -expect "$N" -addr 127.0.0.1:8590 -admin off -nats "$urls" -partitions "$PARTITIONS" -name scale -log-level warn > "$out/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
for i in $(seq 0 $(( routers - 1 ))); do
	for _ in $(seq 300); do [ "$(curl -sf http://127.0.0.1:$(( 8600 + i ))/stats | grep -c '"name": "scale')" -ge "$GATEWAYS" ] && break; sleep 0.2; done
done
sleep 2
r_rss0=$(rss $router); g_rss0=$(rss "$gw")
"$BIN"/floodtest -url http://127.0.0.1:8590/test/ -n "$N" -rate "$RAMP/s" -duration "$(( N / RAMP + SECONDS_ + 180 ))s" -every 10s \
	-summary "$out/floodtest.json" > "$out/floodtest.out" 2>&1 &
fl=$!; pids+=("$fl")
for _ in $(seq $(( N / RAMP * 4 + 120 ))); do grep -q "^Stats: {$N," "$out/floodtest.out" && break; sleep 1; done
grep -q "^Stats: {$N," "$out/floodtest.out" || { echo "bench-scale: not every client streams: $(tail -1 "$out/floodtest.out")" >&2; exit 1; }
sleep 5
r_rss1=$(rss $router); g_rss1=$(rss "$gw")
r_each=$(for p in $router; do echo -n "$(rss "$p") "; done)
t_a=$(date +%s.%N); r_cpua=$(cpu $router); g_cpua=$(cpu "$gw")
sleep "$IDLE"
t_b=$(date +%s.%N); r_cpu0=$(cpu $router); g_cpu0=$(cpu "$gw"); d0=$(delivered)
read -r in0 outm0 inb0 outb0 <<< "$(varz)"
"$BIN"/msggen -nats "$urls" -partitions "$PARTITIONS" -numbered -rate "$RATE" -n $(( RATE * SECONDS_ / 4 )) -procs 4 -max "$N" -every 0 \
	-summary "$out/msggen.json" > "$out/msggen.out" 2>&1 || true
sleep 3
t_c=$(date +%s.%N); r_cpu1=$(cpu $router); g_cpu1=$(cpu "$gw"); d1=$(delivered)
read -r in1 outm1 inb1 outb1 <<< "$(varz)"
kill -INT "$fl"; wait "$fl" || true
cat "$out/msggen.out"
grep "^floodtest: done" "$out/floodtest.out" || true

python3 - "$out" <<PY | tee "$out/table.md"
n, g, rate, secs = $N, $GATEWAYS, $RATE, $SECONDS_
d = $d1 - $d0
# CPU per second of just running (no messages), and above it while the
# messages flowed.
ridle, gidle = ($r_cpu0 - $r_cpua) / ($t_b - $t_a), ($g_cpu0 - $g_cpua) / ($t_b - $t_a)
busy = $t_c - $t_b
rcpu, gcpu = max($r_cpu1 - $r_cpu0 - ridle * busy, 0), max($g_cpu1 - $g_cpu0 - gidle * busy, 0)
msgs = ($in1 - $in0) + ($outm1 - $outm0)
nbytes = ($inb1 - $inb0) + ($outb1 - $outb0)
rlogin = ($r_rss1 - $r_rss0) * 1024 / n
gclient = ($g_rss1 - $g_rss0) / n
tc, tr = $TARGET_CLIENTS, $TARGET_RATE
print("| measured | figure |")
print("|---|---|")
parts, per = $PARTITIONS, $per
each = [int(x) for x in "$r_each".split()]
print(f"| routers | {len(each)}: {parts} partition(s) of the ids, {per} router(s) each{' (-redundant)' if per > 1 else ''} |")
print(f"| gateway processes, streams, messages asked | {g}, {n} ({n // g} each), {rate}/s for {secs} s |")
print(f"| copies delivered while measured | {d} |")
print(f"| CPU just running, no messages ({$IDLE} s) | router {ridle * 100:.1f}% of a core; gateways {gidle * 100:.1f}% ({gidle / g * 100:.2f}% per process) |")
print(f"| router CPU per delivered message, above that | **{rcpu / max(d, 1) * 1e6:.2f} µs** ({rcpu:.2f} s in {busy:.0f} s) |")
print(f"| gateways' CPU per delivered message, above that | **{gcpu / max(d, 1) * 1e6:.2f} µs** ({gcpu:.2f} s over {g} processes) |")
print(f"| NATS messages (in + out) per delivered message | **{msgs / max(d, 1):.3f}** ({msgs}) |")
print(f"| NATS bytes (in + out) per delivered message | **{nbytes / max(d, 1):.0f}** |")
print(f"| router resident bytes per login (all routers) | **{rlogin:.0f}** ({$r_rss0} -> {$r_rss1} KB) |")
print(f"| resident KB of each router with the streams held | {', '.join(str(x) for x in each)} (each holds the logins of its partition: {n // parts}) |")
print(f"| router resident bytes per login it holds | **{rlogin * parts / len(each):.0f}** |")
print(f"| gateway resident KB per client ({g} processes) | **{gclient:.2f}** ({$g_rss0} -> {$g_rss1} KB) |")
print()
print(f"At these figures, {tc:,} clients and {tr:,} delivered messages/s need:")
print()
print(f"- router CPU: {tr * rcpu / max(d, 1):.1f} cores for routing; router memory for logins: {tc * rlogin / 2**30:.1f} GiB in all, {tc * rlogin / 2**30 / len(each):.1f} GiB on each of {len(each)} routers ({parts} partition(s))")
print(f"- gateway CPU: {tr * gcpu / max(d, 1):.1f} cores for delivery, plus {gidle / g:.3f} of a core per gateway process just running; gateway memory (user space): {tc * gclient / 2**20:.1f} GiB")
print(f"- NATS: {tr * msgs / max(d, 1):,.0f} messages/s and {tr * nbytes / max(d, 1) / 2**20:.0f} MiB/s through the servers")
PY
echo | tee -a "$out/table.md"
echo "Made by \`make bench-scale\` (GATEWAYS=$GATEWAYS N=$N RATE=$RATE SECONDS_=$SECONDS_ IDLE=$IDLE PARTITIONS=$PARTITIONS REDUNDANT=$REDUNDANT) on $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)." | tee -a "$out/table.md"
