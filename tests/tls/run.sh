#!/usr/bin/env bash
# tests/tls/run.sh - wss:// end to end with a CA made here (openssl), on loopback.
#
# usage: tests/tls/run.sh
#
# Makes a throw-away CA and a certificate for localhost/127.0.0.1 signed by it, starts
# `switchboard echo --tls-cert --tls-key`, and checks:
#   1. `switchboard connect wss://localhost:PORT/ --ca ca.pem`: lines echoed, close 1000;
#   2. the same without --ca fails the TLS handshake (the CA is not in the webpki roots);
#   3. headless Chromium over wss:// (browser_wss.mjs; the certificate's key trusted with
#      --ignore-certificate-errors-spki-list), when tests/interop/setup.sh installed it.
# Prints PASS/FAIL lines and ends with "N passed, M failed"; exit 0 only if nothing failed.
#
# Environment: SWITCHBOARD_BIN (default $CARGO_TARGET_DIR/release/switchboard; built if
# missing).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

suite_checks tls

PIDS=()
DIR="$(mktemp -d /tmp/switchboard-tls.XXXXXX)"
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  PIDS=()
  if [[ $FAILED -gt 0 ]]; then echo "tls: files kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

command -v openssl >/dev/null || { fail "openssl is not installed"; finish; }
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  (cd "$ROOT" && cargo build --release -q -p switchboard-cli) || { fail "cargo build failed"; finish; }
fi

# --- a CA and a server certificate ----------------------------------------------------
"$HERE/make-test-pki.sh" "$DIR" || { fail "openssl could not make the test PKI: $(tail -2 "$DIR/openssl.log")"; finish; }

PORT="$(free_port)"
"$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$PORT" --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" \
  </dev/null >"$DIR/echo.log" 2>&1 &
PIDS+=("$!")
wait_for_port "$PORT" 20 "${PIDS[0]}" || { fail "switchboard echo --tls-cert did not start: $(tail -3 "$DIR/echo.log")"; finish; }

# --- 1. switchboard connect with the CA -----------------------------------------------
out="$( { printf 'over-tls-1\nover-tls-2\n'; sleep 0.5; } |
  timeout 20 "$SWITCHBOARD_BIN" connect "wss://localhost:$PORT/" --ca "$DIR/ca.pem" 2>&1)"
rc=$?
if [[ $rc -eq 0 ]] && grep -q '^over-tls-1$' <<<"$out" && grep -q '^over-tls-2$' <<<"$out" && grep -q 'closed: 1000' <<<"$out"; then
  pass "switchboard connect wss://localhost --ca: lines echoed, close 1000"
else
  fail "switchboard connect wss:// --ca (exit $rc): $(tr '\n' ' ' <<<"$out" | head -c 400)"
fi

# --- 2. without the CA ----------------------------------------------------------------
out="$(printf 'x\n' | timeout 20 "$SWITCHBOARD_BIN" connect "wss://localhost:$PORT/" 2>&1)"
rc=$?
if [[ $rc -ne 0 ]] && grep -qi 'certificate\|unknown issuer\|UnknownIssuer' <<<"$out"; then
  pass "without --ca the test CA is not trusted ($(grep -io 'unknown *issuer\|certificate[^.]*' <<<"$out" | head -1))"
else
  fail "without --ca: expected a certificate error, got exit $rc: $(tr '\n' ' ' <<<"$out" | head -c 300)"
fi

# --- 3. headless Chromium over wss:// -------------------------------------------------
if [[ -d "$ROOT/tests/interop/node_modules/playwright-core" && -x /usr/bin/chromium ]] && command -v node >/dev/null; then
  SPKI="$(openssl x509 -in "$DIR/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)"
  if out="$(timeout -k 5 120 node "$HERE/browser_wss.mjs" --url "wss://localhost:$PORT/" --spki "$SPKI" \
      --label "chromium -> switchboard echo over wss" 2>&1)"; then
    pass "headless Chromium over wss:// ($(grep -c '^PASS' <<<"$out") browser checks)"
  else
    fail "headless Chromium over wss://: $(grep '^FAIL' <<<"$out" | head -3 | tr '\n' ' ')"
  fi
elif [[ "${CI:-}" == true ]]; then
  fail "headless Chromium over wss://: not installed (run tests/interop/setup.sh first)"
else
  echo "SKIP tls: headless Chromium over wss:// (run tests/interop/setup.sh to install it)"
fi

finish
