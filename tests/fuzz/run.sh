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
# One fuzzer per core at a time: each is single-threaded, so on a 2-core
# machine the smoke runs take half as long and each still gets its seconds.
jobs=$(nproc 2>/dev/null || echo 1)
logs="$build/fuzz-logs"
mkdir -p "$logs"
run_one() {
    local bin=$1 name seeds work
    name=$(basename "$bin")
    seeds="$here/corpus/${name#fuzz_}"
    work="$build/fuzz-corpus/$name"
    mkdir -p "$work"
    local dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    "$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/$name-" -print_final_stats=1 "${dirs[@]}" >"$logs/$name.log" 2>&1
}
pids=()
names=()
rc=0
for bin in "${bins[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "-- $(basename "$bin") for ${secs}s"
    run_one "$bin" &
    pids+=($!)
    names+=("$(basename "$bin")")
done
for i in "${!pids[@]}"; do
    status=0
    wait "${pids[$i]}" || status=$?
    echo "== ${names[$i]} (exit $status)"
    tail -n 12 "$logs/${names[$i]}.log"
    [ "$status" = 0 ] || rc=1
done
exit $rc
