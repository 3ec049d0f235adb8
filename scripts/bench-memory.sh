#!/usr/bin/env bash
# make bench-memory: user-space memory per idle stream, in one run on this
# machine, for this gateway, a naive fasthttp SetBodyStreamWriter gateway
# (bench/naive) and nginx + nchan (bench/nchan), at N = 10,000 and 100,000
# streams (FULL=1 adds 1,000,000), with the kernel's memory per connection
# and floodtest's own memory per client. comet-sse and comet-poll are this
# gateway with EventSource clients (/sse/) and long-poll clients (/poll/,
# 30 s polls) instead of chunked streams; comet-auth is chunked streams
# whose clients each present a token (gateway -auth-secret-file);
# comet-ws is WebSocket clients (/ws/), beside naive-ws, a gorilla/websocket
# server with a goroutine per socket (bench/naivews).
#
# Per server and N: start it, let 20 clients per process come and go (what
# the first client costs once is not a per-stream cost), take its resident
# memory (summed over its processes), ramp N streams with floodtest, hold them SETTLE (60s; for this
# gateway with msggen sending 1,000 messages/s meanwhile), take it again.
# KB per stream = (after - before) / N.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
SIZES=${SIZES:-"10000 100000"}
[ "${FULL:-0}" = 1 ] && SIZES="$SIZES 1000000"
SERVERS=${SERVERS:-"comet comet-sse comet-poll comet-auth comet-ws naive naive-ws nchan"}
SETTLE=${SETTLE:-60}
RAMP=${RAMP:-5000}
PER=19000 # streams per server process
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
echo "bench-memory: writing to $out"

# What the bench needs from the kernel, restored on exit.
. scripts/bench-lib.sh
trap stop_and_restore EXIT
set_backlogs

if [[ " $SERVERS " == *" nchan "* ]] && [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
	echo "bench-memory: installing nginx-light and libnginx-mod-nchan"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan > "$out/apt.log" 2>&1 || {
		apt-get update -qq >> "$out/apt.log" 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >> "$out/apt.log" 2>&1
	}
fi

# Kernel memory in KB: bytes of every active slab object (sockets, their
# inodes, files, epoll items...) plus TCP buffer pages.
kernkb() {
	local slab tcp
	slab=$(awk 'NR > 2 {s += $2 * $4} END {printf "%d", s / 1024}' /proc/slabinfo)
	tcp=$(awk -v pg="$(getconf PAGESIZE)" '/^TCP:/ {print $NF * pg / 1024}' /proc/net/sockstat)
	echo $((slab + ${tcp%.*}))
}

printf "| N | server | processes | KB per stream | resident before / after (KB) | kernel KB per connection pair | floodtest KB per client |\n|---|---|---|---|---|---|---|\n" > "$out/table.md"
port=8700
for n in $SIZES; do
	procs=$(( (n + PER - 1) / PER ))
	servers=$SERVERS
	# At a million only this gateway: the naive one would need ~28 GB.
	[ "$n" -ge 1000000 ] && servers=comet
	for server in $servers; do
		port=$((port + 1))
		log=$out/$server-$n
		extra=()
		path=/test/
		case $server in
		comet | comet-sse | comet-poll | comet-auth | comet-ws)
			[ "$server" = comet-sse ] && path=/sse/
			[ "$server" = comet-ws ] && path=/ws/
			[ "$server" = comet-poll ] && path=/poll/ && extra=(-poll-timeout 30s)
			gwextra=()
			if [ "$server" = comet-auth ]; then
				# Every client presents a token (HS256) for its id.
				[ -e "$out/auth.secret" ] || (umask 077; head -c 48 /dev/urandom | base64 -w0 > "$out/auth.secret")
				gwextra=(-auth-secret-file "$out/auth.secret")
				extra=(-token-secret-file "$out/auth.secret")
			fi
			"$BIN"/router -nats-addr 127.0.0.1:4622 -admin 127.0.0.1:8699 -log-level warn > "$log.router.log" 2>&1 &
			router=$!; pids+=("$router")
			wait_http http://127.0.0.1:8699/stats
			"$BIN"/gateway -procs "$procs" -addr 127.0.0.1:$port -admin off -nats nats://127.0.0.1:4622 -name bench -log-level warn "${gwextra[@]}" > "$log.server.log" 2>&1 &
			spid=$!
			;;
		naive)
			"$BIN"/naive -procs "$procs" -addr 127.0.0.1:$port > "$log.server.log" 2>&1 &
			spid=$!
			;;
		naive-ws)
			"$BIN"/naivews -procs "$procs" -addr 127.0.0.1:$port > "$log.server.log" 2>&1 &
			spid=$!
			path=/ws/
			;;
		nchan)
			mkdir -p "$log.nginx"
			sed -e "s#@PREFIX@#$PWD/$log.nginx#g" -e "s#@PORT@#$port#g" -e "s#@WORKERS@#$procs#g" bench/nchan/nginx.conf.in > "$log.nginx/nginx.conf"
			nginx -c "$PWD/$log.nginx/nginx.conf" -p "$PWD/$log.nginx" > "$log.server.log" 2>&1 &
			spid=$!
			extra=(-header "TE: chunked" -no-check)
			;;
		esac
		pids+=("$spid")
		wait_http "http://127.0.0.1:$port/ready-probe" || true
		# Warm up: a few clients of this kind come and go first, so that
		# what the server's first client costs it once (code paged in,
		# token checking's, for comet-auth) is in "before", not divided
		# among the streams.
		"$BIN"/floodtest -url "http://127.0.0.1:$port$path" -n $((20 * procs)) -rate 1000/s -duration 3s -every 10s "${extra[@]}" > "$log.warmup.out" 2>&1 || true
		sleep 8 # sockets of the previous run (and the warm-up) finish closing
		before=$(rss "$spid"); kern0=$(kernkb)
		[[ $server == comet* ]] && rbefore=$(rss "$router")
		"$BIN"/floodtest -url "http://127.0.0.1:$port$path" -n "$n" -rate "$RAMP/s" -duration "$(( n / RAMP + SETTLE + 120 ))s" \
			-every 10s "${extra[@]}" -summary "$log.floodtest.json" > "$log.floodtest.out" 2>&1 &
		fpid=$!; pids+=("$fpid")
		# Until every stream is open (or the ramp clearly failed).
		for _ in $(seq $(( n / RAMP * 4 + 120 ))); do
			grep -q "^Stats: {$n," "$log.floodtest.out" && break
			sleep 1
		done
		if [[ $server == comet* ]]; then
			"$BIN"/msggen -nats nats://127.0.0.1:4622 -rate 1000 -n $(( 1000 * SETTLE / 4 )) -procs 4 -max "$n" -every 0 > "$log.msggen.out" 2>&1 || true
		else
			sleep "$SETTLE"
		fi
		after=$(rss "$spid"); kern1=$(kernkb)
		[[ $server == comet* ]] && echo "bench-memory: $server router resident $rbefore -> $(rss "$router") KB (retention: $(curl -s http://127.0.0.1:8699/stats | tr -d ' \n' | grep -o '"retention":{[^}]*}'))" | tee -a "$out/notes.txt"
		held=$(grep -o "^Stats: {[0-9]*" "$log.floodtest.out" | tail -1 | tr -dc 0-9)
		kill -INT "$fpid"; wait "$fpid" || true
		fmem=$(grep -o "KB per client, [0-9.]* KB above" "$log.floodtest.out" | grep -o "[0-9.]* KB above" | cut -d' ' -f1 || echo "?")
		nprocs=$( (pgrep -P "$spid" || true) | wc -l)
		kill -TERM "$spid"; wait "$spid" || true
		[[ $server == comet* ]] && { kill -TERM "$router"; wait "$router" || true; }
		pids=()
		kb=$(awk -v a="$after" -v b="$before" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.2f", (a-b)/n; else print "n/a" }')
		kern=$(awk -v a="$kern1" -v b="$kern0" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.2f", (a-b)/n; else print "n/a" }')
		printf "| %d | %s | %d | **%s** | %d / %d | %s | %s |\n" "$n" "$server" "$((nprocs > 0 ? nprocs : 1))" "$kb" "$before" "$after" "$kern" "$fmem" | tee -a "$out/table.md"
		[ "${held:-0}" = "$n" ] || echo "bench-memory: $server held ${held:-0} of $n streams; see $log.floodtest.out" | tee -a "$out/table.md"
		sleep 3
	done
done
{
	echo
	echo "Made by \`make bench-memory${FULL:+ FULL=$FULL}\` (SIZES=\"$SIZES\" SERVERS=\"$SERVERS\" SETTLE=$SETTLE RAMP=$RAMP) on $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)."
} >> "$out/table.md"
cat "$out/table.md"
