#!/bin/bash
# shellcheck disable=SC2317  # cleanup's functions run from a trap
# Browser tests of the web client against the real relay and signaling:
# Chromium (therapist + patient) on loopback, then Firefox ESR (patient) with
# Chromium (therapist) inside a network namespace the test creates (root).
# Installs nothing. Needs: chromium, firefox-esr, iproute2 (Debian packages),
# Node.js >= 20 with `npm ci` done in this folder, and the daemons built in
# $QR_BUILD_DIR (default <repo>/build). Screenshots and daemon logs go to
# artifacts/. QR_SKIP_FIREFOX=1 leaves the Firefox test out. Then the
# Chromium test runs a second time (QR_BROWSER_CLUSTER=1) against two
# signaling replicas clustered over one JetStream nats-server (needs
# /usr/sbin/nats-server, Debian package nats-server); QR_SKIP_CLUSTER=1
# leaves that pass out. tcp.test.mjs (ICE-TCP: browsers in namespaces whose
# nftables rules drop UDP to the relay) and check.test.mjs (the waiting
# room's connection check through the relay, the same namespaces, and tc
# for a slow path) need root and nftables too; QR_SKIP_TCP=1 leaves them out.
# As root every relay runs with --kernel-forward on (lib/servers.mjs): the
# calls go through its BPF program, and a relay that cannot attach it does
# not start. QR_KERNEL_FORWARD=off|auto|on chooses otherwise.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
export QR_BUILD_DIR=${QR_BUILD_DIR:-$repo/build}
# The first pass (the cluster pass has its own limit); every wait inside has
# its own, shorter timeout.
run_limit=${QR_BROWSER_TIMEOUT:-1600}

missing=()
for bin in relay/quietroom-relay signaling/quietroom-signal ctl/quietroomctl; do
    [ -x "$QR_BUILD_DIR/$bin" ] || missing+=("$QR_BUILD_DIR/$bin (build the project first)")
done
[ -x "${QR_CHROMIUM:-/usr/bin/chromium}" ] || missing+=("chromium (apt-get install chromium)")
if [ "${QR_SKIP_FIREFOX:-0}" != 1 ]; then
    [ -x "${QR_FIREFOX:-/usr/bin/firefox-esr}" ] || missing+=("firefox-esr (apt-get install firefox-esr)")
    command -v ip >/dev/null || missing+=("ip (apt-get install iproute2)")
    [ "$(id -u)" = 0 ] || missing+=("root: the Firefox test creates a network namespace (or QR_SKIP_FIREFOX=1)")
fi
if [ "${QR_SKIP_TCP:-0}" != 1 ]; then
    command -v ip >/dev/null || missing+=("ip (apt-get install iproute2, or QR_SKIP_TCP=1)")
    command -v nft >/dev/null || missing+=("nft (apt-get install nftables, or QR_SKIP_TCP=1)")
    command -v openssl >/dev/null || missing+=("openssl (apt-get install openssl, or QR_SKIP_TCP=1)")
    [ "$(id -u)" = 0 ] || missing+=("root: the ICE-TCP test creates network namespaces (or QR_SKIP_TCP=1)")
fi
if [ "${QR_SKIP_CLUSTER:-0}" != 1 ]; then
    [ -x "${QR_NATS_SERVER:-/usr/sbin/nats-server}" ] || missing+=("nats-server (apt-get install nats-server, or QR_SKIP_CLUSTER=1)")
fi
if ! command -v node >/dev/null; then
    missing+=("node >= 20")
elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    missing+=("node >= 20 (this is $(node --version))")
fi
[ -d node_modules/playwright-core ] && [ -d node_modules/puppeteer-core ] || missing+=("node_modules (npm ci in tests/browser)")
case ${QR_KERNEL_FORWARD:-} in
""|on|off|auto) ;;
*) missing+=("QR_KERNEL_FORWARD=on, off or auto (not '$QR_KERNEL_FORWARD')") ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
    printf 'browser tests cannot run, missing:\n' >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi

# Everything this run starts inherits this marker in its environment: the
# daemons, the test processes and the browsers, including the ones that put
# themselves in a process group of their own (both drivers start browsers
# that way). Cleanup kills exactly the processes that carry it, whatever
# happened to the run. Temporary files (daemon keys and logs, browser
# profiles) all go under one directory that cleanup removes.
marker="QR_BROWSER_TEST_RUN=$$.$(date +%s%N)"
export "${marker?}"
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/qr-browser-run.XXXXXX")
export TMPDIR=$run_tmp

marked_pids() {
    local p pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = $$ ] && continue
        grep -qzxF "$marker" "$p/environ" 2>/dev/null && echo "$pid"
    done
    return 0
}

# Namespaces qrbt-<pid> and qrbt-<pid>-<tag> whose test process is gone (a
# run that was killed).
remove_stale_namespaces() {
    command -v ip >/dev/null && [ "$(id -u)" = 0 ] || return 0
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^qrbt-[0-9]+(-[a-z0-9]+)?$'); do
        pid=${ns#qrbt-}
        pid=${pid%%-*}
        # Gone, or a zombie nobody has reaped yet.
        if [ ! -d "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local pids
    pids=$(marked_pids)
    if [ -n "$pids" ]; then
        # A clean run leaves nothing: say what was left, then end it.
        echo "cleanup: ending leftover processes:" >&2
        # shellcheck disable=SC2086
        ps -o pid=,comm= -p "$(echo $pids | tr ' ' ,)" >&2 || true
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        sleep 1
        pids=$(marked_pids)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        # Until they are gone: a namespace's test process must be, below.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pids=$(marked_pids)
            [ -n "$pids" ] || break
            sleep 0.5
        done
    fi
    remove_stale_namespaces
    if [ "${QR_KEEP_TEST_DIRS:-0}" = 1 ]; then
        echo "kept $run_tmp" >&2
    else
        rm -rf "$run_tmp"
    fi
}
trap cleanup EXIT
# The run goes in the background and is waited for: bash runs a trap only
# between commands, and `wait` is one it interrupts.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

remove_stale_namespaces
rm -rf artifacts
mkdir -p artifacts
files=(messages.test.mjs sdp.test.mjs peerlink.test.mjs chromium.test.mjs linkcheck.test.mjs locale.test.mjs
       visitlinks.test.mjs visitlinks-room.test.mjs restart.test.mjs failover.test.mjs dashboard.test.mjs
       incall.test.mjs layout.test.mjs)
[ "${QR_SKIP_FIREFOX:-0}" = 1 ] || files+=(firefox.test.mjs visitlinks-firefox.test.mjs)
[ "${QR_SKIP_TCP:-0}" = 1 ] || files+=(tcp.test.mjs check.test.mjs)
kfwd=${QR_KERNEL_FORWARD:-$([ "$(id -u)" = 0 ] && echo on || echo off)}
echo "browser tests: relays run with --kernel-forward $kfwd" >&2
start=$(date +%s)
rc=0
timeout --kill-after=10 "$run_limit" node --test --test-concurrency=1 --test-timeout=240000 \
    --test-reporter=spec "${files[@]}" </dev/null &
wait $! || rc=$?
[ "$rc" != 124 ] || echo "browser tests: the whole run exceeded ${run_limit} s and was stopped" >&2
# The cluster pass: chromium.test.mjs again, the therapist on replica 1 and
# the patient on replica 2 (restart.test.mjs kills and restarts the one
# signaling process, dashboard.test.mjs reads one process's /metrics and
# dashboard: neither is a cluster test, so neither runs here).
if [ "${QR_SKIP_CLUSTER:-0}" != 1 ]; then
    cluster_limit=${QR_BROWSER_CLUSTER_TIMEOUT:-300}
    cluster_start=$(date +%s)
    cluster_rc=0
    echo "browser tests: chromium.test.mjs again against a 2-replica signaling cluster (QR_BROWSER_CLUSTER=1)" >&2
    QR_BROWSER_CLUSTER=1 timeout --kill-after=10 "$cluster_limit" node --test --test-concurrency=1 \
        --test-timeout=240000 --test-reporter=spec chromium.test.mjs </dev/null &
    wait $! || cluster_rc=$?
    [ "$cluster_rc" != 124 ] || echo "browser tests: the cluster pass exceeded ${cluster_limit} s and was stopped" >&2
    echo "browser tests: cluster pass exit $cluster_rc after $(($(date +%s) - cluster_start)) s" >&2
    [ "$rc" != 0 ] || rc=$cluster_rc
fi
echo "browser tests: exit $rc after $(($(date +%s) - start)) s; artifacts in $PWD/artifacts" >&2
exit "$rc"
