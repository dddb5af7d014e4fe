#!/usr/bin/env bash
# scripts/package-check.sh - every library crate packages (cargo package --no-verify --list)
# with its README, a description and a license, and no placeholder metadata.
# Run by scripts/test.sh's doc phase. Reads only; builds nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in switchboard-protocol switchboard switchboard-hub switchboard-loadgen; do
  if ! list=$(cargo package --no-verify --list --allow-dirty -p "$crate" 2>/dev/null); then
    echo "FAIL $crate: cargo package --list failed"; status=1; continue
  fi
  for file in Cargo.toml README.md src/lib.rs; do
    grep -qx "$file" <<<"$list" || { echo "FAIL $crate: $file is not in the package"; status=1; }
  done
  manifest="$crate/Cargo.toml"
  for key in description readme; do
    grep -q "^$key = " "$manifest" || { echo "FAIL $crate: no $key in $manifest"; status=1; }
  done
  grep -q "^license" "$manifest" || { echo "FAIL $crate: no license in $manifest"; status=1; }
  if grep -qi "example\.invalid" "$manifest"; then
    echo "FAIL $crate: placeholder URL in $manifest"; status=1
  fi
  [[ $status -eq 0 ]] && echo "ok $crate: $(wc -l <<<"$list") files"
done
exit "$status"
