#!/bin/bash
# Installs the Debian 12 packages Quietroom needs. Run as root.
#   deploy/deps.sh          build and run (clang and libbpf-dev build the
#                           relay's kernel path)
#   deploy/deps.sh --test   also what the test suite needs (cmocka, clang's
#                           libFuzzer runtime, bpftool, coturn, Chromium and
#                           Firefox ESR for the browser tests, and what
#                           deploy/validate.sh needs: systemd-analyze,
#                           dpkg-shlibdeps, promtool, python3-yaml; debootstrap
#                           for deploy/fresh-root.sh; rsyslog as the audit
#                           collector)
#   deploy/deps.sh --bench  what loadtest/bench.py needs (coturn, gnuplot)
set -euo pipefail

build=(cmake ninja-build pkg-config gcc libc6-dev make
       libssl-dev libjansson-dev zlib1g-dev libinih-dev libwebsockets-dev libsrtp2-dev curl openssl
       # signaling keeps visits and spent tokens in SQLite (state-dir).
       libsqlite3-dev
       # quietroomctl probe places real calls with the reference native client.
       libnice-dev libglib2.0-dev libopus-dev
       # The cluster store (signaling/store_nats.c) talks JetStream through libnats.
       libnats-dev
       # The relay's kernel path (--kernel-forward): its BPF object is
       # compiled from relay/bpf/ by clang -target bpf (gcc has no BPF
       # backend in Debian 12) and loaded and attached with libbpf (>= 1.0).
       # Without them the relay still builds, without the kernel path
       # (QR_KERNEL_FORWARD=OFF; "auto" then reports not_built).
       clang libbpf-dev)
test=(libcmocka-dev
      libclang-rt-14-dev python3 python3-jsonschema coturn
      chromium firefox-esr iproute2
      # ICE-TCP browser tests drop UDP to the relay inside a network namespace.
      nftables
      systemd dpkg-dev file python3-yaml prometheus
      # deploy/fresh-root.sh: a new Debian 12 root to run the quickstart and
      # install the .debs in.
      debootstrap
      # test_store_nats runs a real 3-server JetStream cluster on loopback.
      nats-server
      # test_audit_syslog ships audit records to a real rsyslog over TLS.
      rsyslog rsyslog-openssl
      # To look at the relay's kernel path while a test runs (bpftool prog
      # show, link show, map dump), as operators do (docs/operations.md).
      bpftool)
# prometheus: only for promtool (check config/rules, test rules). Debian has
# no promtool-only package; this one is ~96 MB installed with its web assets.
# Its maintainer scripts would start a Prometheus server on :9090: the
# install below runs under a policy-rc.d that forbids starting services.

bench=(coturn gnuplot-nox python3)

want=("${build[@]}")
if [ "${1:-}" = "--bench" ]; then
    want+=("${bench[@]}")
fi
if [ "${1:-}" = "--test" ]; then
    want+=("${test[@]}")
    # The browser tests need Node.js >= 20 and npm. Debian 12's own nodejs is
    # 18: it is installed only where there is no node at all, and
    # tests/browser/run.sh then says what is missing.
    command -v npm >/dev/null || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "deploy/deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Installing packages must not start daemons (prometheus, coturn): invoke-rc.d
# and deb-systemd-invoke ask policy-rc.d, and 101 means "not allowed".
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
