#!/usr/bin/env bash
# make bench-million: a million concurrent streams on this machine. The
# study (scripts/study.sh) with CLIENTS=1000000 ramped at RAMP/s (20,000),
# gateway -procs auto, msggen at 1,000 numbered messages/s for DURATION
# (2m), floodtest on the same machine; it sets the kernel limits it needs
# and restores them. Outputs in study/<timestamp>/ like make study.
set -euo pipefail
cd "$(dirname "$0")/.."
SYSCTL_STRICT=1
. scripts/bench-lib.sh
trap restore_sysctls EXIT
setsys fs.file-max 4194304
set_backlogs
# Above a million (make bench-2m), ramp at 5,000/s: at 20,000/s the
# connections queue faster than ~200 processes on two cores serve them.
CLIENTS=${CLIENTS:-1000000}
[ "$CLIENTS" -gt 1000000 ] && RAMP=${RAMP:-5000}
# On 2 cores, ~100 Go processes (gateways and floodtest workers) share the
# CPU: a router that waits longer for heartbeats.
ROUTER_FLAGS=${ROUTER_FLAGS:--gateway-timeout 30s} \
CLIENTS=$CLIENTS RAMP=${RAMP:-20000} GATEWAY_PROCS=${GATEWAY_PROCS:-auto} \
	DURATION=${DURATION:-2m} MEMLOG_EVERY=${MEMLOG_EVERY:-30s} PROCS=${PROCS:-4} \
	./scripts/study.sh
