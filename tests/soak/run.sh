#!/usr/bin/env bash
# tests/soak/run.sh - soak test of `switchboard serve` on loopback: 10,000 idle WebSocket
# connections plus publishers (REST and three /ws connections, in turn) for a few minutes;
# the hub's RSS must stay flat and every connection must get every message, in order
# (tests/soak/soak.py checks both).
#
# usage: tests/soak/run.sh [SECONDS] [CONNECTIONS] [RATE]   (defaults 180, 10000, 2/s)
# Needs the release binary (cargo build --release -p switchboard-cli) and python3.
# Bounded: the hub is stopped (by its PID) when the script ends, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-180}"
connections="${2:-10000}"
rate="${3:-2}"
bin="${SWITCHBOARD_BIN:-target/release/switchboard}"
[[ -x "$bin" ]] || { echo "FAIL soak: $bin not built (cargo build --release -p switchboard-cli)" >&2; exit 1; }

# 10,000 connections need 10,000 descriptors on each side (hub and client), plus headroom.
need=$((connections + 2000))
if [[ "$(ulimit -n)" -lt "$need" ]]; then
  ulimit -n "$need" 2>/dev/null || { echo "FAIL soak: cannot raise ulimit -n to $need (hard limit $(ulimit -Hn))" >&2; exit 1; }
fi

dir="$(mktemp -d)"
cat >"$dir/hub.toml" <<TOML
listen = "127.0.0.1:0"
[limits]
max_connections_per_ip = $((connections + 1000))
[rate_limit]
messages_per_second = 1000.0
burst = 2000
TOML
"$bin" serve --config "$dir/hub.toml" 2>"$dir/hub.log" &
hub=$!
trap 'kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=""
for _ in $(seq 100); do
  port="$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/hub.log" 2>/dev/null | head -1 | sed 's/.*://')" || true
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "FAIL soak: the hub did not start"; cat "$dir/hub.log"; exit 1; }
SOAK_PORT="$port" SOAK_CONNECTIONS="$connections" SOAK_SECONDS="$seconds" SOAK_RATE="$rate" \
  SOAK_HUB_PID="$hub" timeout $((seconds + 300)) python3 tests/soak/soak.py
