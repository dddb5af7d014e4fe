#!/usr/bin/env bash
# bench/h2/run.sh - WebSocket echo over HTTP/2 (RFC 8441) next to HTTP/1.1: msgs/s and CPU
# per message for 20 B and 16 KiB, `switchboard echo --tls-cert` (one thread, pinned to
# CPU 0) and bench-h2 (one thread, CPU 1), same TLS, same client library. Reported, not
# timed: nothing fails on a number. Prints one JSON line per run and a table.
#
# usage: bench/h2/run.sh [--connections N] [--duration SECONDS] [--rounds N]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"
CONNS=10 DURATION=5 ROUNDS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) CONNS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BENCH="$TARGET_DIR/release/bench-h2"
[[ -x "$SWITCHBOARD_BIN" && -x "$BENCH" ]] ||
  (cd "$ROOT" && cargo build --release -q -p switchboard-cli -p switchboard-bench --bin switchboard --bin bench-h2) || exit 1
DIR="$(mktemp -d /tmp/switchboard-bench-h2.XXXXXX)"
SERVER=""
trap '[[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null; rm -rf "$DIR"' EXIT
"$ROOT/tests/tls/make-test-pki.sh" "$DIR" || { echo "openssl failed" >&2; exit 1; }
PORT="$(free_port)"
taskset -c 0 "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$PORT" --threads 1 --no-compression \
  --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" </dev/null >"$DIR/echo.log" 2>&1 &
SERVER=$!
wait_for_port "$PORT" 20 "$SERVER" || { echo "echo did not start" >&2; exit 1; }
echo "# $(date -u +%FT%TZ), $(nproc) CPUs, $CONNS connections, ${DURATION}s x $ROUNDS rounds, alternating"
for round in $(seq "$ROUNDS"); do
  for size in 20 16384; do
    for http in 1.1 2; do
      flag=(); [[ $http == 2 ]] && flag=(--http2)
      taskset -c 1 "$BENCH" --url "wss://localhost:$PORT/" --ca "$DIR/ca.pem" "${flag[@]}" \
        -c "$CONNS" -s "$size" --duration "$DURATION" --server-pid "$SERVER" | tee -a "$DIR/results.jsonl"
    done
  done
done
python3 - "$DIR/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| payload | HTTP | echoes/s (median) | server CPU µs/echo | client CPU µs/echo |")
print("| --- | --- | --- | --- | --- |")
for size in (20, 16384):
    for http in ("1.1", "2"):
        rs = [r for r in rows if r["size"] == size and r["http"] == http]
        med = lambda k: statistics.median(float(r[k]) for r in rs)
        print(f"| {size} B | {http} | {med('echoes_per_s'):.0f} | {med('server_cpu_us_per_echo'):.2f} | {med('client_cpu_us_per_echo'):.2f} |")
PY
