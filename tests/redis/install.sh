#!/usr/bin/env bash
# tests/redis/install.sh - makes sure Debian's redis-server is installed (the broker contract
# tests in `cargo test` and tests/redis/run.sh start their own redis-server on a loopback
# port; nothing is mocked). Installs it with apt-get when missing (needs root), and fails
# loudly when it cannot be had. Does not start a server.
set -euo pipefail
say() { echo "[redis-install] $*"; }
die() { echo "[redis-install] ERROR: $*" >&2; exit 1; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo -n "$@"; fi; }
if command -v redis-server >/dev/null 2>&1; then
  say "$(redis-server --version | cut -d' ' -f1-3)"
  exit 0
fi
say "apt-get install redis-server"
as_root apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
  --no-install-recommends redis-server || die "apt-get install redis-server failed"
# Debian's package starts a system service on 6379; the tests never use it, and leave it be.
command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
say "$(redis-server --version | cut -d' ' -f1-3)"
