#!/usr/bin/env bash
# bench/hubidle.sh - the hub's memory per idle connection, per transport: `switchboard serve`
# started fresh for each kind, N connections opened and held by bench-hub-idle, and
# (VmRSS after - VmRSS before) / N, as `switchboard bench --idle` measures echo servers.
#
# usage: bench/hubidle.sh [--connections N] [--kinds "ws ws-bare chat sse poll"]
#                         [--bin PATH] [--out DIR] [--no-build]
#
#   --connections N   connections per kind (default 10000)
#   --kinds L         which transports (default: ws ws-bare chat sse poll)
#   --bin PATH        the switchboard binary (default target/release/switchboard)
#   --out DIR         results directory (default bench/results/hubidle-<date>)
#   --no-build        use the binaries already built
#
# Kinds: ws = /ws with one subscription, ws-bare = /ws alone, chat = /ws/{channel},
# sse = /sse/{channel}, poll = a waiting /poll/{channel}. Every connection uses the same
# channel, so the figure is what one more connection costs, not a channel. Kernel socket
# memory is not in RSS. Loopback only; the hub is stopped by its PID.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

CONNECTIONS=10000
KINDS="ws ws-bare chat sse poll"
BIN=""
OUT=""
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --kinds) KINDS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "hubidle.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "bench/hubidle: ERROR: $*" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$TARGET_DIR/release/switchboard}"
CLIENT="$TARGET_DIR/release/bench-hub-idle"
OUT="${OUT:-$ROOT/bench/results/hubidle-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
if [[ $BUILD == 1 ]]; then
  cargo build --release -p switchboard-cli --bin switchboard -p switchboard-bench --bin bench-hub-idle \
    </dev/null >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed"; }
fi
[[ -x "$BIN" && -x "$CLIENT" ]] || die "missing $BIN or $CLIENT (run without --no-build)"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((CONNECTIONS + 200)) ]]; then
  die "ulimit -n is $(ulimit -n); $((CONNECTIONS + 200)) needed"
fi

cat >"$OUT/hub.toml" <<TOML
[limits]
max_connections_per_ip = $((CONNECTIONS + 1000))
poll_timeout_secs = 120
TOML

HUB=""
stop_hub() {
  if [[ -n "$HUB" ]]; then
    kill -TERM "$HUB" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$HUB" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HUB" 2>/dev/null
    wait "$HUB" 2>/dev/null
    HUB=""
  fi
}
trap stop_hub EXIT
trap 'stop_hub; exit 130' INT TERM

: >"$OUT/results.jsonl"
failed=0
for kind in $KINDS; do
  port="$(free_port)"
  RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$port" --config "$OUT/hub.toml" \
    </dev/null >"$OUT/hub-$kind.log" 2>&1 &
  HUB=$!
  wait_for_port "$port" 20 "$HUB" || { tail -n 20 "$OUT/hub-$kind.log" >&2; die "the hub did not start"; }
  sleep 0.5
  if timeout -k 5 400 "$CLIENT" --addr "127.0.0.1:$port" --kind "$kind" --connections "$CONNECTIONS" \
      --server-pid "$HUB" --poll-timeout 60 >>"$OUT/results.jsonl" 2>"$OUT/client-$kind.err"; then
    tail -n 1 "$OUT/results.jsonl" >&2
  else
    echo "bench/hubidle: $kind failed:" >&2; cat "$OUT/client-$kind.err" >&2
    failed=1
  fi
  stop_hub
done

python3 - "$OUT/results.jsonl" "$BIN" >"$OUT/table.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"binary: {sys.argv[2]}\n")
print("| transport | connections | KiB per idle connection | RSS before → after (KiB) |")
print("| --- | ---: | ---: | --- |")
names = {"ws": "/ws, one subscription", "ws-bare": "/ws, no subscription", "chat": "/ws/{channel}",
         "sse": "/sse/{channel}", "poll": "/poll/{channel} (waiting)"}
for r in rows:
    print(f"| {names.get(r['kind'], r['kind'])} | {r['connections']:,} | {r['kib_per_connection']:.2f} | {r['rss_before_kib']:,} → {r['rss_after_kib']:,} |")
EOF
cat "$OUT/table.md"
echo "bench/hubidle: results in $OUT" >&2
exit $failed
