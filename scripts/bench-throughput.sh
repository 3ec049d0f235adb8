#!/usr/bin/env bash
# make bench-throughput: delivered messages per second, end to end, in one
# run on this machine: msggen sends M numbered messages flat out to N
# floodtest streams (floodtest checks every one: order, gaps, repeats),
# through this router and `gateway -procs P`, with and without
# -write-delay; nginx+nchan fed the same number of messages by HTTP POSTs
# (bench/nchanpub) to the same number of subscribers; and the router alone
# (go test -bench BenchmarkRoute). Rates are the messages the clients
# received per second while messages flowed (floodtest's memory log, one
# sample a second), so they count delivery, not acceptance.
#
#   CASES="10000:1:default 10000:1:off 100000:6:default 100000:6:off"
#   N:PROCS:WRITE_DELAY, where default is the gateway's (adaptive, at most
#   4s), off is -write-delay -1s (one write per client per round, never
#   delayed), anything else is passed as -write-delay.
#   M=10000000 messages per case; NCHAN=1 adds nchan for each N, fed
#   NCHAN_M=2000000 messages (its HTTP POSTs are slower to send; the rate
#   is what counts).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
CASES=${CASES:-"10000:1:default 10000:1:off 100000:6:default 100000:6:off"}
M=${M:-10000000}
NCHAN=${NCHAN:-1}
NCHAN_M=${NCHAN_M:-2000000}
RAMP=${RAMP:-20000}
MSGGEN_PROCS=${MSGGEN_PROCS:-4}
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs

out=bench/results/throughput-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
echo "bench-throughput: writing to $out"
# rate LOG: the mean and the highest messages/s received while messages
# flowed, from a floodtest memory log (column 7: messages so far).
rate() {
	awk -F'\t' 'NR > 1 && $7 > m { d = $7 - m; t = $2 - u; if (t > 0) { s += d; n += t; if (d / t > p) p = d / t } }
		{ m = $7; u = $2 } END { if (n > 0) printf "%.0f %.0f", s / n, p; else print "0 0" }' "$1"
}
streaming() { grep -q "^Stats: {$1," "$2"; }

echo "| system | streams | processes | -write-delay | messages | accepted by the sender (msgs/s) | received | lost | duplicated | **delivered msgs/s** (mean) | highest msgs/s | messages per write |" > "$out/table.md"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|" >> "$out/table.md"
port=8600
declare -A ours
for c in $CASES; do
	IFS=: read -r n procs delay <<< "$c"
	port=$((port + 1))
	log=$out/comet-$n-$procs-$delay
	"$BIN"/router -nats-addr 127.0.0.1:4522 -admin 127.0.0.1:8599 -log-level warn > "$log.router.log" 2>&1 &
	router=$!; pids+=("$router")
	wait_http http://127.0.0.1:8599/stats
	wd=()
	case $delay in
	default) ;;
	off) wd=(-write-delay -1s) ;;
	*) wd=(-write-delay "$delay") ;;
	esac
	"$BIN"/gateway -procs "$procs" -expect "$n" -addr 127.0.0.1:$port -admin 127.0.0.1:8590 -nats nats://127.0.0.1:4522 -name tput \
		"${wd[@]}" -log-level warn > "$log.gateway.log" 2>&1 &
	gw=$!; pids+=("$gw")
	for _ in $(seq 100); do [ "$(curl -sf http://127.0.0.1:8599/stats | grep -c '"name": "tput')" -ge "$procs" ] && break; sleep 0.1; done
	sleep 1
	"$BIN"/floodtest -url "http://127.0.0.1:$port/test/" -n "$n" -rate "$RAMP/s" -duration 30m -every 5s \
		-memlog "$log.mem.log" -memlog-every 1s -gateway-pids "$gw" -router-pids "$router" -summary "$log.floodtest.json" > "$log.floodtest.out" 2>&1 &
	fl=$!; pids+=("$fl")
	for _ in $(seq 300); do streaming "$n" "$log.floodtest.out" && break; sleep 1; done
	"$BIN"/msggen -nats nats://127.0.0.1:4522 -numbered -interval 0 -n $((M / MSGGEN_PROCS)) -max "$n" -procs "$MSGGEN_PROCS" \
		-every 10s -summary "$log.msggen.json" > "$log.msggen.out" 2>&1 || true
	want=$(( M / MSGGEN_PROCS * MSGGEN_PROCS ))
	for _ in $(seq 300); do
		[ "$(tail -1 "$log.mem.log" | cut -f7)" -ge "$want" ] 2>/dev/null && break
		sleep 1
	done
	sleep 2
	writes=0; msgs=0
	for i in $(seq 0 $((procs - 1))); do
		s=$(curl -sf "http://127.0.0.1:$((8590 + i))/stats" || true)
		w=$( (grep -o '"writes": [0-9]*' <<< "$s" || true) | tr -dc 0-9)
		m=$( (grep -o '"messages": [0-9]*' <<< "$s" || true) | head -1 | tr -dc 0-9)
		writes=$((writes + ${w:-0})); msgs=$((msgs + ${m:-0}))
	done
	kill -INT "$fl"; wait "$fl" || true
	kill -TERM "$gw"; wait "$gw" || true
	kill -TERM "$router"; wait "$router" || true
	pids=()
	read -r mean peak <<< "$(rate "$log.mem.log")"
	accepted=$( (grep -o '"rate": [0-9.]*' "$log.msggen.json" || true) | tr -dc 0-9. | cut -d. -f1)
	received=$( (grep -o "[0-9]* messages received" "$log.floodtest.out" || true) | tail -1 | cut -d' ' -f1); received=${received:-0}
	lost=$( (grep -o "lost [0-9]*" "$log.floodtest.out" || true) | tail -1 | cut -d' ' -f2); lost=${lost:-0}
	undelivered=$(( want > received ? want - received : 0 ))
	dup=$( (grep -o "duplicate [0-9]*" "$log.floodtest.out" || true) | tail -1 | cut -d' ' -f2); dup=${dup:-0}
	per=$(awk -v m="$msgs" -v w="$writes" 'BEGIN { if (w > 0) printf "%.1f", m / w; else print "?" }')
	printf "| comet | %d | %d | %s | %d | %s | %s | %d | %d | **%s** | %s | %s |\n" "$n" "$procs" "$delay" "$want" "$accepted" "$received" \
		$((lost + undelivered)) "$dup" "$mean" "$peak" "$per" | tee -a "$out/table.md"
	[ "$delay" = default ] && ours[$n]=$mean
	[ -z "${ours[$n]:-}" ] && ours[$n]=$mean
	sleep 5
done

declare -A theirs
if [ "$NCHAN" = 1 ]; then
	if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
		echo "bench-throughput: installing nginx-light and libnginx-mod-nchan"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan > "$out/apt.log" 2>&1 || {
			apt-get update -qq >> "$out/apt.log" 2>&1
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >> "$out/apt.log" 2>&1
		}
	fi
	go build -o "$BIN"/nchanpub ./bench/nchanpub
	for n in $(for c in $CASES; do echo "${c%%:*}"; done | sort -un); do
		procs=$(( (n + 18999) / 19000 ))
		port=$((port + 1))
		log=$out/nchan-$n
		mkdir -p "$log.nginx"
		sed -e "s#@PREFIX@#$PWD/$log.nginx#g" -e "s#@PORT@#$port#g" -e "s#@WORKERS@#$procs#g" bench/nchan/nginx.conf.in > "$log.nginx/nginx.conf"
		nginx -c "$PWD/$log.nginx/nginx.conf" -p "$PWD/$log.nginx" > "$log.server.log" 2>&1 &
		ng=$!; pids+=("$ng")
		sleep 2
		"$BIN"/floodtest -url "http://127.0.0.1:$port/test/" -n "$n" -rate "$RAMP/s" -duration 30m -every 5s -header "TE: chunked" -no-check \
			-memlog "$log.mem.log" -memlog-every 1s -gateway-name nginx -summary "$log.floodtest.json" > "$log.floodtest.out" 2>&1 &
		fl=$!; pids+=("$fl")
		for _ in $(seq 300); do streaming "$n" "$log.floodtest.out" && break; sleep 1; done
		"$BIN"/nchanpub -url "http://127.0.0.1:$port/pub/" -n "$NCHAN_M" -max "$n" -conc 32 > "$log.nchanpub.out" 2>&1 || true
		published=$( (grep -o "published [0-9]*" "$log.nchanpub.out" || true) | tr -dc 0-9)
		# Until the clients have every message, or nothing came for 10 s.
		last=-1; still=0
		for _ in $(seq 600); do
			now=$(tail -1 "$log.mem.log" | cut -f7)
			[ "$now" -ge "${published:-0}" ] 2>/dev/null && break
			if [ "$now" = "$last" ]; then still=$((still + 1)); [ $still -ge 10 ] && break; else still=0; fi
			last=$now; sleep 1
		done
		kill -INT "$fl"; wait "$fl" || true
		kill -TERM "$ng"; wait "$ng" || true
		pids=()
		read -r mean peak <<< "$(rate "$log.mem.log")"
		prate=$( (grep -o "([0-9]*/s)" "$log.nchanpub.out" || true) | tr -dc 0-9)
		received=$( (grep -o "[0-9]* messages received" "$log.floodtest.out" || true) | tail -1 | cut -d' ' -f1); received=${received:-0}
		printf "| nginx+nchan | %d | %d | - | %s | %s | %s | %d | - | **%s** | %s | - |\n" "$n" "$procs" "${published:-0}" "${prate:-0}" "$received" \
			$(( ${published:-0} > received ? ${published:-0} - received : 0 )) "$mean" "$peak" | tee -a "$out/table.md"
		theirs[$n]=$mean
		sleep 5
	done
fi

{
	echo
	for n in "${!theirs[@]}"; do
		awk -v n="$n" -v a="${ours[$n]:-0}" -v b="${theirs[$n]}" 'BEGIN { if (b > 0) printf "- %d streams: comet (defaults) / nginx+nchan, delivered msgs/s: %.1f\n", n, a / b }'
	done
	echo
	echo "Router alone, in-process, one core (\`go test -bench BenchmarkRoute ./internal/router\`):"
	echo
	go test -run '^$' -bench BenchmarkRoute -benchtime 2s ./internal/router | grep '^Benchmark' | awk '{printf "- %s: %s ns per send, %s sends/s, %s allocs/send\n", $1, $3, $7, $11}'
	echo
	echo "Made by \`make bench-throughput\` (CASES=\"$CASES\" M=$M NCHAN=$NCHAN NCHAN_M=$NCHAN_M MSGGEN_PROCS=$MSGGEN_PROCS) on $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d). Logs and memory logs (with the messages received each second) in $out."
} >> "$out/table.md"
cat "$out/table.md"
