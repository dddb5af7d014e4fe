#!/usr/bin/env bash
# tests/autobahn/suites.sh - run Autobahn|Testsuite against switchboard and judge the result.
#
# usage: tests/autobahn/suites.sh [--profile ci|full] [--side server|client|both] [--update-expected]
#
#   --profile ci     (default) the cases of scripts/test-settings.sh (autobahn_ci_cases);
#                    compared with tests/autobahn/expected-{server,client}.json
#   --profile full   all 517 cases; compared with tests/autobahn/expected-full-{server,client}.json
#   --side           server: `wstest -m fuzzingclient` against `switchboard echo`;
#                    client: the `autobahn_client` example against `wstest -m fuzzingserver`;
#                    both (default)
#   --update-expected  rewrite the expected file(s) from this run (conformance is still checked)
#
# Needs the release binaries (it does not build them; scripts/test.sh and full.sh do):
#   SWITCHBOARD_BIN      default $CARGO_TARGET_DIR/release/switchboard (target/ by default)
#   AUTOBAHN_CLIENT_BIN  default $CARGO_TARGET_DIR/release/examples/autobahn_client
# and wstest (tests/autobahn/install.sh). Reports: tests/autobahn/reports/PROFILE/SIDE/.
# Prints PASS/FAIL lines (see check.py); exit status 0 only if every check passed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

PROFILE=ci
SIDE=both
UPDATE=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) PROFILE="${2:-}"; shift 2 ;;
    --side) SIDE="${2:-}"; shift 2 ;;
    --update-expected) UPDATE=(--update-expected); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "suites.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in
  ci) CASES="$(autobahn_ci_cases)"; EXPECTED_PREFIX="expected"; TIMEOUT="$AUTOBAHN_CI_TIMEOUT"
      UPDATE_COMMAND="./scripts/test.sh --update-expected" ;;
  full) CASES="*"; EXPECTED_PREFIX="expected-full"; TIMEOUT="${AUTOBAHN_FULL_TIMEOUT:-7200}"
      UPDATE_COMMAND="tests/autobahn/full.sh --update-expected" ;;
  *) echo "suites.sh: --profile must be ci or full" >&2; exit 2 ;;
esac
case "$SIDE" in
  server) SIDES=(server) ;;
  client) SIDES=(client) ;;
  both) SIDES=(server client) ;;
  *) echo "suites.sh: --side must be server, client or both" >&2; exit 2 ;;
esac

AUTOBAHN_CLIENT_BIN="${AUTOBAHN_CLIENT_BIN:-$TARGET_DIR/release/examples/autobahn_client}"

say() { printf '[autobahn] %s\n' "$*"; }

SERVER_PID=""
stop_echo_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
  fi
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
trap stop_echo_server EXIT
trap 'stop_echo_server; exit 130' INT TERM

FAILED=0
fail_side() { printf 'FAIL autobahn %s: %s\n' "$1" "$2"; FAILED=1; }

run_server_side() {
  local report="$HERE/reports/$PROFILE/server" port rc
  mkdir -p "$report"
  if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
    fail_side server "$SWITCHBOARD_BIN is missing (cargo build --release -p switchboard-cli)"
    return
  fi
  port="$(free_port)"
  say "server suite: $SWITCHBOARD_BIN echo --listen 127.0.0.1:$port (log $report/echo-server.log)"
  "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$port" </dev/null >"$report/echo-server.log" 2>&1 &
  SERVER_PID=$!
  if ! wait_for_port "$port" 20 "$SERVER_PID"; then
    tail -n 20 "$report/echo-server.log"
    fail_side server "switchboard echo did not accept connections on 127.0.0.1:$port within 20s"
    stop_echo_server
    return
  fi
  AUTOBAHN_REPORT_DIR="$report" AUTOBAHN_AGENT="$AUTOBAHN_AGENT_NAME" AUTOBAHN_TIMEOUT="$TIMEOUT" \
    "$HERE/run-server-suite.sh" "127.0.0.1:$port" "$CASES" 2>&1 | tee "$report/run.log"
  rc=${PIPESTATUS[0]}
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 20 "$report/echo-server.log"
    fail_side server "switchboard echo died during the run (log $report/echo-server.log)"
  fi
  stop_echo_server
  [[ $rc -eq 2 ]] && fail_side server "run-server-suite.sh setup error (exit 2)"
  grep -q '^ERROR: wstest exited with status' "$report/run.log" \
    && fail_side server "$(grep -m1 '^ERROR: wstest exited' "$report/run.log" | sed 's/^ERROR: //')"
  judge server "$report"
}

run_client_side() {
  local report="$HERE/reports/$PROFILE/client" port rc
  mkdir -p "$report"
  if [[ ! -x "$AUTOBAHN_CLIENT_BIN" ]]; then
    fail_side client "$AUTOBAHN_CLIENT_BIN is missing (cargo build --release -p switchboard --examples)"
    return
  fi
  port="$(free_port)"
  say "client suite: $AUTOBAHN_CLIENT_BIN ws://127.0.0.1:$port"
  AUTOBAHN_REPORT_DIR="$report" AUTOBAHN_AGENT="$AUTOBAHN_AGENT_NAME" AUTOBAHN_TIMEOUT="$TIMEOUT" \
    AUTOBAHN_CASES="$CASES" "$HERE/run-client-suite.sh" "$port" "$AUTOBAHN_CLIENT_BIN" "ws://127.0.0.1:$port" \
    </dev/null 2>&1 | tee "$report/run.log"
  rc=${PIPESTATUS[0]}
  [[ $rc -eq 2 ]] && fail_side client "run-client-suite.sh setup error (exit 2)"
  grep -q '^ERROR: client command exited with status' "$report/run.log" \
    && fail_side client "$(grep -m1 '^ERROR: client command exited' "$report/run.log" | sed 's/^ERROR: //')"
  judge client "$report"
}

judge() {
  local side="$1" report="$2"
  python3 "$HERE/check.py" --side "$side" --report "$report" \
    --expected "$HERE/$EXPECTED_PREFIX-$side.json" --selected "$report/expected-cases.json" \
    --agent "$AUTOBAHN_AGENT_NAME" --conformance "$HERE/CONFORMANCE.md" \
    --update-command "$UPDATE_COMMAND" "${UPDATE[@]}" || FAILED=1
}

say "profile $PROFILE: cases '$CASES' (SWITCHBOARD_EXPECT_DEFLATE=$SWITCHBOARD_EXPECT_DEFLATE)"
for side in "${SIDES[@]}"; do
  start=$(date +%s)
  "run_${side}_side"
  say "$side side took $(( $(date +%s) - start ))s"
done
exit "$FAILED"
