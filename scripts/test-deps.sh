#!/usr/bin/env bash
# What `make test` needs beyond Go on a fresh Debian machine: Chromium, for
# the demo page's browser test (e2e/browser_test.go). Run as root (CI is).
set -euo pipefail
if command -v chromium > /dev/null; then
	exit 0
fi
echo "test-deps: installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium > /tmp/test-deps-apt.log 2>&1 || {
	apt-get update -q >> /tmp/test-deps-apt.log 2>&1
	apt-get install -y -q chromium >> /tmp/test-deps-apt.log 2>&1
} || { tail -20 /tmp/test-deps-apt.log; exit 1; }
chromium --version
