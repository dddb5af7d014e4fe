#!/usr/bin/env bash
# tests/interop/selftest.sh - checks the interop harness itself, without switchboard.
#
# Runs the client checks against the reference peers: Node `ws` client and headless
# Chromium against the Python `websockets` echo server, Python `websockets` client
# against the Node `ws` echo server (all with compression, so deflate is expected).
# If this fails, the harness or the machine is broken, not switchboard.
# Last line: "N passed, M failed". Needs tests/interop/setup.sh first.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$ROOT/scripts/test-settings.sh"
PY="$HERE/.venv/bin/python"
LOG="$(mktemp)"
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -f "$LOG"; }
trap cleanup EXIT

PY_PORT="$(free_port)"
"$PY" "$HERE/python/echo_server.py" --port "$PY_PORT" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
NODE_PORT="$(free_port)"
node "$HERE/node/echo_server.mjs" --port "$NODE_PORT" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
wait_for_port "$PY_PORT" 20 "${PIDS[0]}" || echo "FAIL selftest: python echo server did not start" | tee -a "$LOG"
wait_for_port "$NODE_PORT" 20 "${PIDS[1]}" || echo "FAIL selftest: node echo server did not start" | tee -a "$LOG"

{
  node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$PY_PORT" --offer-deflate 1 --expect-deflate 1 \
    --label "node ws client -> python websockets server"
  node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$PY_PORT" --offer-deflate 0 --expect-deflate 0 \
    --label "node ws client (no deflate) -> python websockets server"
  "$PY" "$HERE/python/client_check.py" --url "ws://127.0.0.1:$NODE_PORT" --compression on --expect-deflate 1
  node "$HERE/browser/browser_check.mjs" --ws-port "$PY_PORT" --expect-deflate 1 --label "chromium -> python websockets server"
} </dev/null 2>&1 | tee -a "$LOG"

passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
