#!/usr/bin/env bash
# tests/autobahn/full.sh - all 517 Autobahn|Testsuite cases, server and client. Slow; not in CI.
#
# usage: tests/autobahn/full.sh [--side server|client|both] [--update-expected]
#
# Builds the release binaries, installs wstest if needed (tests/autobahn/install.sh),
# then runs every case (sections 1-13, permessage-deflate included) against
# `switchboard echo` and with the autobahn_client example. Results are judged like the
# CI subset (CONFORMANCE.md) and compared with tests/autobahn/expected-full-server.json
# and expected-full-client.json; --update-expected rewrites those from this run (then
# commit them: they are the published full results). Reports (HTML and JSON per case)
# land in tests/autobahn/reports/full/{server,client}/.
#
# Time: wstest compresses in Python 2, so sections 12 and 13 dominate: expect roughly
# 10-20 minutes per side on a 2-core machine (about 30 s without them).
# The last line is "N passed, M failed"; exit status 0 only if nothing failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT" || exit 2
START=$(date +%s)

"$HERE/install.sh" </dev/null || { echo "full.sh: ERROR: wstest could not be installed"; echo "0 passed, 1 failed"; exit 1; }
if ! cargo build --release -p switchboard-cli -p switchboard --examples --bins </dev/null; then
  echo "FAIL cargo build --release"
  echo "0 passed, 1 failed"
  exit 1
fi

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
"$HERE/suites.sh" --profile full "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
[[ $rc -ne 0 && $failed -eq 0 ]] && failed=1
echo "full.sh: took $(( $(date +%s) - START ))s"
echo "$passed passed, $failed failed"
[[ $rc -eq 0 && $failed -eq 0 ]]
