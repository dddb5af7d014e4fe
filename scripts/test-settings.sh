# scripts/test-settings.sh - the knobs of the test command, in one place.
#
# Sourced (never executed) by scripts/test.sh, tests/autobahn/*.sh and
# tests/interop/*.sh. Every value can be overridden from the environment.

# Whether permessage-deflate (RFC 7692) is expected to be negotiated by
# `switchboard echo` (default) and by `switchboard connect`.
#   1: the Autobahn CI run includes the compression subset below, and the
#      interop checks require Chromium, Node `ws` and Python `websockets` to
#      negotiate permessage-deflate with `switchboard echo`.
#   0: compression cases are left out and the interop checks require that no
#      extension is negotiated.
# Flipping it changes the selected Autobahn cases, so the expected results must
# be rewritten afterwards: ./scripts/test.sh --update-expected
: "${SWITCHBOARD_EXPECT_DEFLATE:=1}"

# The binaries the suites run: what `cargo build --release` made (the build phase of
# scripts/test.sh), under $CARGO_TARGET_DIR or the repository's target/.
_settings_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${TARGET_DIR:=${CARGO_TARGET_DIR:-$_settings_root/target}}"
: "${SWITCHBOARD_BIN:=$TARGET_DIR/release/switchboard}"

# Autobahn|Testsuite cases run by the test command (and so by CI), as
# comma-separated wstest patterns. Sections 1-11 are RFC 6455 (wstest has no 8.*
# or 11.*; the patterns match nothing there); the compression subset covers every
# negotiation parameter combination of sections 12 and 13 in a few minutes.
# The full 517 cases run with tests/autobahn/full.sh instead.
: "${AUTOBAHN_CASES_CORE:=1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,11.*}"
: "${AUTOBAHN_CASES_DEFLATE:=12.1.*,12.5.*,13.1.*,13.3.*,13.5.*,13.7.*}"

# Prints the case patterns the test command runs.
autobahn_ci_cases() {
  if [[ "$SWITCHBOARD_EXPECT_DEFLATE" == 1 ]]; then
    printf '%s,%s\n' "$AUTOBAHN_CASES_CORE" "$AUTOBAHN_CASES_DEFLATE"
  else
    printf '%s\n' "$AUTOBAHN_CASES_CORE"
  fi
}

# Upper bound, in seconds, for one Autobahn side (server or client) in CI; a hung
# peer fails the run instead of eating the CI budget.
: "${AUTOBAHN_CI_TIMEOUT:=1200}"

# 1: scripts/test.sh runs the Autobahn server and client suites at the same time
# (each side is one single-threaded wstest, so 2 cores finish both in about the
# time of one); 0: one after the other, with their output streamed live.
: "${AUTOBAHN_PARALLEL:=1}"

# The agent name both of our peers report to Autobahn.
: "${AUTOBAHN_AGENT_NAME:=switchboard}"

# Picks a free TCP port on 127.0.0.1 (asks the kernel; the tiny race between
# closing the probe socket and the real bind is acceptable for tests).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port PORT [SECONDS] [PID]: succeeds once 127.0.0.1:PORT accepts a TCP
# connection; fails after SECONDS (default 20) or as soon as process PID exits.
wait_for_port() {
  local port="$1" secs="${2:-20}" pid="${3:-}" i
  for ((i = 0; i < secs * 10; i++)); do
    if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# suite_checks NAME: for a suite script, defines `pass` and `fail` (each prints
# "PASS NAME: ..." or "FAIL NAME: ..." and counts it) and `finish` (prints the closing
# "N passed, M failed" line and exits non-zero if anything failed).
suite_checks() {
  SUITE_NAME="$1"
  PASSED=0
  FAILED=0
  pass() { echo "PASS $SUITE_NAME: $*"; PASSED=$((PASSED + 1)); }
  fail() { echo "FAIL $SUITE_NAME: $*"; FAILED=$((FAILED + 1)); }
  finish() {
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
    exit $?
  }
}
