#!/bin/bash
# Sets up and runs every test: installs what is missing, then
#   1. a normal build and its unit tests (the whole ctest suite when stage 2
#      is left out),
#   2. the whole ctest suite built with AddressSanitizer +
#      UndefinedBehaviorSanitizer (integration tests run once, here: the
#      same processes and checks, with memory errors and leaks caught too;
#      the normal build's daemons are the ones the browser tests, the
#      packages and the fresh root run),
#   3. the browser tests: the web client in Chromium and Firefox ESR against
#      the real relay and signaling (tests/browser/README.md),
#   4. every libFuzzer harness for a short run (QR_FUZZ_SECONDS, default 20),
#   5. the deployment files: default configs start the daemons, .deb packages,
#      systemd units, Kubernetes manifests, Prometheus rules, Grafana
#      (deploy/validate.sh; with CI=true it also installs and purges the debs),
#   6. with CI=true only: a new Debian 12 minbase root (debootstrap) where the
#      README's first command, deploy/quickstart.sh, must install, build, run
#      and serve its join links, and another where the .debs install with apt
#      and both daemons start from their packaged configs
#      (deploy/fresh-root.sh, which also runs by hand).
# Set QR_SKIP_SANITIZE=1, QR_SKIP_BROWSER=1, QR_SKIP_FUZZ=1, QR_SKIP_DEPLOY=1 or
# QR_SKIP_FRESH=1 to leave a stage out locally.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's heading, and at the end how long each took (CI has a budget).
stage_names=()
stage_secs=()
stage_at=$SECONDS
stage() {
    stage_done
    stage_names+=("$1")
    echo "== $1 =="
}
stage_done() {
    [ ${#stage_names[@]} -gt ${#stage_secs[@]} ] || return 0
    stage_secs+=($((SECONDS - stage_at)))
    stage_at=$SECONDS
}
# Also when a stage fails or the run is stopped: that is when it matters.
stage_times() {
    stage_done
    for i in "${!stage_names[@]}"; do
        printf '%6d s  %s\n' "${stage_secs[$i]}" "${stage_names[$i]}"
    done
    printf '%6d s  in all\n' "$SECONDS"
}
trap stage_times EXIT

stage "dependencies"
deploy/deps.sh --test
(cd tests/fhir && npm ci --no-audit --no-fund)
jobs=$(nproc)
stage "build and test"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQR_BUILD_TESTS=ON >/dev/null
cmake --build build
if [ "${QR_SKIP_SANITIZE:-0}" != 1 ]; then
    (cd build && ctest --output-on-failure -j "$jobs" -L unit)
else
    (cd build && ctest --output-on-failure -j "$jobs")
fi

if [ "${QR_SKIP_BROWSER:-0}" != 1 ]; then
    stage "browser tests"
    (cd tests/browser && npm ci --no-audit --no-fund)
    QR_BUILD_DIR="$PWD/build" tests/browser/run.sh
fi

if [ "${QR_SKIP_SANITIZE:-0}" != 1 ]; then
    stage "ASan + UBSan"
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQR_SANITIZE=ON \
          -DQR_BUILD_TESTS=ON >/dev/null
    cmake --build build-asan
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
    (cd build-asan && ctest --output-on-failure -j "$jobs")
fi

if [ "${QR_SKIP_FUZZ:-0}" != 1 ]; then
    stage "libFuzzer smoke runs"
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DQR_FUZZ=ON >/dev/null
    cmake --build build-fuzz
    tests/fuzz/run.sh build-fuzz "${QR_FUZZ_SECONDS:-20}"
fi
if [ "${QR_SKIP_DEPLOY:-0}" != 1 ]; then
    stage "deployment files"
    deploy/validate.sh build
fi
# CI only: it debootstraps a root and installs packages into it (minutes).
if [ "${CI:-}" = true ] && [ "${QR_SKIP_FRESH:-0}" != 1 ]; then
    stage "quickstart and packages on a fresh Debian 12 root"
    if [ "${QR_SKIP_DEPLOY:-0}" != 1 ]; then
        # validate.sh has just built the packages there.
        QR_FRESH_DEBS=${QR_DEB_BUILD_DIR:-build-deb} deploy/fresh-root.sh
    else
        deploy/fresh-root.sh
    fi
fi
echo "== all tests passed =="
