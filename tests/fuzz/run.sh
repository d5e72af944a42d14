#!/bin/bash
# Runs every libFuzzer harness in BUILD_DIR for SECONDS each, starting from
# the seed corpus in tests/fuzz/corpus/<name>. A crash fails the run and
# leaves the reproducer in build-dir/fuzz-artifacts/.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
art="$build/fuzz-artifacts"
mkdir -p "$art"
shopt -s nullglob
bins=("$build"/tests/fuzz/fuzz_*)
[ ${#bins[@]} -gt 0 ] || { echo "no fuzzers in $build/tests/fuzz" >&2; exit 1; }
for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    seeds="$here/corpus/${name#fuzz_}"
    work="$build/fuzz-corpus/$name"
    mkdir -p "$work"
    echo "-- $name for ${secs}s"
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    "$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/$name-" -print_final_stats=1 "${dirs[@]}" 2>&1 | tail -n 12
done
