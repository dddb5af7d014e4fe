#!/usr/bin/env bash
# bench/fanout/run.sh - fan-out deliveries per second to 1k and 10k WebSocket subscribers of
# one channel: `switchboard serve` vs Socket.IO (Node), same machine, same run.
#
# usage: bench/fanout/run.sh [--rounds N] [--subscribers "1000 10000"] [--deliveries N]
#                            [--size BYTES] [--window N] [--out DIR] [--no-build]
#
#   --rounds N         measured rounds per server and size (default 3; one warm-up round first)
#   --subscribers L    subscriber counts (default "1000 10000")
#   --deliveries N     deliveries per round (default 1000000: 1,000 messages to 1k
#                      subscribers, 100 to 10k)
#   --size BYTES       payload of every message (default 64)
#   --window N         messages in flight (default 64)
#   --out DIR          results directory (default bench/fanout/results/<date>)
#   --no-build         use the binaries already in target/release
#
# For every subscriber count, each server in turn: started fresh on a free 127.0.0.1 port,
# pinned to core 0 (taskset); `bench-fanout` pinned to core 1 opens the subscribers and one
# publisher and runs the rounds (--json, with the server's PID for its CPU time); the server
# is stopped by PID. Socket.IO is smoke-checked with the official socket.io-client first.
# Results: DIR/results.jsonl (one report per server and size), DIR/table.md (machine and
# medians), server logs. Everything is bounded: every round by a time limit, every step by
# `timeout`. Loopback only.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

ROUNDS=3
SUBSCRIBERS="1000 10000"
DELIVERIES=1000000
SIZE=64
WINDOW=64
OUT=""
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --subscribers) SUBSCRIBERS="$2"; shift 2 ;;
    --deliveries) DELIVERIES="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --window) WINDOW="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$ROUNDS" -ge 1 ]] || { echo "run.sh: --rounds must be >= 1" >&2; exit 2; }

die() { echo "bench/fanout: ERROR: $*" >&2; exit 1; }
note() { echo "bench/fanout: $*" >&2; }

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SWITCHBOARD_BIN="$TARGET_DIR/release/switchboard"
CLIENT_BIN="$TARGET_DIR/release/bench-fanout"
OUT="${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# --- what the run needs --------------------------------------------------------------
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are required"
command -v python3 >/dev/null 2>&1 || die "python3 is required (for the table)"
if [[ $BUILD == 1 ]]; then
  note "cargo build --release (switchboard, bench-fanout)"
  cargo build --release -p switchboard-cli --bin switchboard -p switchboard-bench --bin bench-fanout \
    </dev/null >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed (log $OUT/build.log)"; }
fi
[[ -x "$SWITCHBOARD_BIN" && -x "$CLIENT_BIN" ]] || die "missing $SWITCHBOARD_BIN or $CLIENT_BIN (run without --no-build)"
"$SWITCHBOARD_BIN" serve --help >/dev/null 2>&1 || die "$SWITCHBOARD_BIN has no 'serve' subcommand"

lock_sum="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$HERE/node_modules/.switchboard-stamp"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  note "npm ci (socket.io, socket.io-client)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error </dev/null) >&2 || die "npm ci failed in $HERE"
  echo "$lock_sum" >"$stamp"
fi

# Every subscriber is a file descriptor in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_subs=0
for n in $SUBSCRIBERS; do (( n > max_subs )) && max_subs=$n; done
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((max_subs + 200)) ]]; then
  die "ulimit -n is $(ulimit -n) (hard limit); $((max_subs + 200)) needed for $max_subs subscribers"
fi

SERVER_CPU=(); CLIENT_CPU=()
if command -v taskset >/dev/null 2>&1 && [[ "$(nproc)" -ge 2 ]]; then
  SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1)
else
  note "taskset missing or fewer than 2 cores: server and client are not pinned"
fi

# --- servers ---------------------------------------------------------------------------
SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# start_server NAME PORT LOG: starts the server NAME on 127.0.0.1:PORT; sets SERVER_PID.
start_server() {
  local name="$1" port="$2" log="$3"
  case "$name" in
    switchboard)
      # No publish rate limit (one publisher sends everything); otherwise the defaults.
      printf '[rate_limit]\nmessages_per_second = 0.0\n' >"$OUT/switchboard.toml"
      RUST_LOG=warn "${SERVER_CPU[@]}" "$SWITCHBOARD_BIN" serve --listen "127.0.0.1:$port" \
        --config "$OUT/switchboard.toml" </dev/null >"$log" 2>&1 &
      ;;
    socketio)
      (cd "$HERE" && exec "${SERVER_CPU[@]}" node socketio-server.js --port "$port") </dev/null >"$log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  wait_for_port "$port" 20 "$SERVER_PID" || { tail -n 20 "$log" >&2; die "$name did not start (log $log)"; }
}

machine() {
  echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1) ($(nproc) cores available)"
  echo "- kernel: $(uname -sr); memory: $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "- $(rustc --version 2>/dev/null); node $(node --version); socket.io $(node -p 'require(process.argv[1]).version' "$HERE/node_modules/socket.io/package.json")"
  echo "- switchboard: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  echo "- load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
machine >"$OUT/machine.md"
cat "$OUT/machine.md" >&2

for n in $SUBSCRIBERS; do
  messages=$(( DELIVERIES / n ))
  (( messages < 10 )) && messages=10
  for name in switchboard socketio; do
    port="$(free_port)"
    log="$OUT/$name-$n.log"
    start_server "$name" "$port" "$log"
    if [[ $name == socketio ]]; then
      timeout 30 node "$HERE/socketio-smoke.js" --port "$port" >&2 || die "Socket.IO smoke check failed"
    fi
    note "$name, $n subscribers, $ROUNDS rounds of $messages messages of $SIZE B"
    timeout -k 5 $(( 120 + (ROUNDS + 1) * 90 )) "${CLIENT_CPU[@]}" "$CLIENT_BIN" --target "$name" \
      --addr "127.0.0.1:$port" --subscribers "$n" --messages "$messages" --size "$SIZE" \
      --window "$WINDOW" --rounds "$ROUNDS" --warmup-rounds 1 --round-timeout 90 \
      --server-pid "$SERVER_PID" --json >"$OUT/client.json" 2>"$OUT/client.err"
    rc=$?
    if [[ -s "$OUT/client.json" ]]; then
      cat "$OUT/client.json" >>"$RESULTS"
    else
      note "the client printed no report (exit $rc):"; cat "$OUT/client.err" >&2
      printf '{"target":"%s","subscribers":%s,"error":"client exit %s, no report"}\n' "$name" "$n" "$rc" >>"$RESULTS"
    fi
    stop_server
    sleep 1
  done
done
echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.md"

python3 - "$RESULTS" "$OUT/machine.md" "$OUT/table.md" <<'EOF'
import json, sys
results = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
machine = open(sys.argv[2]).read()
by = {(r["target"], r["subscribers"]): r for r in results}
sizes = sorted({r["subscribers"] for r in results})
def fmt(v): return f"{v:,.0f}" if v is not None else "—"
def us_per(r, key):
    rs = [x for x in r.get("rounds", []) if x.get("complete") and x.get(key) is not None]
    if not rs: return None
    return 1e6 * sorted(x[key] / x["deliveries"] for x in rs)[len(rs) // 2]
lines = ["# Fan-out: deliveries per second to N WebSocket subscribers of one channel", "", machine.strip(), ""]
lines += ["| subscribers | switchboard deliveries/s | Socket.IO deliveries/s | ratio | switchboard server CPU µs/delivery | Socket.IO server CPU µs/delivery | rounds (median of) |",
          "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
failed = False
for n in sizes:
    s, i = by.get(("switchboard", n), {}), by.get(("socketio", n), {})
    ms, mi = s.get("median_deliveries_per_sec"), i.get("median_deliveries_per_sec")
    ratio = f"{ms / mi:.1f}x" if ms and mi else "—"
    rounds = f"{len(s.get('rounds', []))} / {len(i.get('rounds', []))}"
    lines.append(f"| {n:,} | {fmt(ms)} | {fmt(mi)} | {ratio} | {us_per(s, 'server_cpu_secs') or 0:.2f} | {us_per(i, 'server_cpu_secs') or 0:.2f} | {rounds} |")
    for r in (s, i):
        if r and (r.get("error") or not r.get("all_complete")):
            failed = True
            lines.append(f"|  | **{r.get('target')}: {r.get('error') or 'incomplete'}** | | | | | |")
lines += ["", "Per round (deliveries/s): " + "; ".join(
    f"{r['target']} x{r['subscribers']}: " + ", ".join(fmt(x["deliveries_per_sec"]) for x in r.get("rounds", []))
    for r in results)]
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if failed else 0)
EOF
rc=$?
note "results in $OUT (results.jsonl, table.md)"
exit $rc
