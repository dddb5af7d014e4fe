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
# 10-20 minutes per side on a 2-core machine (about 30 s without them); the two sides
# run at the same time.
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

SIDES=(server client)
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --side) [[ "${2:-}" == both ]] || SIDES=("${2:-}"); shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

# Both sides at once (each is one single-threaded wstest); each side's output is
# shown when it has finished. Interrupting stops both (their traps stop their servers).
PIDS=()
LOGS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait; exit 130' INT TERM
for side in "${SIDES[@]}"; do
  log="$(mktemp)"
  LOGS+=("$log")
  "$HERE/suites.sh" --profile full --side "$side" "${ARGS[@]}" </dev/null >"$log" 2>&1 &
  PIDS+=($!)
done
trap 'rm -f "${LOGS[@]}"' EXIT
passed=0
failed=0
for i in "${!PIDS[@]}"; do
  wait "${PIDS[$i]}"
  rc=$?
  cat "${LOGS[$i]}"
  p=$(grep -c '^PASS ' "${LOGS[$i]}")
  f=$(grep -c '^FAIL ' "${LOGS[$i]}")
  [[ $rc -ne 0 && $f -eq 0 ]] && f=1
  passed=$((passed + p))
  failed=$((failed + f))
done
rc=$(( failed > 0 ))
echo "full.sh: took $(( $(date +%s) - START ))s"
echo "$passed passed, $failed failed"
[[ $rc -eq 0 && $failed -eq 0 ]]
