#!/usr/bin/env bash
# bench/fanout/callgrind.sh - server-side user-space instructions per fan-out delivery of
# `switchboard serve` under `valgrind --tool=callgrind`: the stable figure on a shared
# machine, where deliveries/s and CPU time move with whatever else runs.
#
# usage: bench/fanout/callgrind.sh [--subscribers N] [--messages M] [--bin PATH] [--out DIR]
#
#   --subscribers N  subscribers of the one channel (default 1000)
#   --messages M     messages published in the long run (default 200; the short run
#                    publishes M / 5)
#   --bin PATH       the switchboard binary (default target/release/switchboard)
#   --out DIR        results directory (default bench/fanout/results/callgrind-<date>)
#
# Each run starts the hub fresh under callgrind, connects N subscribers (/ws/{channel}) and
# a publisher with bench-fanout (release build, not rebuilt here), publishes M (then M / 5)
# messages of 64 B with 64 in flight, and stops the hub with SIGTERM. Both runs pay the same
# start-up, connects and shutdown, so (Ir(M) - Ir(M/5)) / (N * (M - M/5)) is what one more
# delivery costs. User space only: the kernel's socket work is not in it.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

SUBS=1000
MESSAGES=200
BIN=""
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --subscribers) SUBS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "bench/fanout/callgrind: ERROR: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is not installed"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$TARGET_DIR/release/switchboard}"
CLIENT="$TARGET_DIR/release/bench-fanout"
[[ -x "$BIN" && -x "$CLIENT" ]] || die "missing $BIN or $CLIENT (cargo build --release)"
OUT="${OUT:-$HERE/results/callgrind-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
printf '[rate_limit]\nmessages_per_second = 0.0\n[limits]\nmax_connections_per_ip = %s\n' \
  $((SUBS + 1000)) >"$OUT/hub.toml"

PID=""
trap '[[ -n "$PID" ]] && kill -KILL "$PID" 2>/dev/null' EXIT

# run M: prints "Ir deliveries" for one run of M messages.
run() {
  local m="$1" port file
  port="$(free_port)"
  file="$OUT/callgrind.$m.out"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no \
    "$BIN" serve --listen "127.0.0.1:$port" --config "$OUT/hub.toml" \
    </dev/null >"$OUT/hub.$m.log" 2>&1 &
  PID=$!
  wait_for_port "$port" 120 "$PID" || die "the hub did not start (see $OUT/hub.$m.log)"
  timeout -k 5 900 "$CLIENT" --target switchboard --addr "127.0.0.1:$port" --subscribers "$SUBS" \
    --messages "$m" --rounds 1 --warmup-rounds 0 --round-timeout 600 --connect-concurrency 20 \
    --json >"$OUT/client.$m.json" 2>"$OUT/client.$m.err" || die "bench-fanout failed (see $OUT/client.$m.err)"
  kill -TERM "$PID" 2>/dev/null
  timeout 120 tail --pid="$PID" -f /dev/null || kill -KILL "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  PID=""
  local ir deliveries
  ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
  deliveries=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(x["deliveries"] for x in r["rounds"]) if r["all_complete"] else "incomplete")' "$OUT/client.$m.json")
  [[ -n "$ir" && "$deliveries" != incomplete ]] || die "run of $m messages: no summary or an incomplete round"
  echo "$ir $deliveries"
}

read -r ir_long d_long < <(run "$MESSAGES")
read -r ir_short d_short < <(run $((MESSAGES / 5)))
python3 - "$ir_long" "$d_long" "$ir_short" "$d_short" "$SUBS" "$BIN" <<'EOF' | tee "$OUT/table.md"
import sys
il, dl, is_, ds, subs, binary = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
print(f"binary {binary}, {subs} subscribers: {(il - is_) / (dl - ds):,.0f} instructions per delivery (marginal; "
      f"{il:,} Ir for {dl:,} deliveries, {is_:,} Ir for {ds:,}; total/N {il / dl:,.0f})")
EOF
