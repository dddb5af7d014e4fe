#!/usr/bin/env bash
# Instructions per echoed message, server side, under `valgrind --tool=callgrind`: the figure
# that stays put on a shared machine, where msgs/s do not (bench/README.md, "Instructions").
#
#   bench/callgrind.sh                                   # every Rust server, 20b-100 16k-100 20b-500
#   bench/callgrind.sh --servers "switchboard lean-mio" --scenarios "20b-100"
#   bench/callgrind.sh --messages 100000 --bin target/dist/switchboard
#
# Each cell runs the server twice under callgrind, fresh each time, driven by
#   switchboard bench URL -c C -s SIZE --text|--binary --warmup 0 --max-messages N
# once with N = --messages and once with N / 5. Both runs pay the same start-up, handshakes
# and close, so the difference of the two totals over the difference of the echoes is what
# one more message costs ("marginal", the table's figure); "total/N" is the whole run's
# instructions over its echoes (start-up included), the method of issue 16's table.
#
# Options: --servers "names", --scenarios "ids", --messages N (default 100000), --bin PATH
# (the switchboard binary serving `echo`; default target/release/switchboard), --out DIR,
# --no-build. Loopback only; every run is bounded by `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
REL="$ROOT/target/release"

SERVERS="switchboard lean-mio fastwebsockets tokio-tungstenite-4k tokio-tungstenite tcp-echo"
SCENARIOS="20b-100 16k-100 20b-500"
MESSAGES=100000
BIN=""
OUT=""
BUILD=1
ARGS="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) SERVERS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --messages) MESSAGES=$2; shift ;;
        --bin) BIN=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
BIN=${BIN:-"$REL/switchboard"}
OUT=${OUT:-"$BENCH/results/callgrind-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
note() { echo "== $*" >&2; }

if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (apt-get install valgrind): no instruction counts" >&2
    exit 1
fi
if [ "$BUILD" = 1 ]; then
    note "building release binaries"
    (cd "$ROOT" && cargo build --release -p switchboard-cli -p switchboard-bench)
fi
for tool in "$REL/switchboard" "$BIN"; do
    [ -x "$tool" ] || { echo "$tool is missing (build it, or drop --no-build)" >&2; exit 1; }
done

server_cmd() { # port name
    case "$2" in
        switchboard) echo "$BIN echo --threads 1 --listen 127.0.0.1:$1 --no-compression" ;;
        lean-mio) echo "$REL/bench-echo-lean --listen 127.0.0.1:$1" ;;
        tokio-tungstenite) echo "$REL/bench-echo-tungstenite --listen 127.0.0.1:$1" ;;
        tokio-tungstenite-4k) echo "$REL/bench-echo-tungstenite --listen 127.0.0.1:$1 --read-buffer 4096 --write-buffer 4096" ;;
        fastwebsockets) echo "$REL/bench-echo-fastwebsockets --raw --listen 127.0.0.1:$1" ;;
        tcp-echo) echo "$REL/bench-echo-tcp --listen 127.0.0.1:$1" ;;
        *) echo "unknown server $2" >&2; return 1 ;;
    esac
}
scenario() { # id -> "connections|size|kind"
    case "$1" in
        20b-100) echo "100|20|text" ;;
        20b-500) echo "500|20|text" ;;
        1k-500) echo "500|1KiB|binary" ;;
        16k-100) echo "100|16KiB|binary" ;;
        16k-500) echo "500|16KiB|binary" ;;
        64k-1) echo "1|64KiB|binary" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One run: prints "instructions echoes", or fails.
measure() { # server scenario messages
    local conns size kind port cmd log pid url report echoes ir file
    IFS='|' read -r conns size kind <<<"$(scenario "$2")"
    port=$(free_port)
    cmd=$(server_cmd "$port" "$1")
    file="$OUT/callgrind.$1.$2.$3.out"
    log="$OUT/server.$1.$2.$3.log"
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no $cmd >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { note "$1 did not start (see $log)"; return 1; }
        sleep 0.1
    done
    if [ "$1" = tcp-echo ]; then url="tcp://127.0.0.1:$port"; else url="ws://127.0.0.1:$port/"; fi
    if ! report=$(timeout 900 "$REL/switchboard" bench "$url" -c "$conns" -s "$size" "--$kind" \
            --warmup 0 --duration 600 --max-messages "$3" --json 2>>"$OUT/loadgen.log"); then
        kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        note "generator failed against $1 (see $OUT/loadgen.log)"; return 1
    fi
    # SIGTERM: switchboard shuts down gracefully; the peers die of it. Either way valgrind
    # writes the totals on the way out.
    kill -TERM "$pid" 2>/dev/null || true
    timeout 60 tail --pid="$pid" -f /dev/null || { kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
    echoes=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["messages"])' "$report")
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
    [ -n "$ir" ] || { note "no callgrind summary in $file"; return 1; }
    echo "$ir $echoes"
}

{
    echo "- command: \`bench/callgrind.sh $ARGS\`"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); $(valgrind --version); server binary $BIN"
    echo "- tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo " (with uncommitted changes)" )"
    echo
    printf '| instructions per message: marginal (total/N) |'
    for id in $SCENARIOS; do printf ' %s |' "$id"; done
    echo
    printf '| --- |'
    for _ in $SCENARIOS; do printf ' --- |'; done
    echo
} > "$OUT/table.md"
for s in $SERVERS; do
    row="| $s |"
    for id in $SCENARIOS; do
        small=$(( MESSAGES / 5 ))
        note "$s · $id · $small and $MESSAGES messages"
        if a=$(measure "$s" "$id" "$small") && b=$(measure "$s" "$id" "$MESSAGES"); then
            read -r ir_a n_a <<<"$a"
            read -r ir_b n_b <<<"$b"
            cell=$(python3 -c 'import sys; a,na,b,nb=map(int,sys.argv[1:]); print(f"{(b-a)/(nb-na):,.0f} ({b/nb:,.0f})")' \
                "$ir_a" "$n_a" "$ir_b" "$n_b")
            printf '{"server":"%s","scenario":"%s","ir":[%s,%s],"echoes":[%s,%s]}\n' \
                "$s" "$id" "$ir_a" "$ir_b" "$n_a" "$n_b" >> "$OUT/results.jsonl"
        else
            cell="failed"
        fi
        row="$row $cell |"
    done
    echo "$row" >> "$OUT/table.md"
done
echo
cat "$OUT/table.md"
note "results: $OUT"
