#!/usr/bin/env bash
# bench/redis/run.sh - fan-out across two nodes that share channels through one Redis:
# `switchboard serve --redis` vs Socket.IO with @socket.io/redis-adapter, same Redis, same run.
#
# usage: bench/redis/run.sh [--per-node "1000 10000"] [--rounds N] [--window N] [--size BYTES]
#                           [--out DIR] [--no-build]
#
#   --per-node L   subscribers per node (default "1000 10000": 2k and 20k in all)
#   --rounds N     measured rounds per server and size (default 3; one warm-up round first)
#   --window N     messages in flight (default 64)
#   --size BYTES   payload (default 64)
#   --out DIR      results (default bench/redis/results/<date>)
#   --no-build     use target/release/{switchboard,bench-fanout} as they are
#
# For each size, each server kind in turn: a fresh redis-server (no persistence) and two
# nodes on free loopback ports; bench-fanout (bench/fanout) opens the subscribers spread
# over both nodes and one publisher on node 1, runs the rounds, and reports deliveries/s
# (all subscribers) and publish-to-delivery latency p50/p99 measured on node 2's
# subscribers (cross-node; it includes the pacing window's queueing). Everything is
# stopped by PID. Results: DIR/results.jsonl and DIR/table.md. Not a timed test: numbers
# depend on the machine and on what else runs (the load average is recorded).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

PER_NODE="1000 10000"
ROUNDS=3
WINDOW=64
SIZE=64
OUT=""
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --per-node) PER_NODE="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --window) WINDOW="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "bench/redis: ERROR: $*" >&2; exit 1; }
note() { echo "bench/redis: $*" >&2; }

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# SWITCHBOARD_BIN comes from scripts/test-settings.sh (overridable from the environment).
CLIENT_BIN="${CLIENT_BIN:-$TARGET_DIR/release/bench-fanout}"
OUT="${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

"$ROOT/tests/redis/install.sh" >&2 || die "redis-server is needed"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are required"
if [[ $BUILD == 1 ]]; then
  note "cargo build --release (switchboard, bench-fanout)"
  { cargo build --release -p switchboard-cli --bin switchboard \
      && cargo build --release -p switchboard-bench --no-default-features --bin bench-fanout; } \
    </dev/null >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed (log $OUT/build.log)"; }
fi
[[ -x "$SWITCHBOARD_BIN" && -x "$CLIENT_BIN" ]] || die "missing $SWITCHBOARD_BIN or $CLIENT_BIN"
"$SWITCHBOARD_BIN" serve --help | grep -q -- --redis || die "$SWITCHBOARD_BIN has no serve --redis"
lock_sum="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$HERE/node_modules/.switchboard-stamp"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  note "npm ci (socket.io, @socket.io/redis-adapter, redis)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error </dev/null) >&2 || die "npm ci failed in $HERE"
  echo "$lock_sum" >"$stamp"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

# start NAME PORT CMD...: one server in the background, awaited on its port.
start() {
  local name="$1" port="$2"
  shift 2
  "$@" </dev/null >"$OUT/$name.log" 2>&1 &
  PIDS+=("$!")
  wait_for_port "$port" 20 "$!" || { tail -n 20 "$OUT/$name.log" >&2; die "$name did not start (log $OUT/$name.log)"; }
}

{
  echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1) ($(nproc) cores available)"
  echo "- $(redis-server --version | cut -d' ' -f1-3); node $(node --version); socket.io $(node -p 'require(process.argv[1]).version' "$HERE/node_modules/socket.io/package.json"), @socket.io/redis-adapter $(node -p 'require(process.argv[1]).version' "$HERE/node_modules/@socket.io/redis-adapter/package.json")"
  echo "- switchboard: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  echo "- load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.md"
cat "$OUT/machine.md" >&2

for per in $PER_NODE; do
  total=$((per * 2))
  messages=$(( 1000000 / total )); (( messages < 20 )) && messages=20
  for kind in switchboard socketio; do
    rport="$(free_port)"; p1="$(free_port)"; p2="$(free_port)"
    start "redis-$kind-$per" "$rport" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no
    for p in "$p1" "$p2"; do
      case "$kind" in
        switchboard)
          printf '[rate_limit]\nmessages_per_second = 0.0\n[limits]\nmax_connections_per_ip = 100000\n' >"$OUT/switchboard.toml"
          start "$kind-$per-$p" "$p" env RUST_LOG=warn "$SWITCHBOARD_BIN" serve --listen "127.0.0.1:$p" \
            --config "$OUT/switchboard.toml" --redis "redis://127.0.0.1:$rport" ;;
        socketio)
          start "$kind-$per-$p" "$p" node "$HERE/socketio-redis-server.js" --port "$p" --redis "redis://127.0.0.1:$rport" ;;
      esac
    done
    note "$kind: $per subscribers per node, $messages messages per round"
    timeout -k 5 600 "$CLIENT_BIN" --target "$kind" --addr "127.0.0.1:$p1" \
      --sub-addr "127.0.0.1:$p1" --sub-addr "127.0.0.1:$p2" --subscribers "$total" \
      --messages "$messages" --rounds "$ROUNDS" --window "$WINDOW" --size "$SIZE" --json \
      >>"$RESULTS" 2>"$OUT/client-$kind-$per.log" || note "$kind x$per: client failed or incomplete (see $RESULTS and $OUT/client-$kind-$per.log)"
    stop_all
  done
done

python3 - "$RESULTS" >"$OUT/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| server | subscribers (per node x 2) | deliveries/s (median) | cross-node p50 | cross-node p99 | complete |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    med = r.get("median_deliveries_per_sec")
    ms = lambda us: "-" if us is None else f"{us/1000:.1f} ms"
    print(f"| {r['target']} | {r['subscribers']//2} x 2 | {'-' if med is None else f'{med:,.0f}'} | {ms(r.get('latency_p50_us'))} | {ms(r.get('latency_p99_us'))} | {r['all_complete']} |")
PY
cat "$OUT/table.md"
