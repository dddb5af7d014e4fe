#!/usr/bin/env bash
# bench/h2/run.sh - WebSocket echo over HTTP/2 (RFC 8441) next to HTTP/1.1: msgs/s and CPU
# per message for 20 B and 16 KiB, `switchboard echo --tls-cert` (one thread, pinned to
# CPU 0) and bench-h2 (one thread, CPU 1), same TLS, same client library. Reported, not
# timed: nothing fails on a number. Prints one JSON line per run and a table.
#
# usage: bench/h2/run.sh [--connections N] [--duration SECONDS] [--rounds N]
#                        [--instructions] [--out DIR]
#
#   --instructions  also count the server's instructions per echo under valgrind --tool=callgrind,
#                   the figure that stays put on a shared machine: for each payload and version
#                   the server runs twice, each connection echoing 200 and then 1000 messages;
#                   (Ir(1000) - Ir(200)) / (echoes difference) is what one more echo costs.
#   --rounds 0      no timed runs (with --instructions: only the counts)
#   --out DIR       keep the JSON lines and the tables there (default: a temporary directory,
#                   removed at exit)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"
CONNS=10 DURATION=5 ROUNDS=3 INSTRUCTIONS=0 OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) CONNS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --instructions) INSTRUCTIONS=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BENCH="$TARGET_DIR/release/bench-h2"
[[ -x "$SWITCHBOARD_BIN" && -x "$BENCH" ]] ||
  (cd "$ROOT" && cargo build --release -q -p switchboard-cli -p switchboard-bench --bin switchboard --bin bench-h2) || exit 1
if [[ $INSTRUCTIONS == 1 ]] && ! command -v valgrind >/dev/null; then
  echo "--instructions needs valgrind (apt-get install valgrind)" >&2; exit 1
fi
DIR="$(mktemp -d /tmp/switchboard-bench-h2.XXXXXX)"
SERVER=""
trap '[[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null; [[ -n "$OUT" ]] && cp "$DIR"/results*.jsonl "$DIR"/*.md "$OUT"/ 2>/dev/null; rm -rf "$DIR"' EXIT
[[ -n "$OUT" ]] && mkdir -p "$OUT"
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
[[ -s "$DIR/results.jsonl" ]] && python3 - "$DIR/results.jsonl" <<'PY' | tee "$DIR/table.md"
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

[[ $INSTRUCTIONS == 1 ]] || exit 0
kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=""

# One callgrind run of the server: prints "instructions echoes".
count() { # size http echoes-per-connection
  local port file pid flag=() report ir
  port="$(free_port)"
  file="$DIR/callgrind.$1.$2.$3.out"
  valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no \
    "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$port" --threads 1 --no-compression \
    --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" </dev/null >"$DIR/callgrind.log" 2>&1 &
  pid=$!
  wait_for_port "$port" 60 "$pid" || { echo "echo under valgrind did not start" >&2; return 1; }
  [[ $2 == 2 ]] && flag=(--http2)
  report="$(timeout 600 "$BENCH" --url "wss://localhost:$port/" --ca "$DIR/ca.pem" "${flag[@]}" \
    -c "$CONNS" -s "$1" --warmup 0 --echoes-per-connection "$3")" || { kill "$pid"; return 1; }
  kill -TERM "$pid"; timeout 60 tail --pid="$pid" -f /dev/null; wait "$pid" 2>/dev/null
  ir="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")"
  [[ -n $ir ]] || { echo "no callgrind summary in $file" >&2; return 1; }
  echo "$ir $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["echoes"])' "$report")"
}
{
  echo
  echo "| payload | HTTP | server instructions per echo: marginal (total/N) |"
  echo "| --- | --- | --- |"
  for size in 20 16384; do
    for http in 1.1 2; do
      if a="$(count "$size" "$http" 200)" && b="$(count "$size" "$http" 1000)"; then
        echo "{\"size\":$size,\"http\":\"$http\",\"ir\":[${a% *},${b% *}],\"echoes\":[${a#* },${b#* }]}" >>"$DIR/results-callgrind.jsonl"
        cell="$(python3 -c 'import sys; a,na,b,nb=map(int,sys.argv[1:]); print(f"{(b-a)/(nb-na):,.0f} ({b/nb:,.0f})")' ${a} ${b})"
      else
        cell="failed"
      fi
      echo "| $size B | $http | $cell |"
    done
  done
} | tee "$DIR/instructions.md"
