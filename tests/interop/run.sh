#!/usr/bin/env bash
# tests/interop/run.sh - switchboard against other WebSocket implementations, on loopback.
#
# usage: tests/interop/run.sh        (after tests/interop/setup.sh)
#
#   Node `ws` client     -> switchboard echo   (perMessageDeflate on and off; and --no-compression)
#   Python `websockets`  -> switchboard echo   (compression on and off)
#   switchboard connect  -> Node `ws` echo server and Python `websockets` echo server
#   headless Chromium    -> switchboard echo   (playwright-core driving /usr/bin/chromium)
#
# Environment: SWITCHBOARD_BIN (default $CARGO_TARGET_DIR/release/switchboard, target/ by
# default) and SWITCHBOARD_EXPECT_DEFLATE (scripts/test-settings.sh).
# Every check prints a PASS/FAIL line; the last line is "N passed, M failed".
# Exit status 0 only if nothing failed. Servers started here are stopped by PID.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

PY="$HERE/.venv/bin/python"
EXPECT="$SWITCHBOARD_EXPECT_DEFLATE"
LOGDIR="$HERE/reports"
mkdir -p "$LOGDIR"

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

OUT="$(mktemp)"
trap 'stop_all; rm -f "$OUT"' EXIT
LOG="$LOGDIR/run.log"
: >"$LOG"
# say LINE...: prints a line and keeps it in the run log (counted at the end).
say() { printf '%s\n' "$*" | tee -a "$LOG"; }

# check NAME CMD...: runs one check program, passes its PASS/FAIL lines through and
# turns a non-zero exit without any FAIL line into a FAIL line of its own.
check() {
  local name="$1" rc
  shift
  timeout -k 5 180 "$@" </dev/null >"$OUT" 2>&1
  rc=$?
  tee -a "$LOG" <"$OUT"
  if [[ $rc -ne 0 ]] && ! grep -q '^FAIL ' "$OUT"; then
    say "FAIL $name: exited with status $rc$([[ $rc -eq 124 ]] && echo ' (timed out after 180 s)')"
  fi
  if [[ $rc -eq 0 ]] && ! grep -q '^PASS ' "$OUT"; then
    say "FAIL $name: reported no checks"
  fi
}

# start NAME PORT CMD...: starts a server in the background and waits for its port.
start() {
  local name="$1" port="$2" pid
  shift 2
  "$@" </dev/null >"$LOGDIR/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if wait_for_port "$port" 20 "$pid"; then
    return 0
  fi
  if kill -0 "$pid" 2>/dev/null; then
    say "FAIL $name: did not accept connections on 127.0.0.1:$port within 20 s (log $LOGDIR/$name.log)"
  else
    say "FAIL $name: exited before accepting connections on 127.0.0.1:$port (log $LOGDIR/$name.log)"
  fi
  tail -n 10 "$LOGDIR/$name.log" | sed 's/^/    | /' | tee -a "$LOG"
  return 1
}

[[ -x "$SWITCHBOARD_BIN" ]] || say "FAIL interop: $SWITCHBOARD_BIN is missing (cargo build --release -p switchboard-cli)"
[[ -x "$PY" && -d "$HERE/node_modules/ws" ]] || say "FAIL interop: run tests/interop/setup.sh first"

ECHO_PORT="$(free_port)"
if start switchboard-echo "$ECHO_PORT" "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$ECHO_PORT"; then
  check "node ws client" node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$ECHO_PORT" \
    --offer-deflate 1 --expect-deflate "$EXPECT"
  check "node ws client" node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$ECHO_PORT" \
    --offer-deflate 0 --expect-deflate 0
  check "python websockets client" "$PY" "$HERE/python/client_check.py" --url "ws://127.0.0.1:$ECHO_PORT" \
    --compression on --expect-deflate "$EXPECT"
  check "python websockets client" "$PY" "$HERE/python/client_check.py" --url "ws://127.0.0.1:$ECHO_PORT" \
    --compression off --expect-deflate 0
  check "chromium" node "$HERE/browser/browser_check.mjs" --ws-port "$ECHO_PORT" --expect-deflate "$EXPECT"
  # Offered subprotocols: both fail the handshake if the server selects none.
  check "node ws client" node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$ECHO_PORT" \
    --offer-deflate 0 --expect-deflate 0 --protocols chat,superchat --label "node ws client (subprotocols)"
  check "chromium" node "$HERE/browser/browser_check.mjs" --ws-port "$ECHO_PORT" --expect-deflate "$EXPECT" \
    --protocols chat,superchat --label "chromium -> switchboard echo (subprotocols)"
fi

PLAIN_PORT="$(free_port)"
if start switchboard-echo-no-compression "$PLAIN_PORT" \
    "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$PLAIN_PORT" --no-compression; then
  check "node ws client" node "$HERE/node/client_check.mjs" --url "ws://127.0.0.1:$PLAIN_PORT" \
    --offer-deflate 1 --expect-deflate 0 --label "node ws client (perMessageDeflate on) -> echo --no-compression"
fi

NODE_PORT="$(free_port)"
if start node-echo-server "$NODE_PORT" node "$HERE/node/echo_server.mjs" --port "$NODE_PORT"; then
  check "switchboard connect -> node ws server" "$PY" "$HERE/connect_check.py" --bin "$SWITCHBOARD_BIN" \
    --url "ws://127.0.0.1:$NODE_PORT" --peer "node ws server" --expect-deflate "$EXPECT"
fi

PY_PORT="$(free_port)"
if start python-echo-server "$PY_PORT" "$PY" "$HERE/python/echo_server.py" --port "$PY_PORT"; then
  check "switchboard connect -> python websockets server" "$PY" "$HERE/connect_check.py" --bin "$SWITCHBOARD_BIN" \
    --url "ws://127.0.0.1:$PY_PORT" --peer "python websockets server" --expect-deflate "$EXPECT"
fi

# The servers must have survived every check.
for pid in "${PIDS[@]}"; do
  kill -0 "$pid" 2>/dev/null || say "FAIL interop: a server (pid $pid) died during the checks (logs in $LOGDIR)"
done

passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
