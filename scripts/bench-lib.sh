# Sourced by the bench scripts: set the kernel settings a run needs and put
# them back afterwards, and stop what the run started.
#
#   setsys NAME VALUE   set NAME (e.g. net.core.somaxconn), remembering the old value
#   family PID...       the pids and their children's (a gateway -procs N)
#   rss PID...          their resident memory summed with family's, in KB
#   set_backlogs        what a ramp of many connections needs: listen and SYN
#                       backlogs, the device backlog, and SO_REUSEPORT sockets
#                       handing their queued connections to a sibling that lives
#   restore_sysctls     put back every value setsys changed
#   pids+=(PID)         a process to stop at the end
#   stop_and_restore    SIGTERM every process in pids, wait, restore_sysctls
#   wait_http URL [S]   wait up to S seconds (20) for URL to answer; fail
#                       (status 1, said on stderr) if it does not
#   timewait            the TCP sockets in TIME_WAIT now (a run that opens
#                       many waits for the last one's to go: they hold ports)
#   memory_log FILE PID  log what the machine's memory went to every 10 s
#   memory_guard FILE PID...  stop the load (the pids and their children)
#                       before the machine runs out of memory; guarded
#                       FILE NAME exits 1 if it did, saying why
#
# SYSCTL_STRICT=1 makes a setting that cannot be written fatal.
sysctl_restore=()
setsys() {
	local old
	old=$(cat "/proc/sys/${1//.//}")
	if [ "$old" != "$2" ]; then
		sysctl_restore+=("$1=$old")
		if ! sysctl -q -w "$1=$2"; then
			echo "$(basename "$0"): cannot set $1=$2 (run as root)" >&2
			[ "${SYSCTL_STRICT:-0}" = 1 ] && exit 1
		fi
	fi
	return 0
}
family() {
	local p
	for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done
}
rss() {
	local p
	for p in $(family "$@"); do awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'
}
set_backlogs() {
	setsys net.ipv4.tcp_migrate_req 1
	setsys net.core.somaxconn 65535
	setsys net.ipv4.tcp_max_syn_backlog 65535
	setsys net.core.netdev_max_backlog 65536
}
restore_sysctls() {
	local kv
	for kv in "${sysctl_restore[@]}"; do sysctl -q -w "$kv" || true; done
	sysctl_restore=()
}
pids=()
stop_and_restore() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	restore_sysctls
}
timewait() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "tw") print $(i+1)}' /proc/net/sockstat; }
wait_http() {
	local _
	for _ in $(seq $((${2:-20} * 10))); do curl -s -m 1 -o /dev/null "$1" && return 0; sleep 0.1; done
	echo "$(basename "$0" .sh): $1 did not come up" >&2
	return 1
}

# memory_guard FILE PID...: in the background, every second while the
# first pid lives, stop the pids and their children (SIGKILL: the load,
# floodtest and its workers, or a bench/floor) once the memory the
# kernel can hand out at once, MemFree plus the page cache, falls under
# GUARD_MB (1536) MB, and say so on stderr and in FILE. This machine has
# no swap: two million loopback pairs with both ends here took it to
# 651 MB free with 18 GB of slab, and it stood still for 26 minutes
# rather than fail. MemAvailable is no guide there: it counts the
# sockets' inodes and dentries, pinned while the sockets are open, as
# reclaimable (9 GB "available" at the stall). Sets guard to its pid.
memory_guard() {
	local file=$1
	shift
	(
		while sleep 1 && kill -0 "$1" 2>/dev/null; do
			m=$(awk '/^(MemFree|Active\(file\)|Inactive\(file\)):/ { s += $2 } END { print int(s / 1024) }' /proc/meminfo)
			if [ "$m" -lt "${GUARD_MB:-1536}" ]; then
				echo "memory guard: $m MB free or in the page cache, under GUARD_MB=${GUARD_MB:-1536}; slab $(awk '/^Slab:/ { print int($2 / 1024) }' /proc/meminfo) MB, $(ss -s | awk '/^TCP:/ { print $2 }') TCP sockets: the load was stopped" | tee -a "$file" >&2
				# shellcheck disable=SC2046
				kill -9 $(family "$@") 2>/dev/null
				exit 0
			fi
		done
	) &
	guard=$!
}
# memory_log FILE PID: in the background, every 10 s while PID lives,
# a line of what the machine's memory went to (MiB): free, page cache,
# slab (reclaimable, not), proc_inode_cache, TCP buffers, and the TCP
# sockets. proc_inode_cache is not this project's: the machine's process
# agent reads every /proc/PID/fd, one entry per open socket (2.6 GiB at
# two million loopback pairs). Dropping the reclaimable slab every cycle
# (echo 2 > /proc/sys/vm/drop_caches) did not keep it down, and near the
# memory floor the kernel reclaims it and the agent reads it back, round
# and round (docs/BENCHMARKS.md "Two million"). Sets memlogger to its pid.
memory_log() {
	local file=$1 pid=$2
	echo "# time free_mb cache_mb slab_mb sreclaimable_mb sunreclaim_mb proc_inode_mb tcp_buffers_mb tcp_sockets" > "$file"
	(
		while kill -0 "$pid" 2>/dev/null; do
			printf '%s %s %s %s %s\n' "$(date -u +%H:%M:%S)" \
				"$(awk '/^(MemFree|Cached|Slab|SReclaimable|SUnreclaim):/ { v[$1] = int($2 / 1024) } END { printf "%d %d %d %d %d", v["MemFree:"], v["Cached:"], v["Slab:"], v["SReclaimable:"], v["SUnreclaim:"] }' /proc/meminfo)" \
				"$(awk '$1 == "proc_inode_cache" { printf "%d", $3 * $4 / 1048576 }' /proc/slabinfo 2>/dev/null || echo ?)" \
				"$(awk -v pg="$(getconf PAGESIZE)" '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") printf "%d", $(i+1) * pg / 1048576 }' /proc/net/sockstat)" \
				"$(awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "alloc") print $(i+1) }' /proc/net/sockstat)" >> "$file"
			sleep 10
		done
	) &
	memlogger=$!
}
# guarded FILE NAME: exit 1, saying why (as NAME), if the memory guard
# writing FILE stopped the load.
guarded() {
	if [ -s "$1" ]; then
		echo "$2: stopped: $(cat "$1")" >&2
		exit 1
	fi
}
