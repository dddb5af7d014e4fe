#!/usr/bin/env bash
# Smoke-fuzzes switchboard-protocol: runs every cargo-fuzz target in fuzz/ for a bounded
# time, starting from the committed seeds in fuzz/seeds/<target>/, and fails on the first
# crash or broken oracle (the crashing input is left in fuzz/artifacts/<target>/).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target, default 10
#   TARGET   run only these targets (default: every target `cargo fuzz list` shows)
# Environment:
#   FUZZ_SANITIZER  address (default) or none, passed to `cargo fuzz --sanitizer`
#
# New inputs libFuzzer finds go to fuzz/corpus/<target>/ (not committed), so repeated runs
# keep what earlier ones learned. To reproduce a crash:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail

seconds="${1:-10}"
shift || true
sanitizer="${FUZZ_SANITIZER:-address}"
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address and the
# sanitizer-coverage -Cllvm-args it relies on), and only the stable toolchain exists on
# these machines. RUSTC_BOOTSTRAP=1 makes stable rustc accept -Z flags. It is set for this
# script's cargo calls only, which build the fuzz crate into fuzz/target; the product is
# never built with it.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets: they share every dependency.
cargo fuzz build --sanitizer "$sanitizer"

failed=()
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s" >&2
    mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
    # The first directory receives new inputs; the seeds are read only.
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>"fuzz/$target.log"; then
        failed+=("$target")
        tail -n 40 "fuzz/$target.log" >&2
    else
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/$target.log" | grep -o '[0-9]*$')
        echo "fuzz: $target ok, ${runs:-?} runs" >&2
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash" >&2
