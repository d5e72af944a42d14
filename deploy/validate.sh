#!/bin/bash
# "Unit files and manifests validate": every deployment artefact, checked
# offline. Exits non-zero if any check fails (all checks run; failures are
# listed at the end).
#
#   deploy/validate.sh [BUILD_DIR]     BUILD_DIR: a normal build (default build/)
#
#   1. default configs: both daemons start from deploy/etc/ (check-configs.sh)
#   2. .deb packages: a /usr build, cpack -G DEB, dpkg-deb -I/-c inspected
#      (each carries its man page); the man pages in docs/man/ linted with
#      groff -man -ww and man --warnings when those are installed
#   3. systemd units: sandbox settings present, systemd-analyze verify against
#      the binaries installed into a staging root
#   4. with CI=true only: apt-get install the debs, run each binary's
#      --version/--help, systemd-analyze verify the installed units, purge
#   5. Kubernetes manifests against vendored schemas (k8s/validate.py), and
#      kubectl --dry-run=client when a kubectl can reach an API server
#   6. Prometheus: promtool check config / check rules / test rules
#   7. Grafana JSON and metric names against docs/operations.md
#   8. Containerfile (static; no container engine here)
#
# QR_DEB_BUILD_DIR (default build-deb) is the packaging build tree.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
debdir=${QR_DEB_BUILD_DIR:-build-deb}
py=/usr/bin/python3            # Debian's, with python3-yaml and python3-jsonschema
[ -x $py ] || py=python3
failed=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

stage() { echo; echo "== deploy: $1 =="; }
run() { # NAME CMD...: runs a check, records a failure
    local name=$1; shift
    if "$@"; then echo "ok: $name"; else echo "FAILED: $name" >&2; failed+=("$name"); fi
}

# --- 1. default configurations start the daemons --------------------------
stage "default configs"
if [ ! -x "$build/relay/quietroom-relay" ]; then
    cmake -S . -B "$build" -G Ninja >/dev/null && cmake --build "$build" >/dev/null
fi
run "default configs start the daemons" deploy/check-configs.sh "$build"

# --- 2. packages ----------------------------------------------------------
stage "debian packages"
build_debs() {
    cmake -S . -B "$debdir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DCMAKE_INSTALL_PREFIX=/usr -DQR_BUILD_TESTS=OFF >/dev/null &&
    cmake --build "$debdir" >/dev/null &&
    rm -f "$debdir"/*.deb && (cd "$debdir" && cpack -G DEB >/dev/null)
}
inspect_debs() {
    local ok=0 d pkg
    for pkg in quietroom-relay quietroom-signal quietroomctl; do
        d=$(ls "$debdir"/${pkg}_*.deb 2>/dev/null | head -1)
        if [ -z "$d" ]; then echo "no package $pkg" >&2; ok=1; continue; fi
        dpkg-deb -I "$d" > "$tmp/$pkg.info"; dpkg-deb -c "$d" | awk '{print $6}' > "$tmp/$pkg.files"
        dpkg-deb -e "$d" "$tmp/$pkg.ctl"
        echo "$pkg: $(grep '^ Depends:' "$tmp/$pkg.info")"
        want_files=() want_deps=() conf=()
        case $pkg in
        quietroom-relay)
            want_files=(./usr/sbin/quietroom-relay ./etc/quietroom/relay.conf
                        ./lib/systemd/system/quietroom-relay.service
                        ./usr/share/man/man8/quietroom-relay.8.gz)
            want_deps=(libssl3 libjansson4 libinih1); conf=(/etc/quietroom/relay.conf)
            # The kernel path: built wherever clang and libbpf-dev are
            # (deploy/deps.sh), and then libbpf1 is a Depends.
            if objdump -p "$debdir/relay/quietroom-relay" 2>/dev/null | grep -q 'NEEDED.*libbpf\.so'; then
                want_deps+=(libbpf1)
            elif command -v clang >/dev/null && pkg-config --exists 'libbpf >= 1.0'; then
                echo "$pkg: built without the kernel path although clang and libbpf are here" >&2; ok=1
            fi ;;
        quietroom-signal)
            want_files=(./usr/sbin/quietroom-signal ./etc/quietroom/signal.ini
                        ./lib/systemd/system/quietroom-signal.service ./usr/share/quietroom/web/index.html
                        ./usr/share/quietroom/ops-web/index.html ./usr/share/quietroom/ops-web/dashboard.js
                        ./usr/share/man/man8/quietroom-signal.8.gz)
            want_deps=(libssl3 libjansson4 libinih1 libwebsockets17); conf=(/etc/quietroom/signal.ini) ;;
        quietroomctl)
            want_files=(./usr/bin/quietroomctl ./lib/systemd/system/quietroom-probe.service
                        ./lib/systemd/system/quietroom-probe.timer ./etc/default/quietroom-probe
                        ./usr/share/man/man8/quietroomctl.8.gz)
            want_deps=(libssl3 libjansson4); conf=(/etc/default/quietroom-probe) ;;
        esac
        for f in "${want_files[@]}"; do
            grep -qx "$f" "$tmp/$pkg.files" || { echo "$pkg: missing $f" >&2; ok=1; }
        done
        for l in "${want_deps[@]}"; do
            grep '^ Depends:' "$tmp/$pkg.info" | grep -qw "$l" || { echo "$pkg: Depends lacks $l" >&2; ok=1; }
        done
        for c in "${conf[@]}"; do
            grep -qx "$c" "$tmp/$pkg.ctl/conffiles" || { echo "$pkg: $c is not a conffile" >&2; ok=1; }
        done
        for s in postinst prerm postrm; do
            sh -n "$tmp/$pkg.ctl/$s" || { echo "$pkg: $s: shell syntax error" >&2; ok=1; }
        done
        if grep -q '^\./usr/local' "$tmp/$pkg.files"; then echo "$pkg: files under /usr/local" >&2; ok=1; fi
    done
    return $ok
}
run "debs build (cpack -G DEB)" build_debs
run "debs contents, Depends, conffiles, maintainer scripts" inspect_debs

# Man pages: any warning of groff's (all of them on: -ww) or man's is a failure.
lint_man() {
    local ok=0 page out
    for page in docs/man/*.8; do
        out=$(groff -man -ww -z "$page" 2>&1) || ok=1
        [ -z "$out" ] || { echo "$page: $out" >&2; ok=1; }
        if command -v man >/dev/null; then
            out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || ok=1
            [ -z "$out" ] || { echo "$page: $out" >&2; ok=1; }
        fi
    done
    return $ok
}
if command -v groff >/dev/null; then
    run "man pages: groff -man -ww, man --warnings" lint_man
else
    echo "(man page lint skipped: no groff; apt-get install groff-base)"
fi

# --- 3. systemd units -----------------------------------------------------
stage "systemd units"
units=(deploy/systemd/quietroom-relay.service deploy/systemd/quietroom-signal.service
       deploy/systemd/quietroom-probe.service deploy/systemd/quietroom-probe.timer)
sandbox() {
    local ok=0 u key caps amb kfwd c conf port
    for u in deploy/systemd/*.service; do
        for key in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes \
                   SystemCallFilter=@system-service PrivateTmp=yes ProtectHome=yes; do
            grep -qx "$key" "$u" || { echo "$u: lacks $key" >&2; ok=1; }
        done
        grep -q '^RestrictAddressFamilies=' "$u" || { echo "$u: lacks RestrictAddressFamilies" >&2; ok=1; }
        # An empty capability set, except for binding a port < 1024 and,
        # in the relay only, loading and attaching the kernel path.
        caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$u")
        amb=$(sed -n 's/^AmbientCapabilities=//p' "$u")
        [ "$caps" = "$amb" ] ||
            { echo "$u: AmbientCapabilities=$amb is not CapabilityBoundingSet=$caps" >&2; ok=1; }
        kfwd=0
        for c in $caps; do
            case "$c" in
            CAP_NET_BIND_SERVICE)
                # only if the packaged config binds below 1024, or shows how to
                # (the relay's listen-tcp on 443 is commented out by default:
                # signaling may hold 443 on the same host)
                conf=$(sed -n 's#^ExecStart=.*--config /etc/quietroom/##p' "$u")
                port=$(sed -n 's/^#\{0,1\}listen\(-tcp\)\{0,1\} = .*:\([0-9]*\)$/\2/p' "deploy/etc/$conf" 2>/dev/null |
                       sort -n | head -1)
                if [ -z "$port" ] || [ "$port" -ge 1024 ]; then
                    echo "$u: CAP_NET_BIND_SERVICE but $conf listens on ${port:-?}" >&2; ok=1
                fi ;;
            CAP_BPF|CAP_NET_ADMIN)
                [ "$(basename "$u")" = quietroom-relay.service ] ||
                    { echo "$u: $c is for the relay's kernel path only" >&2; ok=1; }
                kfwd=$((kfwd + 1)) ;;
            *) echo "$u: CapabilityBoundingSet has $c" >&2; ok=1 ;;
            esac
        done
        # The kernel path: both capabilities or neither; bpf(2) and capset(2)
        # taken back from ~@privileged (after it), rtnetlink for getifaddrs(3),
        # and relay.conf says how to turn it off.
        if [ $kfwd -ne 0 ]; then
            [ $kfwd -eq 2 ] || { echo "$u: CAP_BPF and CAP_NET_ADMIN go together" >&2; ok=1; }
            sed -n '/^SystemCallFilter=~@privileged/,$p' "$u" | grep -qx 'SystemCallFilter=bpf capset' ||
                { echo "$u: no SystemCallFilter=bpf capset after ~@privileged" >&2; ok=1; }
            grep '^RestrictAddressFamilies=' "$u" | grep -qw AF_NETLINK ||
                { echo "$u: kernel path without AF_NETLINK" >&2; ok=1; }
            grep -q '^#\{0,1\}kernel-forward = auto$' deploy/etc/relay.conf ||
                { echo "deploy/etc/relay.conf: kernel-forward (default auto) not shown" >&2; ok=1; }
        fi
    done
    return $ok
}
verify_units() { # ROOT_PREFIX UNIT...: systemd-analyze verify; any message is a failure
    local prefix=$1; shift
    local dir="$tmp/units.$RANDOM" u out names=()
    mkdir -p "$dir"
    for u in "$@"; do
        # Point the binaries at the staging root (when verifying staged units).
        sed -e "s#/usr/sbin/quietroom-#$prefix/usr/sbin/quietroom-#g" \
            -e "s#/usr/bin/quietroomctl#$prefix/usr/bin/quietroomctl#g" "$u" > "$dir/$(basename "$u")"
        names+=("./$(basename "$u")")
    done
    out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "${names[@]}" 2>&1)
    local rc=$?
    [ -z "$out" ] || echo "$out" >&2
    [ $rc -eq 0 ] && [ -z "$out" ]
}
stage_install() {
    rm -rf "$tmp/root" && for c in relay signal ctl; do
        DESTDIR="$tmp/root" cmake --install "$debdir" --component $c >/dev/null || return 1
    done
}
run "units: sandbox settings" sandbox
if command -v systemd-analyze >/dev/null; then
    run "units: staged install" stage_install
    run "units: systemd-analyze verify (staged binaries)" verify_units "$tmp/root" "${units[@]}"
else
    echo "FAILED: systemd-analyze missing (deploy/deps.sh --test installs systemd)" >&2
    failed+=("systemd-analyze")
fi

# --- 4. install the packages (CI only: changes the machine) -----------------
if [ "${CI:-}" = true ]; then
    stage "install the packages with apt (CI=true)"
    install_debs() {
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends ./"$debdir"/quietroom-relay_*.deb \
            ./"$debdir"/quietroom-signal_*.deb ./"$debdir"/quietroomctl_*.deb >/dev/null || return 1
        local ok=0 b
        for b in /usr/sbin/quietroom-relay /usr/sbin/quietroom-signal /usr/bin/quietroomctl; do
            "$b" --version || ok=1
            "$b" --help >/dev/null 2>&1 || ok=1
        done
        getent group quietroom >/dev/null || { echo "postinst made no quietroom group" >&2; ok=1; }
        verify_units "" /lib/systemd/system/quietroom-relay.service \
            /lib/systemd/system/quietroom-signal.service /lib/systemd/system/quietroom-probe.service \
            /lib/systemd/system/quietroom-probe.timer || ok=1
        return $ok
    }
    purge_debs() {
        apt-get purge -y -q quietroom-relay quietroom-signal quietroomctl >/dev/null || return 1
        ! dpkg -l quietroom-relay quietroom-signal quietroomctl 2>/dev/null | grep -q '^[ir]i'
    }
    run "debs install with apt; binaries and installed units" install_debs
    run "debs purge" purge_debs
else
    echo "(apt install of the debs skipped: set CI=true to run it; it installs and purges packages)"
fi

# --- 5. Kubernetes ----------------------------------------------------------
stage "kubernetes manifests"
run "k8s: schemas and cross-references" $py deploy/k8s/validate.py
run "k8s: each cluster rule refuses a manifest broken against it" $py deploy/k8s/validate_rules_test.py
if command -v kubectl >/dev/null && timeout 5 kubectl api-resources >/dev/null 2>&1; then
    run "k8s: kubectl apply --dry-run=client" \
        kubectl apply --dry-run=client --validate=false -f deploy/k8s/
else
    echo "(kubectl dry-run skipped: no kubectl, or no API server for its discovery)"
fi

# --- 6. Prometheus --------------------------------------------------------
stage "prometheus"
if command -v promtool >/dev/null; then
    # The scrape config names a token file that exists on the Prometheus host.
    touch "$tmp/ops.token"
    sed "s#/etc/prometheus/quietroom-ops.token#$tmp/ops.token#" deploy/prometheus/prometheus.yml \
        > "$tmp/prometheus.yml"
    cp deploy/prometheus/alerts.yml "$tmp/"
    run "promtool check config" promtool check config "$tmp/prometheus.yml"
    run "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
    run "promtool test rules" promtool test rules deploy/prometheus/alerts_test.yml
else
    echo "FAILED: promtool missing (deploy/deps.sh --test installs prometheus)" >&2
    failed+=("promtool")
fi

# --- 7. Grafana and metric names --------------------------------------------
stage "grafana and metric names"
run "dashboard JSON; metrics of dashboard and alerts documented" $py deploy/check-metrics.py .

# --- 8. container ---------------------------------------------------------
stage "container"
run "Containerfile (static)" $py deploy/container/check.py

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "deploy/validate.sh: ${#failed[@]} check(s) failed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "deploy/validate.sh: all deployment checks passed"
