#!/usr/bin/env bash
# tests/redis/run.sh - several `switchboard serve --redis` nodes on one real redis-server.
#
# usage: tests/redis/run.sh
#
#   multinode.mjs  three nodes: messages published on every node over REST, /ws and
#                  /ws/{channel} reach subscribers on every node over /ws, /ws/{channel}, SSE
#                  and long polling exactly once, in id order; then chaos while publishers run
#                  on all nodes (CLIENT KILL TYPE pubsub, redis SIGKILL + restart with and
#                  without persistence, a hub node SIGKILLed) and a checker over every
#                  subscriber's log: every acknowledged publish exactly once and in order, or
#                  an explicit reset
#   presence       tests/hub/presence.mjs on three nodes (refresh_secs = 2): three chat pages
#                  on three transports and three nodes each see the other two, REST and /ws
#                  agree on every node, closed pages leave everywhere; a SIGKILLed node's page
#                  disappears from the others within the TTL (2.5 x refresh = 5 s)
#   browser.mjs    headless Chromium: the chat page behind nginx (node A, node B as backup)
#                  moves to B when A is killed and resumes with no loss and no duplicate
#
# Installs redis-server (tests/redis/install.sh) and nginx with apt-get when missing; needs
# the packages tests/interop/setup.sh installs (Node ws + playwright-core, Chromium) and runs
# it when they are missing. Every server is started on a free loopback port and stopped by
# PID. Environment: SWITCHBOARD_BIN (default target/release/switchboard). Prints PASS/FAIL
# lines; the last line is "N passed, M failed"; exit status 0 only if nothing failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"
INTEROP="$ROOT/tests/interop"
LOGDIR="$HERE/reports"
mkdir -p "$LOGDIR"
LOG="$LOGDIR/run.log"
: >"$LOG"
say() { printf '%s\n' "$*" | tee -a "$LOG"; }

# check NAME SECS CMD...: one check program; its PASS/FAIL lines pass through, and a
# non-zero exit without any FAIL line becomes one.
check() {
  local name="$1" secs="$2" rc out="$LOGDIR/$1.out"
  shift 2
  timeout -k 5 "$secs" "$@" </dev/null >"$out" 2>&1
  rc=$?
  tee -a "$LOG" <"$out"
  if [[ $rc -ne 0 ]] && ! grep -q '^FAIL ' "$out"; then
    say "FAIL redis $name: exited with status $rc$([[ $rc -eq 124 ]] && echo " (timed out after $secs s)")"
  fi
  if ! grep -q '^PASS ' "$out"; then
    say "FAIL redis $name: reported no checks"
  fi
}

ready=1
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  say "FAIL redis: $SWITCHBOARD_BIN is missing (cargo build --release -p switchboard-cli)"
  ready=0
elif ! "$SWITCHBOARD_BIN" serve --help 2>/dev/null | grep -q -- '--redis'; then
  say "FAIL redis: $SWITCHBOARD_BIN has no 'serve --redis' (rebuild: cargo build --release -p switchboard-cli)"
  ready=0
fi
if ! "$HERE/install.sh" >"$LOGDIR/install.log" 2>&1; then
  say "FAIL redis: redis-server could not be installed (log $LOGDIR/install.log)"
  ready=0
fi
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
if [[ ! -x "$NGINX" ]]; then
  echo "tests/redis: installing nginx"
  if [[ $(id -u) == 0 ]]; then
    { apt-get -o DPkg::Lock::Timeout=300 update -qq && env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nginx; } >"$LOGDIR/nginx-install.log" 2>&1
  fi
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
  [[ -x "$NGINX" ]] || { say "FAIL redis: nginx is missing and could not be installed (log $LOGDIR/nginx-install.log)"; ready=0; }
fi
if [[ ! -d "$INTEROP/node_modules/ws" || ! -d "$INTEROP/node_modules/playwright-core" || ! -x /usr/bin/chromium ]] \
    || ! command -v node >/dev/null 2>&1; then
  echo "tests/redis: installing the Node packages and Chromium (tests/interop/setup.sh)"
  if ! "$INTEROP/setup.sh" </dev/null >"$LOGDIR/setup.log" 2>&1; then
    say "FAIL redis: tests/interop/setup.sh could not install what the checks need (log $LOGDIR/setup.log)"
    ready=0
  fi
fi

# presence_nodes: one redis-server and three `serve --redis` nodes (short presence refresh),
# then tests/hub/presence.mjs across them, killing the third node with SIGKILL at the end.
presence_nodes() {
  local tmp rport rpid ports=() pids=() urls="" i pid
  tmp="$(mktemp -d)"
  rport="$(free_port)"
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no </dev/null >"$LOGDIR/presence-redis.log" 2>&1 &
  rpid=$!
  if ! wait_for_port "$rport" 20 "$rpid"; then
    say "FAIL redis presence: redis-server did not start (log $LOGDIR/presence-redis.log)"
    kill "$rpid" 2>/dev/null; rm -rf "$tmp"; return
  fi
  printf '[presence]\ngrace_ms = 1500\nrefresh_secs = 2\n' >"$tmp/hub.toml"
  for i in 0 1 2; do
    ports[i]="$(free_port)"
    "$SWITCHBOARD_BIN" serve --listen "127.0.0.1:${ports[i]}" --config "$tmp/hub.toml" --redis "redis://127.0.0.1:$rport" \
      </dev/null >"$LOGDIR/presence-node$i.log" 2>&1 &
    pids[i]=$!
    urls+="${urls:+,}http://127.0.0.1:${ports[i]}"
  done
  local up=1
  for i in 0 1 2; do
    wait_for_port "${ports[i]}" 20 "${pids[i]}" || { say "FAIL redis presence: node $i did not start (log $LOGDIR/presence-node$i.log)"; up=0; }
  done
  if [[ $up == 1 ]]; then
    check presence 200 node "$ROOT/tests/hub/presence.mjs" --url "$urls" --grace-ms 1500 \
      --kill-pid "${pids[2]}" --kill-url "http://127.0.0.1:${ports[2]}" --ttl-ms 5000 --label "redis presence (3 nodes)"
  fi
  for pid in "${pids[@]}" "$rpid"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}" "$rpid"; do wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}

if [[ $ready == 1 ]]; then
  presence_nodes
  check multinode 150 node "$HERE/multinode.mjs" --bin "$SWITCHBOARD_BIN" --logs "$LOGDIR/multinode"
  check browser 90 node "$HERE/browser.mjs" --bin "$SWITCHBOARD_BIN" --logs "$LOGDIR/browser" --nginx "$NGINX"
fi

passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
