#!/usr/bin/env bash
# scripts/test.sh - THE test command of Switchboard (README "Running the tests"; CI runs it too).
#
# usage: ./scripts/test.sh [--update-expected] [--only PHASES] [-h]
#
# Phases, in order (each one prints PASS/FAIL lines; a failure never stops the later
# independent phases, and phases that need a failed one are reported FAILED, not skipped):
#   setup     installs Autobahn wstest (tests/autobahn/install.sh) and the interop peers
#             (tests/interop/setup.sh: Node ws + playwright-core, Python websockets,
#             Debian chromium); runs in the background while Rust compiles
#   lint      cargo fmt --all -- --check; cargo clippy --workspace --all-targets -- -D warnings
#   test      tests/redis/install.sh (Debian redis-server, for the broker contract tests);
#             cargo test --workspace; cargo test --benches --workspace (only if benches exist)
#   doc       cargo doc --workspace --no-deps with every rustdoc warning denied;
#             scripts/doc-examples.py (every public library item has an example or says why not);
#             scripts/package-check.sh (every library crate packages, with README and metadata)
#   fuzz      scripts/fuzz.sh: every cargo-fuzz target for FUZZ_SECONDS (default 20) from the
#             committed seeds (fuzz/seeds/), failing on any crash or broken oracle
#   build     cargo build --release -p switchboard-cli -p switchboard --examples --bins
#   autobahn  wstest fuzzingclient -> `switchboard echo`, and the autobahn_client example ->
#             wstest fuzzingserver; cases from scripts/test-settings.sh; results compared with
#             tests/autobahn/expected-{server,client}.json
#   interop   tests/interop/run.sh: Node ws, Python websockets, headless Chromium, `switchboard connect`;
#             then tests/nginx/run.sh (real nginx in front), tests/tls/run.sh (wss://, test CA)
#             and tests/h2/run.sh (WebSocket over HTTP/2: Python h2 client, Chromium, the hub)
#   hub       tests/hub/run.sh: `switchboard serve` end to end in headless Chromium (chat over
#             WebSocket/SSE/long polling, server-side kill and resume, REST, the seeds' plain
#             page; the chat page at phone and desktop sizes, through a server restart and
#             refused at connect) and slow subscribers under both lag policies (uses the
#             interop setup);
#             tests/redis/run.sh: three `serve --redis` nodes on a real redis-server (fan-out
#             over every transport, chaos with a checker, Chromium moving from node A to B)
#
#   --update-expected  rewrite tests/autobahn/expected-*.json from this run (still fails on
#                      cases that are not conformant; review and commit the diff)
#   --only PHASES      comma-separated subset, e.g. --only build,autobahn (for local work;
#                      the phases left out are named in the output; CI always runs all)
#
# Installs what it needs (root is needed for apt on a fresh machine) and fails loudly if
# something cannot be had. Prints the time of every phase; the last line is
# "N passed, M failed" (every cargo step, Autobahn side, interop and hub check counts once).
# Exit status: 0 only if nothing failed.
set -uo pipefail

# The whole script is one { ... } block: bash parses it completely before running it,
# so editing this file while a run is in progress cannot derail that run.
{

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
# shellcheck source=test-settings.sh
source "$ROOT/scripts/test-settings.sh"

ALL_PHASES=(setup lint test doc fuzz build autobahn interop hub)
ONLY=""
UPDATE=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --update-expected) UPDATE=(--update-expected); shift ;;
    --only) ONLY="${2:-}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
wanted() { [[ -z "$ONLY" || ",$ONLY," == *",$1,"* ]]; }
if [[ -n "$ONLY" ]]; then
  for p in ${ONLY//,/ }; do
    [[ " ${ALL_PHASES[*]} " == *" $p "* ]] || { echo "test.sh: unknown phase '$p' (phases: ${ALL_PHASES[*]})" >&2; exit 2; }
  done
fi

if [[ "${CI:-}" == true || ! -t 1 ]]; then
  export CARGO_TERM_COLOR=never
fi
LOGDIR="$ROOT/target/test-logs"
mkdir -p "$LOGDIR"

PASSED=0
FAILED=0
TIMINGS=()
RUN_START=$(date +%s)

banner() { printf '\n==> %s\n' "$*"; }
pass() { echo "PASS $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $*"; FAILED=$((FAILED + 1)); }
timing() { TIMINGS+=("$(printf '%-34s %5ss' "$1" "$2")"); }

# step NAME CMD...: one command = one check. Output streams through; PASS/FAIL with its time.
step() {
  local name="$1" start rc secs
  shift
  banner "$name: $*"
  start=$(date +%s)
  "$@" </dev/null
  rc=$?
  secs=$(( $(date +%s) - start ))
  timing "$name" "$secs"
  if [[ $rc -eq 0 ]]; then pass "$name (${secs}s)"; else fail "$name (exit $rc, ${secs}s)"; fi
  return "$rc"
}

# suite NAME CMD...: a command that prints its own PASS/FAIL lines; each is counted.
# A non-zero exit without any FAIL line counts as one failure.
suite() {
  local name="$1" start rc log="$LOGDIR/$1.log"
  shift
  banner "$name: $*"
  start=$(date +%s)
  "$@" </dev/null 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  account "$name" "$log" "$rc" "$(( $(date +%s) - start ))"
}

# account NAME LOG RC SECS: counts the PASS/FAIL lines of a finished suite.
account() {
  local name="$1" log="$2" rc="$3" secs="$4" p f
  timing "$name" "$secs"
  p=$(grep -c '^PASS ' "$log")
  f=$(grep -c '^FAIL ' "$log")
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  if [[ $rc -ne 0 && $f -eq 0 ]]; then fail "$name: exited with status $rc"; fi
  if [[ $rc -eq 0 && $p -eq 0 ]]; then fail "$name: reported no checks"; fi
  echo "--- $name: $p passed, $f failed, exit $rc, ${secs}s (log $log)"
}

# --- toolchain ------------------------------------------------------------------
[[ -f "$HOME/.cargo/env" ]] && ! command -v cargo >/dev/null 2>&1 && source "$HOME/.cargo/env"
command -v cargo >/dev/null 2>&1 || { echo "test.sh: ERROR: cargo is not installed (Rust via rustup is required)" >&2; echo "0 passed, 1 failed"; exit 1; }
for component in rustfmt clippy; do
  sub="${component/rustfmt/fmt}"
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    echo "test.sh: cargo $sub missing; rustup component add $component"
    rustup component add "$component" </dev/null || { echo "test.sh: ERROR: cannot install the $component component" >&2; echo "0 passed, 1 failed"; exit 1; }
  fi
done
for tool in python3 timeout setsid; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test.sh: ERROR: $tool is required" >&2; echo "0 passed, 1 failed"; exit 1; }
done
echo "test.sh: $(cargo --version), $(rustc --version); SWITCHBOARD_EXPECT_DEFLATE=$SWITCHBOARD_EXPECT_DEFLATE; CI=${CI:-}"

# --- setup (background: network-bound, overlaps with compiling) ------------------
SETUP_PID=""
AB_PIDS=()
stop_setup() {
  local pid
  if [[ -n "$SETUP_PID" ]] && kill -0 "$SETUP_PID" 2>/dev/null; then
    kill -TERM -- "-$SETUP_PID" 2>/dev/null
    wait "$SETUP_PID" 2>/dev/null
  fi
  # Parallel Autobahn suites stop their own servers on TERM (their traps).
  for pid in "${AB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${AB_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_setup EXIT
trap 'stop_setup; exit 130' INT TERM

SETUP_NEEDED=0
{ wanted setup || wanted autobahn || wanted interop || wanted hub; } && SETUP_NEEDED=1
if [[ $SETUP_NEEDED == 1 ]]; then
  rm -f "$LOGDIR"/setup-*.rc "$LOGDIR"/setup-*.secs
  # setsid: the job gets its own process group, so an interrupted run stops all of it.
  setsid bash -c '
    cd "$1" || exit 1
    for part in autobahn interop; do
      start=$(date +%s)
      if [[ $part == autobahn ]]; then tests/autobahn/install.sh; else tests/interop/setup.sh; fi \
        >"$2/setup-$part.log" 2>&1 </dev/null
      echo $? >"$2/setup-$part.rc"
      echo $(( $(date +%s) - start )) >"$2/setup-$part.secs"
    done' setup "$ROOT" "$LOGDIR" </dev/null &
  SETUP_PID=$!
  echo "test.sh: installing Autobahn wstest and the interop peers in the background (pid $SETUP_PID, logs $LOGDIR/setup-*.log)"
fi

# waits for the background setup and reports it (once); returns 0 if PART installed.
SETUP_REPORTED=0
setup_ok() {
  local part="$1" p rc
  if [[ $SETUP_REPORTED == 0 ]]; then
    SETUP_REPORTED=1
    banner "setup: waiting for the background install"
    wait "$SETUP_PID" 2>/dev/null
    for p in autobahn interop; do
      rc="$(cat "$LOGDIR/setup-$p.rc" 2>/dev/null || echo '?')"
      timing "setup $p" "$(cat "$LOGDIR/setup-$p.secs" 2>/dev/null || echo '?')"
      if [[ "$rc" == 0 ]]; then
        tail -n 2 "$LOGDIR/setup-$p.log" | sed 's/^/    /'
        pass "setup $p (tests/$p/$([[ $p == autobahn ]] && echo install.sh || echo setup.sh))"
      else
        tail -n 25 "$LOGDIR/setup-$p.log" 2>/dev/null | sed 's/^/    | /'
        fail "setup $p: could not install (exit $rc; log $LOGDIR/setup-$p.log)"
      fi
    done
  fi
  [[ "$(cat "$LOGDIR/setup-$part.rc" 2>/dev/null)" == 0 ]]
}

# --- lint, test, doc -----------------------------------------------------------
if wanted lint; then
  step "cargo fmt --check" cargo fmt --all -- --check
  step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
  step "cargo clippy (switchboard, all features)" cargo clippy -p switchboard --all-features --all-targets -- -D warnings
fi
if wanted test; then
  # The broker contract tests start real redis-servers (switchboard-hub/tests/broker_contract.rs).
  step "redis-server installed" tests/redis/install.sh
  step "cargo test" cargo test --workspace
  # The feature-gated suites (hyper/axum upgrade, TLS) of the library.
  step "cargo test (switchboard, all features)" cargo test -p switchboard --all-features
  has_benches="$(cargo metadata --no-deps --format-version 1 </dev/null 2>/dev/null | python3 -c '
import json, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
print(sum(1 for p in meta["packages"] if p["id"] in members for t in p["targets"] if "bench" in t["kind"]))' || echo error)"
  case "$has_benches" in
    0) echo "test.sh: no bench targets in the workspace: cargo test --benches not needed" ;;
    error) fail "cargo metadata (to find bench targets) failed" ;;
    *) step "cargo test --benches" cargo test --benches --workspace ;;
  esac
fi
if wanted doc; then
  step "cargo doc (warnings denied)" env RUSTDOCFLAGS="${RUSTDOCFLAGS:+$RUSTDOCFLAGS }-D warnings" \
    cargo doc --workspace --no-deps
  step "every public item has an example (scripts/doc-examples.py)" scripts/doc-examples.py
  step "cargo package --list (library crates)" scripts/package-check.sh
fi

if wanted fuzz; then
  # A short bounded run per target (the longer run is scripts/fuzz.sh with more seconds).
  step "fuzz (${FUZZ_SECONDS:-20}s per target)" scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi

# --- release build, Autobahn, interop ----------------------------------------------
BUILD_OK=1
if wanted build || wanted autobahn || wanted interop || wanted hub; then
  step "cargo build --release" cargo build --release -p switchboard-cli -p switchboard --examples --bins || BUILD_OK=0
fi

if wanted autobahn; then
  if ! setup_ok autobahn; then
    fail "autobahn server: not run, wstest could not be installed"
    fail "autobahn client: not run, wstest could not be installed"
  elif [[ $BUILD_OK == 0 ]]; then
    fail "autobahn server: not run, the release build failed"
    fail "autobahn client: not run, the release build failed"
  else
    if [[ "$AUTOBAHN_PARALLEL" == 1 ]]; then
      # Both sides at once: each is one single-threaded wstest, so on 2 cores this
      # roughly halves the phase; their output is shown when each has finished.
      banner "autobahn server and client suites in parallel (AUTOBAHN_PARALLEL=1)"
      ab_start=$(date +%s)
      for side in server client; do
        tests/autobahn/suites.sh --profile ci --side "$side" "${UPDATE[@]}" \
          </dev/null >"$LOGDIR/autobahn-$side.log" 2>&1 &
        AB_PIDS+=($!)
      done
      for i in 0 1; do
        side=$([[ $i == 0 ]] && echo server || echo client)
        wait "${AB_PIDS[$i]}"
        rc=$?
        banner "autobahn-$side (log $LOGDIR/autobahn-$side.log)"
        cat "$LOGDIR/autobahn-$side.log"
        secs="$(sed -n "s/^\[autobahn\] $side side took \([0-9]*\)s$/\1/p" "$LOGDIR/autobahn-$side.log")"
        account "autobahn-$side" "$LOGDIR/autobahn-$side.log" "$rc" "${secs:-?}"
      done
      AB_PIDS=()
      timing "autobahn (both sides, wall)" "$(( $(date +%s) - ab_start ))"
    else
      suite "autobahn-server" tests/autobahn/suites.sh --profile ci --side server "${UPDATE[@]}"
      suite "autobahn-client" tests/autobahn/suites.sh --profile ci --side client "${UPDATE[@]}"
    fi
  fi
fi

# gated_suites WHAT SCRIPT...: suites that need the interop setup (Node packages,
# Chromium) and the release build; each script's folder names its suite. When a
# prerequisite is missing, one FAIL says why.
gated_suites() {
  local what="$1" script
  shift
  if ! setup_ok interop; then
    fail "$what: not run, the interop peers and Chromium (tests/interop/setup.sh) could not be installed"
  elif [[ $BUILD_OK == 0 ]]; then
    fail "$what: not run, the release build failed"
  else
    for script in "$@"; do
      suite "$(basename "$(dirname "$script")")" "$script"
    done
  fi
}

if wanted interop; then
  gated_suites interop tests/interop/run.sh
fi
if wanted hub; then
  gated_suites hub tests/hub/run.sh
  # Three `serve --redis` nodes on a real redis-server: fan-out, chaos, a browser moving nodes.
  gated_suites redis tests/redis/run.sh
fi
if wanted interop; then
  # A real nginx in front of `switchboard echo` (the seeds' config), wss:// with a test
  # CA, Chromium included, and WebSocket over HTTP/2 (RFC 8441).
  gated_suites nginx/tls/h2 tests/nginx/run.sh tests/tls/run.sh tests/h2/run.sh
fi

# Setup was requested on its own (--only setup): report it too.
if wanted setup && [[ $SETUP_REPORTED == 0 && $SETUP_NEEDED == 1 ]]; then
  setup_ok autobahn || true
fi

# --- summary ---------------------------------------------------------------------
banner "timings"
for t in "${TIMINGS[@]}"; do echo "  $t"; done
printf '  %-34s %5ss\n' "total" "$(( $(date +%s) - RUN_START ))"
if [[ -n "$ONLY" ]]; then
  left_out=()
  for p in "${ALL_PHASES[@]}"; do wanted "$p" || left_out+=("$p"); done
  echo "NOTE: partial run (--only $ONLY); phases not run: ${left_out[*]:-none}"
fi
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 && $PASSED -gt 0 ]]
exit
}
