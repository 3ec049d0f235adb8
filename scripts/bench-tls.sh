#!/usr/bin/env bash
# make bench-tls: what TLS costs per connection in the production setup
# (deploy/nginx/comet.conf: nginx terminating TLS in front of the
# gateway). For each certificate key type (ECDSA P-256, RSA 2048),
# bench/tlscost opens N streams (default 5,000) through the same nginx
# plain, then with TLS full handshakes, then resuming TLS sessions, and
# reports nginx's resident KB per stream and CPU µs per connection. The
# gateway behind it (open, on loopback) is the same in every phase.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
N=${N:-5000}
KEYS=${KEYS:-"ecdsa rsa"}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-tls
mkdir -p "$out"
echo "bench-tls: writing to $out"
. scripts/bench-lib.sh
trap stop_and_restore EXIT
if ! command -v nginx > /dev/null && [ ! -x /usr/sbin/nginx ]; then
	echo "bench-tls: installing nginx-light"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light > "$out/apt.log" 2>&1 || {
		apt-get update -qq >> "$out/apt.log" 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >> "$out/apt.log" 2>&1
	}
fi
"$BIN/router" -nats-addr 127.0.0.1:4632 -admin 127.0.0.1:8689 -log-level warn > "$out/router.log" 2>&1 &
pids+=($!)
"$BIN/gateway" -addr 127.0.0.1:8690 -admin off -nats nats://127.0.0.1:4632 -name tls -log-level warn > "$out/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s -m 1 -o /dev/null http://127.0.0.1:8690/ && break; sleep 0.1; done
{
	echo "Command: make bench-tls (N=$N KEYS=\"$KEYS\"), $(date -u +%FT%TZ), $(nproc) cores"
	for key in $KEYS; do
		echo
		"$BIN/tlscost" -gateway 127.0.0.1:8690 -n "$N" -key "$key"
	done
} | tee "$out/table.md"
