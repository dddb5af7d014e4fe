#!/usr/bin/env bash
# The side-by-side echo benchmark: every server under test on core 0, the load generator on
# core 1, servers in alternation within each round, medians and ratios as one markdown table.
# Loopback only; every run is bounded by its duration and by `timeout`.
#
#   bench/run.sh                 # full: 3 rounds, 2 s warm-up + 5 s per run, 10,000 idle
#   bench/run.sh --quick         # 1 round, 0.5 s warm-up + 2 s per run
#   bench/run.sh --rounds 5 --servers "fastwebsockets tcp-echo" --scenarios "20b-100 1m-1"
#
# Options: --quick, --rounds N, --warmup S, --duration S, --idle-conns N (0 skips the idle
# test), --servers "names", --scenarios "ids", --out DIR, --no-build. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
REL="$ROOT/target/release"

ROUNDS=3
WARMUP=2
DURATION=5
IDLE_CONNS=10000
SERVERS="switchboard lean-mio tokio-tungstenite tokio-tungstenite-4k fastwebsockets node-ws tcp-echo"
SCENARIOS="20b-10 20b-100 20b-500 1k-500 16k-500 64k-1 1m-1"
OUT=""
BUILD=1
QUICK=0
ARGS="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; ROUNDS=1; WARMUP=0.5; DURATION=2 ;;
        --rounds) ROUNDS=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --idle-conns) IDLE_CONNS=$2; shift ;;
        --servers) SERVERS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-"$BENCH/results/$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
note() { echo "== $*" >&2; }

# --- build -------------------------------------------------------------------------------
# The generator is `switchboard bench`, so the switchboard binary is needed whatever runs.
HAVE_SWITCHBOARD=1
SKIP_REASON=""
if [ "$BUILD" = 1 ]; then
    note "building release binaries"
    (cd "$ROOT" && cargo build --release -p switchboard-cli -p switchboard-bench)
    if command -v npm >/dev/null; then
        (cd "$BENCH/node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
if ! "$REL/switchboard" bench --help >/dev/null 2>&1; then
    echo "$REL/switchboard has no working 'bench' subcommand: it is the load generator (build it, or drop --no-build)" >&2
    exit 1
fi
if ! "$REL/switchboard" echo --help >/dev/null 2>&1; then
    HAVE_SWITCHBOARD=0; SKIP_REASON="target/release/switchboard has no working 'echo' subcommand yet"
fi
if [ ! -d "$BENCH/node/node_modules/ws" ] || ! command -v node >/dev/null; then
    NODE_MISSING=1
else
    NODE_MISSING=0
fi

# Each server: how to start it on PORT, and the URL the generator uses.
server_cmd() {
    local port=$1
    case "$2" in
        switchboard) echo "$REL/switchboard echo --listen 127.0.0.1:$port --no-compression" ;;
        tokio-tungstenite) echo "$REL/bench-echo-tungstenite --listen 127.0.0.1:$port" ;;
        tokio-tungstenite-4k) echo "$REL/bench-echo-tungstenite --listen 127.0.0.1:$port --read-buffer 4096 --write-buffer 4096" ;;
        fastwebsockets) echo "$REL/bench-echo-fastwebsockets --raw --listen 127.0.0.1:$port" ;;
        fastwebsockets-hyper) echo "$REL/bench-echo-fastwebsockets --listen 127.0.0.1:$port" ;;
        node-ws) echo "node $BENCH/node/echo.js --listen 127.0.0.1:$port" ;;
        tcp-echo) echo "$REL/bench-echo-tcp --listen 127.0.0.1:$port" ;;
        lean-mio) echo "$REL/bench-echo-lean --listen 127.0.0.1:$port" ;;
        *) echo "unknown server $2" >&2; return 1 ;;
    esac
}
server_url() {
    if [ "$2" = tcp-echo ]; then echo "tcp://127.0.0.1:$1"; else echo "ws://127.0.0.1:$1/"; fi
}
# Scenario id -> "label|connections|size|kind|metric".
scenario() {
    case "$1" in
        20b-10) echo "20 B text × 10|10|20|text|msgs" ;;
        20b-100) echo "20 B text × 100|100|20|text|msgs" ;;
        20b-500) echo "20 B text × 500|500|20|text|msgs" ;;
        1k-500) echo "1 KiB binary × 500|500|1KiB|binary|msgs" ;;
        16k-500) echo "16 KiB binary × 500|500|16KiB|binary|msgs" ;;
        64k-1) echo "64 KiB binary × 1 (MB/s)|1|64KiB|binary|mbps" ;;
        1m-1) echo "1 MiB binary × 1 (MB/s)|1|1MiB|binary|mbps" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

skip_server() { # name -> reason, or nothing
    case "$1" in
        switchboard) [ "$HAVE_SWITCHBOARD" = 1 ] || echo "$SKIP_REASON" ;;
        node-ws) [ "$NODE_MISSING" = 0 ] || echo "node or bench/node/node_modules/ws missing (npm install in bench/node)" ;;
    esac
}
ACTIVE=""
for s in $SERVERS; do
    reason=$(skip_server "$s")
    if [ -n "$reason" ]; then
        echo "!!!!!! SKIPPING $s: $reason !!!!!!" >&2
        printf '{"kind":"skip","server":"%s","reason":"%s"}\n' "$s" "$reason" >> "$RESULTS"
    else
        ACTIVE="$ACTIVE $s"
    fi
done

# 10,000 idle connections need 10,000 descriptors in the server and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$IDLE_CONNS" -gt 0 ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ]; then
    IDLE_CONNS=$(( $(ulimit -n) - 100 ))
    note "ulimit -n is $(ulimit -n): idle test reduced to $IDLE_CONNS connections"
fi

PORT=9200
SERVER_PID=""
start_server() { # name -> sets SERVER_PID and URL
    PORT=$(( PORT >= 9700 ? 9200 : PORT + 1 ))
    local cmd
    cmd=$(server_cmd "$PORT" "$1")
    # taskset execs the server, so $! is the server's own PID (for its CPU time and RSS).
    # A fresh log per start, so an old "listening" line can never pass for this one.
    SERVER_LOG="$OUT/server-$1-$PORT.log"
    taskset -c 0 $cmd >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    URL=$(server_url "$PORT" "$1")
    for _ in $(seq 100); do
        if grep -q "listening on.*127.0.0.1:$PORT" "$SERVER_LOG" 2>/dev/null; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    # A server that does not announce itself: probe the port instead.
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    note "server $1 did not start (see $SERVER_LOG)"
    stop_server
    return 1
}
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        # Keep only logs that say something.
        [ -s "$SERVER_LOG" ] && grep -qv "^listening on" "$SERVER_LOG" || rm -f "$SERVER_LOG"
    fi
}
trap stop_server EXIT

record() { # kind server scenario metric round report-json
    printf '{"kind":"%s","server":"%s","scenario":"%s","metric":"%s","round":%s,"report":%s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" >> "$RESULTS"
}

# --- machine -----------------------------------------------------------------------------
lock_version() { awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"; }
{
    echo "- command: \`bench/run.sh $ARGS\` (rounds $ROUNDS, warm-up ${WARMUP} s, duration ${DURATION} s, in flight 1)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; server on core 0, generator on core 1"
    echo "- kernel: $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo " (with uncommitted changes)" )$( [ "$BUILD" = 0 ] && echo "; --no-build: binaries as found in target/release" )"
    echo "- rustc: $(rustc --version); node: $(node --version 2>/dev/null || echo none)"
    echo "- peers: tokio-tungstenite $(lock_version tokio-tungstenite), fastwebsockets $(lock_version fastwebsockets), tokio $(lock_version tokio), hyper $(lock_version hyper), ws $(node -p "require('$BENCH/node/node_modules/ws/package.json').version" 2>/dev/null || echo none)"
} > "$OUT/machine.md"
cat "$OUT/machine.md" >&2

# --- load scenarios: for each round, every server in turn --------------------------------
for id in $SCENARIOS; do
    IFS='|' read -r label conns size kind metric <<<"$(scenario "$id")"
    for round in $(seq "$ROUNDS"); do
        for s in $ACTIVE; do
            start_server "$s" || { record fail "$s" "$label" "$metric" "$round" '{"error":"server did not start"}'; continue; }
            note "$label · round $round · $s"
            if report=$(timeout $(( ${WARMUP%.*} + ${DURATION%.*} + 90 )) taskset -c 1 "$REL/switchboard" bench "$URL" \
                    -c "$conns" -s "$size" "--$kind" --warmup "$WARMUP" --duration "$DURATION" \
                    --server-pid "$SERVER_PID" --json 2>>"$OUT/loadgen.log"); then
                record load "$s" "$label" "$metric" "$round" "$report"
            else
                record fail "$s" "$label" "$metric" "$round" '{"error":"generator failed"}'
            fi
            stop_server
        done
    done
done

# --- idle memory -------------------------------------------------------------------------
if [ "$IDLE_CONNS" -gt 0 ]; then
    label="idle KiB per connection (${IDLE_CONNS})"
    for s in $ACTIVE; do
        start_server "$s" || continue
        note "$label · $s"
        if report=$(timeout 180 taskset -c 1 "$REL/switchboard" bench "$URL" --idle "$IDLE_CONNS" \
                --server-pid "$SERVER_PID" --json 2>>"$OUT/loadgen.log"); then
            record idle "$s" "$label" kib 1 "$report"
        else
            record fail "$s" "$label" kib 1 '{"error":"generator failed"}'
        fi
        stop_server
    done
fi

echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.md"
{
    cat "$OUT/machine.md"
    echo
    "$REL/bench-table" "$RESULTS"
} > "$OUT/table.md"
echo
cat "$OUT/table.md"
note "results: $OUT"
