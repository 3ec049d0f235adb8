#!/usr/bin/env bash
# Writes every command's -h into docs/OPERATIONS.md between its
# "<!-- flags: CMD -->" and "<!-- end flags -->" lines (make docs). The
# e2e test TestOperationsFlags fails when they differ, so the flags
# written down cannot drift from the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
python3 - "$BIN" <<'PY'
import re, subprocess, sys
bin = sys.argv[1]
path = "docs/OPERATIONS.md"
doc = open(path).read()
def help_of(cmd):
    p = subprocess.run([f"{bin}/{cmd}", "-h"], capture_output=True, text=True)
    return (p.stdout + p.stderr).rstrip() + "\n"
def put(m):
    return m.group(1) + "```\n" + help_of(m.group(2)) + "```\n" + m.group(3)
doc = re.sub(r"(<!-- flags: (\w+) -->\n).*?(<!-- end flags -->)", put, doc, flags=re.S)
open(path, "w").write(doc)
PY
