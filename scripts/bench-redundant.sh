#!/usr/bin/env bash
# make bench-redundant: what redundant routers cost, side by side in one
# run. N SSE streams (floodtest, checking order, gaps and repeats) on one
# gateway take M numbered messages sent flat out by msggen, through
#   alone:     one router on its embedded NATS (positions in its memory);
#   redundant: three routers whose embedded servers form a NATS cluster,
#              -redundant -store-replicas 3 (the leader writes every
#              position to the replicated history log before it acks).
# Reported per case: messages acked per second (msggen), messages the
# streams received, lost and repeated, and the ratio.
#
#   N=1000 M=300000 MSGGEN_PROCS=2 ./scripts/bench-redundant.sh
# Outputs in bench/redundant-<timestamp>/ (table.md and every log).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
BIN=${BIN:-bin}
N=${N:-1000}
M=${M:-300000}
MSGGEN_PROCS=${MSGGEN_PROCS:-2}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-redundant
mkdir -p "$out"
trap stop_and_restore EXIT
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

echo "| routers | streams | messages | acked msgs/s (msggen) | received | lost | repeated | not acked |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|" >> "$out/table.md"
declare -A rate
for mode in alone redundant; do
	log=$out/$mode
	store=$(mktemp -d)
	routes=nats://127.0.0.1:7741,nats://127.0.0.1:7742,nats://127.0.0.1:7743
	if [ "$mode" = alone ]; then
		"$BIN"/router -nats-addr 127.0.0.1:7731 -admin 127.0.0.1:7751 -store "$store/0" -log-level warn > "$log.router0.log" 2>&1 &
		pids+=($!)
		urls=nats://127.0.0.1:7731
	else
		for i in 1 2 3; do
			"$BIN"/router -redundant -nats-addr 127.0.0.1:773$i -admin 127.0.0.1:775$i -nats-cluster 127.0.0.1:774$i -nats-routes "$routes" \
				-store "$store/$i" -store-replicas 3 -log-level warn > "$log.router$i.log" 2>&1 &
			pids+=($!)
		done
		urls=nats://127.0.0.1:7731,nats://127.0.0.1:7732,nats://127.0.0.1:7733
	fi
	wait_http http://127.0.0.1:7751/stats 60
	"$BIN"/gateway -addr 127.0.0.1:7760 -admin off -nats "$urls" -name red -log-level warn > "$log.gateway.log" 2>&1 &
	gw=$!; pids+=("$gw")
	# Every router hears the gateway; with -redundant, one leads.
	for _ in $(seq 600); do
		s=$(curl -sf http://127.0.0.1:7751/stats || true)
		case $mode:$s in alone:*'"gateways": 1'*) break ;; redundant:*'"gateways": 1'*) [ -n "$(for i in 1 2 3; do curl -sf http://127.0.0.1:775$i/stats; done | grep '"role": "leader"')" ] && break ;; esac
		sleep 0.1
	done
	"$BIN"/floodtest -url http://127.0.0.1:7760/sse/ -n "$N" -rate 2000/s -duration 30m -every 5s -summary "$log.floodtest.json" > "$log.floodtest.out" 2>&1 &
	fl=$!; pids+=("$fl")
	for _ in $(seq 300); do grep -q "^Stats: {$N," "$log.floodtest.out" && break; sleep 1; done
	"$BIN"/msggen -nats "$urls" -numbered -interval 0 -n $((M / MSGGEN_PROCS)) -max "$N" -procs "$MSGGEN_PROCS" \
		-every 10s -summary "$log.msggen.json" > "$log.msggen.out" 2>&1 || true
	sleep 3
	kill -INT "$fl"; wait "$fl" || true
	sent=$(json "$log.msggen.json" 'd["sent"]')
	r=$(json "$log.msggen.json" '"%.0f" % d["rate"]')
	unacked=$(json "$log.msggen.json" 'd["unacknowledged"]')
	got=$(json "$log.floodtest.json" 'd["stats"]["messages"]')
	lost=$(json "$log.floodtest.json" '(d["stats"]["errors"] or {}).get("lost", 0)')
	dup=$(json "$log.floodtest.json" '(d["stats"]["errors"] or {}).get("duplicate", 0)')
	rate[$mode]=$r
	echo "| $mode | $N SSE | $sent | $r | $got | $lost | $dup | $unacked |" >> "$out/table.md"
	stop_and_restore
	pids=()
	rm -rf "$store"
done
awk -v a="${rate[alone]}" -v r="${rate[redundant]}" 'BEGIN { printf "\nredundant / alone: %.2f of the acked rate\n", r / a }' >> "$out/table.md"
echo "command: N=$N M=$M MSGGEN_PROCS=$MSGGEN_PROCS ./scripts/bench-redundant.sh ($(date -u +%F))" >> "$out/table.md"
cat "$out/table.md"
