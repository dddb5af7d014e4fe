#!/usr/bin/env bash
# tests/hub/run.sh - end-to-end acceptance checks of `switchboard serve` (the hub), on loopback.
#
# usage: tests/hub/run.sh
#
#   e2e.mjs         headless Chromium (playwright-core driving /usr/bin/chromium) against the
#                   chat page and switchboard.js: two pages chat over WebSocket, SSE and long
#                   polling; a page's connection is killed server-side (admin API) while the
#                   other keeps sending and it gets exactly what it missed; REST publishes
#                   reach every transport; history, `since`, paging; the long-poll gap; the
#                   seeds' bare `new WebSocket()` / `new EventSource()` page
#   presence.mjs    headless Chromium: three chat pages in one room on WebSocket, SSE and long
#                   polling each see the other two online; REST and /ws presence agree;
#                   closed pages leave on the others, once each
#   slow_check.mjs  a subscriber that reads nothing (slow_subscriber.py, tiny receive
#                   buffer) under lag_policy "disconnect" and "resume": the others are not
#                   slowed, it is counted in /metrics and dropped or resumed per policy
#   layout.mjs      headless Chromium at phone (390×844) and desktop (1280×800) sizes:
#                   Send, inputs, badge and messages inside the viewport, nothing scrolls
#                   sideways, long words wrap, own messages apart, times, empty hint,
#                   channel picker; screenshots
#   restart.mjs     headless Chromium through a server restart (serve killed by PID and
#                   started again on the same port) over each transport: badge, banner,
#                   queued sends published exactly once; screenshots
#   errors.mjs      headless Chromium against a hub with auth: no token, a token without
#                   the channel's rights and a refused channel name show at connect
#
# Each check program gets a fresh hub started here from a temp TOML config (admin API on);
# the chat checks also run against `switchboard serve` with no arguments at all
# (127.0.0.1:8080) when that port is free.
# Needs the packages tests/interop/setup.sh installs (Node `ws` + `playwright-core`,
# Debian's chromium); runs that script itself when they are missing.
# Environment: SWITCHBOARD_BIN (default $CARGO_TARGET_DIR/release/switchboard, target/ by
# default); HUB_SCREENSHOTS, where the screenshots go (default
# ${TMPDIR:-/tmp}/switchboard-hub-screenshots, outside the repository; look at them). Every check prints a PASS/FAIL line; the last line is "N passed, M failed".
# Exit status 0 only if nothing failed. Servers started here are stopped by PID.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

INTEROP="$ROOT/tests/interop"
LOGDIR="$HERE/reports"
mkdir -p "$LOGDIR"
TMP="$(mktemp -d)"
SHOTS="${HUB_SCREENSHOTS:-${TMPDIR:-/tmp}/switchboard-hub-screenshots}"

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
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'stop_all; rm -rf "$TMP"; exit 130' INT TERM

OUT="$TMP/out"
LOG="$LOGDIR/run.log"
: >"$LOG"
# say LINE...: prints a line and keeps it in the run log (counted at the end).
say() { printf '%s\n' "$*" | tee -a "$LOG"; }

# check NAME SECS CMD...: runs one check program, passes its PASS/FAIL lines through and
# turns a non-zero exit without any FAIL line into a FAIL line of its own.
check() {
  local name="$1" secs="$2" rc
  shift 2
  timeout -k 5 "$secs" "$@" </dev/null >"$OUT" 2>&1
  rc=$?
  tee -a "$LOG" <"$OUT"
  if [[ $rc -ne 0 ]] && ! grep -q '^FAIL ' "$OUT"; then
    say "FAIL $name: exited with status $rc$([[ $rc -eq 124 ]] && echo " (timed out after $secs s)")"
  fi
  if [[ $rc -eq 0 ]] && ! grep -q '^PASS ' "$OUT"; then
    say "FAIL $name: reported no checks"
  fi
}

# hub NAME CONFIG_TOML: starts `switchboard serve` on a free loopback port with that config;
# sets HUB_URL. Fails (with a FAIL line) if it does not come up.
hub() {
  local name="$1" port pid
  port="$(free_port)"
  printf '%s\n' "$2" >"$TMP/$name.toml"
  RUST_LOG="${RUST_LOG:-info}" "$SWITCHBOARD_BIN" serve --listen "127.0.0.1:$port" --config "$TMP/$name.toml" \
    </dev/null >"$LOGDIR/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  HUB_URL="http://127.0.0.1:$port"
  if wait_for_port "$port" 20 "$pid"; then
    return 0
  fi
  if kill -0 "$pid" 2>/dev/null; then
    say "FAIL hub $name: did not accept connections on 127.0.0.1:$port within 20 s (log $LOGDIR/$name.log)"
  else
    say "FAIL hub $name: exited before accepting connections on 127.0.0.1:$port (log $LOGDIR/$name.log)"
  fi
  tail -n 10 "$LOGDIR/$name.log" | sed 's/^/    | /' | tee -a "$LOG"
  return 1
}

# --- prerequisites ------------------------------------------------------------------
ready=1
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  say "FAIL hub: $SWITCHBOARD_BIN is missing (cargo build --release -p switchboard-cli)"
  ready=0
elif ! "$SWITCHBOARD_BIN" serve --help >/dev/null 2>&1; then
  say "FAIL hub: $SWITCHBOARD_BIN has no working 'serve' subcommand (rebuild: cargo build --release -p switchboard-cli)"
  ready=0
fi
if [[ ! -d "$INTEROP/node_modules/ws" || ! -d "$INTEROP/node_modules/playwright-core" || ! -x /usr/bin/chromium ]] \
    || ! command -v node >/dev/null 2>&1; then
  echo "tests/hub: installing the Node packages and Chromium (tests/interop/setup.sh)"
  if ! "$INTEROP/setup.sh" </dev/null >"$LOGDIR/setup.log" 2>&1; then
    say "FAIL hub: tests/interop/setup.sh could not install what the checks need (log $LOGDIR/setup.log)"
    tail -n 15 "$LOGDIR/setup.log" | sed 's/^/    | /' | tee -a "$LOG"
    ready=0
  fi
fi
command -v python3 >/dev/null 2>&1 || { say "FAIL hub: python3 is required (slow_subscriber.py)"; ready=0; }

# --- the checks -------------------------------------------------------------------------
if [[ $ready == 1 ]]; then
  # The browser checks: admin API for the server-side kills; a publish rate limit well
  # above what the checks send (they publish from one IP in quick bursts).
  if hub e2e 'admin_api = true
[rate_limit]
messages_per_second = 1000.0
burst = 1000
per_ip_messages_per_second = 1000.0
per_ip_burst = 1000'; then
    check "hub e2e (chromium)" 400 node "$HERE/e2e.mjs" --url "$HUB_URL"
    # The page's layout at phone and desktop sizes (same hub: it publishes in bursts too).
    check "hub chat layout (chromium)" 200 node "$HERE/layout.mjs" --url "$HUB_URL" --shots "$SHOTS"
  fi

  # Through a server restart: restart.mjs starts and kills `serve` itself (by PID, same port).
  port="$(free_port)"
  printf '%s\n' '[rate_limit]' 'per_ip_messages_per_second = 1000.0' 'per_ip_burst = 1000' >"$TMP/restart.toml"
  check "hub chat restart (chromium)" 300 node "$HERE/restart.mjs" --bin "$SWITCHBOARD_BIN" --port "$port" \
    --config "$TMP/restart.toml" --shots "$SHOTS"
  cp "$SHOTS/restart-serve.log" "$LOGDIR/restart.log" 2>/dev/null

  # Refusals at connect time: a hub with auth on.
  secret="hub-suite-secret-$RANDOM$RANDOM-0123456789"
  if hub auth "[auth]
jwt_secret = \"$secret\""; then
    check "hub chat refusals (chromium)" 200 node "$HERE/errors.mjs" --url "$HUB_URL" --secret "$secret"
  fi

  # Presence: a short grace period, so that a closed page is seen leaving quickly.
  if hub presence '[presence]
grace_ms = 1500'; then
    check "hub presence (chromium)" 200 node "$HERE/presence.mjs" --url "$HUB_URL" --grace-ms 1500
  fi

  # The defaults, as a first-time user starts it: no arguments at all serves the chat on
  # 127.0.0.1:8080. Only when that port is free (it is in CI); a busy port is not the hub's
  # fault, so that is a note, not a failure.
  if timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null; then
    echo "NOTE: 127.0.0.1:8080 is in use by something else: the check of the defaults is not run"
  else
    "$SWITCHBOARD_BIN" serve </dev/null >"$LOGDIR/defaults.log" 2>&1 &
    PIDS+=("$!")
    if wait_for_port 8080 20 "$!"; then
      check "hub defaults (chromium)" 200 node "$HERE/e2e.mjs" --url "http://127.0.0.1:8080" --sections chat \
        --label "hub defaults (switchboard serve, no arguments, http://127.0.0.1:8080)"
    else
      say "FAIL hub defaults: 'switchboard serve' with no arguments did not listen on 127.0.0.1:8080 (log $LOGDIR/defaults.log)"
    fi
  fi

  # Slow consumers: a small queue so that it fills quickly, no rate limit for the publisher
  # (neither its connection's nor its address's: it publishes 3000 messages at once).
  if hub slow-disconnect 'admin_api = true
lag_policy = "disconnect"
[limits]
queue_size = 32
[rate_limit]
messages_per_second = 0.0
per_ip_messages_per_second = 0.0'; then
    check "hub slow subscriber (disconnect)" 150 node "$HERE/slow_check.mjs" --url "$HUB_URL" --policy disconnect
  fi
  if hub slow-resume 'admin_api = true
lag_policy = "resume"
[history]
max_messages = 10000
[limits]
queue_size = 32
[rate_limit]
messages_per_second = 0.0
per_ip_messages_per_second = 0.0'; then
    check "hub slow subscriber (resume)" 150 node "$HERE/slow_check.mjs" --url "$HUB_URL" --policy resume
  fi

  # The hubs must have survived every check.
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || say "FAIL hub: a hub (pid $pid) died during the checks (logs in $LOGDIR)"
  done
fi

echo "screenshots of the chat page: $SHOTS"
passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
