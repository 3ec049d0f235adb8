#!/usr/bin/env bash
# What `make test` needs beyond Go on a fresh Debian machine: the clients
# nobody here wrote that the e2e tests drive. Chromium (the demo page's
# browser test), nginx and curl (the TLS proxy test, deploy/nginx),
# iproute2 (network namespaces for the partition test), systemd
# (systemd-analyze verify of deploy/systemd), and the npm
# packages in e2e/js (the eventsource and ws clients) and clients/js (ws,
# for the client library's tests in Node 20). Run as root (CI
# is); CI then sets COMET_REQUIRE_BROWSER=1 and COMET_REQUIRE_OUTSIDE=1 so
# a missing one fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium > /dev/null || need+=(chromium)
command -v nginx > /dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl > /dev/null || need+=(curl)
command -v ip > /dev/null || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v systemd-analyze > /dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
	echo "test-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${need[@]}" > /tmp/test-deps-apt.log 2>&1 || {
		apt-get update -q >> /tmp/test-deps-apt.log 2>&1
		apt-get install -y -q "${need[@]}" >> /tmp/test-deps-apt.log 2>&1
	} || { tail -20 /tmp/test-deps-apt.log; exit 1; }
fi
if [ ! -e e2e/js/node_modules/eventsource/package.json ] || [ ! -e e2e/js/node_modules/ws/package.json ]; then
	echo "test-deps: npm ci in e2e/js"
	npm ci --prefix e2e/js --no-audit --no-fund > /tmp/test-deps-npm.log 2>&1 || { tail -20 /tmp/test-deps-npm.log; exit 1; }
fi
# The client library's own test dependency (make test installs it too).
if [ ! -e clients/js/node_modules/ws/package.json ]; then
	echo "test-deps: npm ci in clients/js"
	npm ci --prefix clients/js --no-audit --no-fund > /tmp/test-deps-npm.log 2>&1 || { tail -20 /tmp/test-deps-npm.log; exit 1; }
fi
chromium --version
nginx -v 2>&1
node --version
