#!/usr/bin/env bash
# tests/interop/setup.sh - install what the interop checks need; idempotent and quick when done.
#
#   - Node packages `ws` and `playwright-core` into tests/interop/node_modules
#     (npm ci from package-lock.json; redone only when the lock file changes);
#   - Python `websockets` (and `h2`, for tests/h2) into the venv tests/interop/.venv
#     (requirements.txt);
#   - Debian's `chromium` (/usr/bin/chromium) via apt when missing (needs root).
# Fails with a clear message (exit 1) if something cannot be installed.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { printf '[interop-setup] %s\n' "$*"; }
die() { printf '[interop-setup] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else die "need root to run: $* (re-run as root, or install it yourself)"
  fi
}

apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then
    say "apt-get update"
    as_root apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$@" || die "apt-get install $* failed"
}

# --- Node.js and the npm packages -------------------------------------------
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 20 ]] || die "Node.js >= 20 is needed by playwright-core, found $(node --version)"

lock_sum="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$HERE/node_modules/.switchboard-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_sum" && -d "$HERE/node_modules/ws" && -d "$HERE/node_modules/playwright-core" ]]; then
  say "node packages up to date"
else
  say "npm ci (ws, playwright-core)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error </dev/null) || die "npm ci failed in $HERE"
  echo "$lock_sum" >"$stamp"
fi
(cd "$HERE" && node -e 'require.resolve("ws"); require.resolve("playwright-core")') \
  || die "node packages missing after npm ci"

# --- Python websockets in a venv ----------------------------------------------
VENV="$HERE/.venv"
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ -f "$VENV/.switchboard-stamp" && "$(cat "$VENV/.switchboard-stamp")" == "$req_sum" ]] \
   && "$VENV/bin/python" -c 'import websockets' 2>/dev/null; then
  say "python venv up to date ($("$VENV/bin/python" -c 'import websockets; print("websockets", websockets.__version__)'))"
else
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    say "python3 -m venv failed; installing Debian's python3-venv"
    apt_install python3-venv
    /usr/bin/python3 -m venv "$VENV" || die "cannot create the venv $VENV"
  fi
  say "pip install -r requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" </dev/null \
    || die "pip install of $HERE/requirements.txt failed"
  echo "$req_sum" >"$VENV/.switchboard-stamp"
fi

# --- Chromium -----------------------------------------------------------------
if [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is still missing after apt-get install chromium"
say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')"
