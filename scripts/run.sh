#!/usr/bin/env bash
# Starts the router (embedded NATS on 127.0.0.1:4222, admin on :8001) and
# the gateway (HTTP on 127.0.0.1:8000, admin on :8002) in the foreground.
# Ctrl-C (or SIGTERM) stops both cleanly. Extra flags: ROUTER_FLAGS and
# GATEWAY_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}

"$BIN"/router ${ROUTER_FLAGS:-} &
router=$!
stop() {
	trap - INT TERM
	[ -n "${gateway:-}" ] && kill -TERM "$gateway" 2>/dev/null && wait "$gateway" || true
	kill -TERM "$router" 2>/dev/null && wait "$router" || true
}
trap 'stop; exit 0' INT TERM

# Wait for the router's admin API before starting the gateway.
for _ in $(seq 100); do
	if curl -sf -o /dev/null http://127.0.0.1:8001/stats 2>/dev/null; then break; fi
	if ! kill -0 "$router" 2>/dev/null; then echo "run: the router did not start" >&2; exit 1; fi
	sleep 0.1
done
"$BIN"/gateway ${GATEWAY_FLAGS:-} &
gateway=$!

cat >&2 <<'MSG'

  comet is running. Try, in another terminal:
    curl -N localhost:8000/test/123
    bin/router send 123 "Hello World"
    bin/msggen -n 20 -interval 10ms -max 5
  Ctrl-C stops both.

MSG
wait -n "$router" "$gateway" || true
stop
