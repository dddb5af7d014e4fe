#!/usr/bin/env bash
# tests/nginx/run.sh - `switchboard echo` behind a real nginx (Debian's package), on loopback.
#
# usage: tests/nginx/run.sh
#
# Starts `switchboard echo` on a free loopback port and nginx in front of it with the
# configuration from seed 000 (proxy_http_version 1.1; Upgrade $http_upgrade;
# Connection "Upgrade"), in a temporary prefix of its own (config, pid file, logs, temp
# dirs; `daemon off`, run in the background with its PID recorded). Then checks, through
# nginx:
#   1. a WebSocket round trip with `switchboard connect` (text lines, a 256 KiB line,
#      close 1000 from the client) on the seed's /websocket location and on /;
#   2. the backend sees the client's address from X-Forwarded-For when told to trust
#      nginx (--trust-proxy), and nginx's own address when not;
#   3. a plain HTTP GET is answered by switchboard (not by nginx) with 426;
#   4. headless Chromium through nginx (tests/interop/browser/browser_check.mjs), when
#      tests/interop/setup.sh has installed it.
# Installs nginx with apt-get if it is missing. Prints PASS/FAIL lines and ends with
# "N passed, M failed"; exit status 0 only if nothing failed. Everything started here is
# stopped by PID.
#
# Environment: SWITCHBOARD_BIN (default $CARGO_TARGET_DIR/release/switchboard; built with
# cargo if missing), NGINX (default: nginx on PATH or /usr/sbin/nginx).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/test-settings.sh
source "$ROOT/scripts/test-settings.sh"

suite_checks nginx

PIDS=()
PREFIX=""
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
cleanup() {
  stop_all
  if [[ -n "$PREFIX" && -d "$PREFIX" ]]; then
    if [[ $FAILED -gt 0 ]]; then
      echo "nginx: logs kept in $PREFIX" >&2
    else
      rm -rf "$PREFIX"
    fi
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# --- what we need ---------------------------------------------------------------------
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
if [[ ! -x "$NGINX" ]]; then
  echo "nginx: not installed; installing Debian's package"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  else
    SUDO=(sudo -n)
  fi
  # The package's postinst would start a system nginx on port 80 where an init system
  # runs; in containers policy-rc.d refuses that, and we never use that instance.
  { "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq \
      --no-install-recommends nginx; } >/dev/null 2>&1
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
  [[ -x "$NGINX" ]] || { fail "could not install nginx with apt-get"; finish; }
fi
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  echo "nginx: building $SWITCHBOARD_BIN"
  (cd "$ROOT" && cargo build --release -q -p switchboard-cli) || { fail "cargo build failed"; finish; }
fi

PREFIX="$(mktemp -d /tmp/switchboard-nginx.XXXXXX)"
# nginx's workers drop to an unprivileged user; they must reach the temp dirs.
chmod 755 "$PREFIX"
mkdir -p "$PREFIX"/{client_body,proxy,fastcgi,uwsgi,scgi}
chmod 777 "$PREFIX"/{client_body,proxy,fastcgi,uwsgi,scgi}

BACK_PORT="$(free_port)"
TRUST_PORT="$(free_port)"
FRONT_PORT="$(free_port)"

# --- nginx, configured as in seed 000 -------------------------------------------------
cat >"$PREFIX/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $PREFIX/nginx.pid;
error_log $PREFIX/error.log info;
events { worker_connections 512; }
http {
  access_log $PREFIX/access.log;
  client_body_temp_path $PREFIX/client_body;
  proxy_temp_path $PREFIX/proxy;
  fastcgi_temp_path $PREFIX/fastcgi;
  uwsgi_temp_path $PREFIX/uwsgi;
  scgi_temp_path $PREFIX/scgi;

  upstream websocket_server { server 127.0.0.1:$BACK_PORT; }
  upstream trusting_server { server 127.0.0.1:$TRUST_PORT; }

  server {
    listen 127.0.0.1:$FRONT_PORT;

    # Seed 000, verbatim.
    location /websocket { proxy_pass http://websocket_server; proxy_http_version 1.1; proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "Upgrade"; }

    # The same for a backend that trusts nginx's X-Forwarded-For.
    location /trusting {
      proxy_pass http://trusting_server;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "Upgrade";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }

    # Every other path (the browser check connects to /).
    location / {
      proxy_pass http://websocket_server;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "Upgrade";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF

# start NAME PORT CMD...: a server in the background, its PID recorded, its port awaited.
start() {
  local name="$1" port="$2" pid
  shift 2
  "$@" </dev/null >"$PREFIX/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if wait_for_port "$port" 20 "$pid"; then
    return 0
  fi
  fail "$name did not listen on 127.0.0.1:$port (log: $(tail -3 "$PREFIX/$name.log" | tr '\n' ' '))"
  return 1
}

start echo "$BACK_PORT" env RUST_LOG=info,switchboard=debug "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$BACK_PORT" || finish
start echo-trusting "$TRUST_PORT" env RUST_LOG=info,switchboard=debug "$SWITCHBOARD_BIN" echo --listen "127.0.0.1:$TRUST_PORT" \
  --trust-proxy 127.0.0.1 || finish
"$NGINX" -t -q -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" 2>"$PREFIX/nginx-t.log" \
  || { fail "nginx -t rejected the configuration: $(cat "$PREFIX/nginx-t.log")"; finish; }
start nginx "$FRONT_PORT" "$NGINX" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" || finish
echo "nginx: $("$NGINX" -v 2>&1) on 127.0.0.1:$FRONT_PORT -> switchboard echo on 127.0.0.1:$BACK_PORT"

# --- 1. round trips through nginx -----------------------------------------------------
# roundtrip PATH: sends lines with `switchboard connect` and checks each came back.
roundtrip() {
  local path="$1" token big out rc
  token="nginx-$RANDOM-$RANDOM"
  big="$PREFIX/big.txt"
  head -c 196608 /dev/urandom | base64 -w0 >"$big"
  echo >>"$big"
  out="$( { printf '%s-1\n%s-2\n' "$token" "$token"; cat "$big"; sleep 1; } \
    | timeout 20 "$SWITCHBOARD_BIN" connect "ws://127.0.0.1:$FRONT_PORT$path" 2>&1)"
  rc=$?
  if [[ $rc -ne 0 ]]; then
    fail "round trip on $path: switchboard connect exited $rc: $(tail -3 <<<"$out" | tr '\n' ' ')"
  elif ! grep -q -- "$token-1" <<<"$out" || ! grep -q -- "$token-2" <<<"$out"; then
    fail "round trip on $path: the text lines did not come back: $(head -c 300 <<<"$out")"
  elif ! grep -qxF -f "$big" <<<"$out"; then
    fail "round trip on $path: the 256 KiB line did not come back intact"
  elif ! grep -q "1000" <<<"$out"; then
    fail "round trip on $path: no close 1000 reported: $(tail -3 <<<"$out" | tr '\n' ' ')"
  else
    pass "WebSocket round trip through nginx on $path (2 lines, 256 KiB, close 1000)"
  fi
}
roundtrip /websocket
roundtrip /

# --- 2. the client's address behind nginx ---------------------------------------------
# nginx adds the real peer (127.0.0.1) to what the client claims; the trusting backend
# walks X-Forwarded-For from the right and must report the claimed address only because
# 127.0.0.1 is trusted and the claim is the next hop.
printf 'hi\n' | timeout 20 "$SWITCHBOARD_BIN" connect "ws://127.0.0.1:$FRONT_PORT/trusting" \
  --header "X-Forwarded-For: 203.0.113.77" >/dev/null 2>&1
printf 'hi\n' | timeout 20 "$SWITCHBOARD_BIN" connect "ws://127.0.0.1:$FRONT_PORT/websocket" \
  --header "X-Forwarded-For: 203.0.113.88" >/dev/null 2>&1
sleep 0.5
if grep -q "203.0.113.77" "$PREFIX/echo-trusting.log"; then
  pass "--trust-proxy 127.0.0.1: the backend logs the address from X-Forwarded-For"
else
  fail "--trust-proxy: 203.0.113.77 not in the backend log: $(tail -3 "$PREFIX/echo-trusting.log" | tr '\n' ' ')"
fi
if grep -q "203.0.113.88" "$PREFIX/echo.log"; then
  fail "without --trust-proxy the backend believed a forwarded address"
else
  pass "without --trust-proxy the backend ignores X-Forwarded-For"
fi

# --- 3. plain HTTP through nginx ------------------------------------------------------
status="$(curl -s -o "$PREFIX/plain.body" -w '%{http_code}' "http://127.0.0.1:$FRONT_PORT/websocket" 2>/dev/null)"
if [[ "$status" == 426 ]]; then
  pass "plain GET through nginx gets switchboard's 426 ($(head -c 80 "$PREFIX/plain.body"))"
else
  fail "plain GET through nginx: expected 426, got ${status:-no answer}"
fi

# --- 4. headless Chromium through nginx -----------------------------------------------
BROWSER_CHECK="$ROOT/tests/interop/browser/browser_check.mjs"
if [[ -d "$ROOT/tests/interop/node_modules/playwright-core" && -x /usr/bin/chromium ]] && command -v node >/dev/null; then
  if out="$(timeout -k 5 120 node "$BROWSER_CHECK" --ws-port "$FRONT_PORT" \
      --expect-deflate "$SWITCHBOARD_EXPECT_DEFLATE" 2>&1)"; then
    pass "headless Chromium through nginx ($(grep -c '^PASS' <<<"$out") browser checks)"
  else
    fail "headless Chromium through nginx: $(grep '^FAIL' <<<"$out" | head -3 | tr '\n' ' ')"
  fi
elif [[ "${CI:-}" == true ]]; then
  fail "headless Chromium through nginx: not installed (run tests/interop/setup.sh first)"
else
  echo "SKIP nginx: headless Chromium through nginx (run tests/interop/setup.sh to install it)"
fi

finish
