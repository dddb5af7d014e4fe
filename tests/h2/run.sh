#!/usr/bin/env bash
# tests/h2/run.sh - WebSocket over HTTP/2 (RFC 8441) end to end, on loopback, with the
# test CA of tests/tls (make-test-pki.sh).
#
# usage: tests/h2/run.sh
#
# Checks:
#   1. an independent client on the PyPI `h2` package (h2_ws_client.py, in the venv of
#      tests/interop/setup.sh) against `switchboard echo --tls-cert --tls-key`: ALPN h2,
#      SETTINGS_ENABLE_CONNECT_PROTOCOL, text/binary/fragmented/ping/close with and without
#      permessage-deflate, close then END_STREAM without RST_STREAM, two streams at once, a
#      refused stream next to a served one;
#   2. `switchboard echo --no-http2`: ALPN offers no h2 (the kill switch);
#   3. `switchboard connect --http2` over h2 (lines echoed, close 1000, HTTP/2.0 reported);
#      `--http2-auto` falls back to HTTP/1.1 against --no-http2; `--http2` then fails;
#   4. `switchboard serve --tls-cert --tls-key` in headless Chromium (browser_hub.mjs): the
#      page over h2, its wss:// WebSocket counted as HTTP/2 by the hub, ten EventSources on
#      one page, a chat between an h2 page and an HTTP/1.1 page; plus curl --http2 for REST.
# The protocol cases over h2 (frames, UTF-8, close) run in `cargo test -p switchboard
# --features http2 --test h2` (protocol_cases_over_h2_match_http11).
# Prints PASS/FAIL lines and ends with "N passed, M failed"; exit 0 only if nothing failed.
#
# Environment: SWITCHBOARD_BIN (default $CARGO_TARGET_DIR/release/switchboard; built if
# missing).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

suite_checks h2

PIDS=()
DIR="$(mktemp -d /tmp/switchboard-h2.XXXXXX)"
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  PIDS=()
  if [[ $FAILED -gt 0 ]]; then echo "h2: files kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

PY="$ROOT/tests/interop/.venv/bin/python"
command -v openssl >/dev/null || { fail "openssl is not installed"; finish; }
"$PY" -c 'import h2' 2>/dev/null || { fail "the Python h2 package is missing from $PY (run tests/interop/setup.sh)"; finish; }
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  (cd "$ROOT" && cargo build --release -q -p switchboard-cli) || { fail "cargo build failed"; finish; }
fi
"$ROOT/tests/tls/make-test-pki.sh" "$DIR" || { fail "openssl could not make the test PKI: $(tail -2 "$DIR/openssl.log")"; finish; }

# start_echo NAME ARGS...: `switchboard echo` over TLS on a free port; sets PORT.
start_echo() {
  local name="$1"
  shift
  PORT="$(free_port)"
  RUST_LOG=switchboard=debug "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$PORT" --threads 1 \
    --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" "$@" </dev/null >"$DIR/$name.log" 2>&1 &
  PIDS+=("$!")
  wait_for_port "$PORT" 20 "$!" || { fail "switchboard echo $* did not start: $(tail -3 "$DIR/$name.log")"; finish; }
}

# --- 1. the Python h2 client ------------------------------------------------------------
start_echo echo-h2
H2_PORT="$PORT"
out="$(timeout -k 5 60 "$PY" "$HERE/h2_ws_client.py" localhost "$H2_PORT" "$DIR/ca.pem" 2>&1)"
rc=$?
grep -E '^(PASS|FAIL) ' <<<"$out"
PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
FAILED=$((FAILED + $(grep -c '^FAIL ' <<<"$out")))
if [[ $rc -ne 0 && $(grep -c '^FAIL ' <<<"$out") -eq 0 ]]; then
  fail "h2_ws_client.py exited $rc without a FAIL line: $(tail -3 <<<"$out" | tr '\n' ' ')"
fi
if grep -q 'WebSocket connection accepted.*HTTP/2' "$DIR/echo-h2.log"; then
  pass "the server logged its WebSockets as HTTP/2.0"
else
  fail "the server log has no HTTP/2 WebSocket: $(grep -m2 'accepted' "$DIR/echo-h2.log" | tr '\n' ' ')"
fi

# --- 2. the kill switch -----------------------------------------------------------------------
start_echo echo-h1 --no-http2
H1_PORT="$PORT"
out="$(timeout -k 5 30 "$PY" "$HERE/h2_ws_client.py" localhost "$H1_PORT" "$DIR/ca.pem" --expect-no-h2 2>&1)"
if [[ $? -eq 0 ]] && grep -q '^PASS' <<<"$out"; then
  pass "--no-http2: ALPN does not pick h2"
else
  fail "--no-http2: $(tr '\n' ' ' <<<"$out" | head -c 300)"
fi

# --- 3. switchboard connect over h2 -------------------------------------------------------
# connect_check LABEL PORT EXPECT_VERSION ARGS...: two lines echoed and close 1000.
connect_check() {
  local label="$1" port="$2" version="$3" out rc
  shift 3
  out="$( { printf 'over-h2-1\nover-h2-2\n'; sleep 0.5; } |
    timeout 20 "$SWITCHBOARD_BIN" connect "wss://localhost:$port/chat" --ca "$DIR/ca.pem" "$@" 2>&1)"
  rc=$?
  if [[ $rc -eq 0 ]] && grep -q '^over-h2-1$' <<<"$out" && grep -q '^over-h2-2$' <<<"$out" &&
     grep -q 'closed: 1000' <<<"$out" && grep -q "connected:.*$version" <<<"$out"; then
    pass "$label: lines echoed over $version, close 1000"
  else
    fail "$label (exit $rc): $(tr '\n' ' ' <<<"$out" | head -c 400)"
  fi
}
connect_check "switchboard connect --http2" "$H2_PORT" "HTTP/2.0" --http2
connect_check "switchboard connect --http2-auto to an h2 server" "$H2_PORT" "HTTP/2.0" --http2-auto
connect_check "switchboard connect --http2-auto to --no-http2 falls back" "$H1_PORT" "HTTP/1.1" --http2-auto
out="$(printf 'x\n' | timeout 20 "$SWITCHBOARD_BIN" connect "wss://localhost:$H1_PORT/" --ca "$DIR/ca.pem" --http2 2>&1)"
rc=$?
if [[ $rc -ne 0 ]] && grep -qi 'h2' <<<"$out"; then
  pass "switchboard connect --http2 to --no-http2 fails ($(grep -io 'did not pick h2[^)]*' <<<"$out" | head -1))"
else
  fail "switchboard connect --http2 to --no-http2: expected a failure, got exit $rc: $(tr '\n' ' ' <<<"$out" | head -c 300)"
fi

# --- 4. the hub over h2 -------------------------------------------------------------------
HUB_PORT="$(free_port)"
RUST_LOG=switchboard_hub=debug "$SWITCHBOARD_BIN" serve --listen "127.0.0.1:$HUB_PORT" \
  --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" </dev/null >"$DIR/hub.log" 2>&1 &
PIDS+=("$!")
if ! wait_for_port "$HUB_PORT" 20 "$!"; then
  fail "switchboard serve --tls-cert did not start: $(tail -3 "$DIR/hub.log")"
  finish
fi
if command -v curl >/dev/null; then
  out="$(curl -sS --http2 --cacert "$DIR/ca.pem" -o /dev/null -w '%{http_version} %{http_code}' \
    "https://localhost:$HUB_PORT/api/channels" 2>&1)"
  if [[ "$out" == "2 200" ]]; then
    pass "REST over h2 (curl --http2: HTTP/2 200)"
  else
    fail "REST over h2: curl said '$out'"
  fi
fi
if [[ -d "$ROOT/tests/interop/node_modules/playwright-core" && -x /usr/bin/chromium ]] && command -v node >/dev/null; then
  SPKI="$(openssl x509 -in "$DIR/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)"
  out="$(timeout -k 5 180 node "$HERE/browser_hub.mjs" --base "https://localhost:$HUB_PORT" --spki "$SPKI" 2>&1)"
  rc=$?
  grep -E '^(PASS|FAIL) ' <<<"$out"
  PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
  FAILED=$((FAILED + $(grep -c '^FAIL ' <<<"$out")))
  if [[ $rc -ne 0 && $(grep -c '^FAIL ' <<<"$out") -eq 0 ]]; then
    fail "browser_hub.mjs exited $rc: $(tail -3 <<<"$out" | tr '\n' ' ')"
  fi
  if grep -q 'WebSocket accepted.*HTTP/2' "$DIR/hub.log"; then
    pass "the hub logged a WebSocket accepted over HTTP/2.0"
  else
    fail "the hub log has no HTTP/2 WebSocket"
  fi
else
  fail "headless Chromium: not installed (run tests/interop/setup.sh first)"
fi

finish
