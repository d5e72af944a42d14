#!/bin/bash
# Proves, on a brand-new Debian 12 root, the two ways people install Quietroom:
#
#   1. quickstart: the README's first command. A copy of the repository is
#      put into a fresh `debootstrap --variant=minbase` root and
#      `deploy/quickstart.sh` runs there as root (apt-get installs the build
#      packages, cmake builds, the relay and signaling start on loopback).
#      Passes when both join links are printed, the therapist link's page
#      answers 200 and signaling reports its relay healthy.
#   2. debs: the three .deb packages are installed with apt-get into another
#      fresh root (apt resolves their Depends from the mirror); both daemons
#      start from the packaged /etc/quietroom files, with the secrets made as
#      the files' headers tell operators, as the systemd units would run them
#      (own user in group quietroom, UMask, capabilities, StateDirectory=),
#      answer /healthz and /readyz, and stop on SIGTERM.
#
#   deploy/fresh-root.sh            both (deploy/test.sh runs it with CI=true)
#   deploy/fresh-root.sh quickstart | debs
#
# Run as root; needs debootstrap (deploy/deps.sh --test), and for the debs
# part what deploy/validate.sh needs to build them (dpkg-dev, file).
#
# Environment:
#   QR_FRESH_DIR      cache and logs, default build/fresh-root:
#                     bookworm-minbase.tar  the debootstrapped root, reused
#                                           when present (delete to rebuild)
#                     apt-archives/         downloaded .debs, reused by apt and
#                                           debootstrap in the roots
#                     quickstart.log, debs.log, relay.log, signal.log
#                     The temporary roots are made here too and removed.
#   QR_FRESH_DEBS     directory that already holds the three quietroom .debs,
#                     relative to the repository or absolute (deploy/test.sh
#                     passes validate.sh's build-deb);
#                     otherwise they are built in QR_DEB_BUILD_DIR (default
#                     build-deb) the way deploy/validate.sh does.
#   QR_FRESH_SOURCE   head: the committed HEAD (git archive), what a clean
#                     clone has; worktree: the files git lists in the work
#                     tree, uncommitted edits and new unignored files included.
#                     Default head when CI=true, worktree otherwise.
#   QR_FRESH_TIMEOUT  seconds to wait for the quickstart's links (default 900:
#                     apt installs and a build on 2 CPUs are slow).
#   QR_FRESH_MIRROR   Debian mirror for debootstrap; default: the first
#                     bookworm URI of this machine's apt sources.
#
# Time on the 2-CPU development VM: debootstrap ~50 s (once; cached after),
# quickstart ~100 s (apt installs ~400 packages, then the build), debs ~25 s.
#
# Network: loopback, plus the Debian mirror for apt. The quickstart shares
# this machine's network namespace (it needs the mirror) on free ports; the
# packaged daemons run in their own network namespace, so their default
# ports (signaling on 0.0.0.0:443) are neither taken from this machine nor
# reachable from outside it.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
suite=bookworm
what=${1:-all}
case $what in all|quickstart|debs) ;; *) echo "usage: $0 [quickstart|debs]" >&2; exit 2 ;; esac

die() { echo "fresh-root: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mount need it)"
for c in debootstrap chroot tar curl findmnt flock unshare nsenter setsid ip openssl python3; do
    command -v "$c" >/dev/null || die "$c is missing (deploy/deps.sh --test installs it)"
done

fresh=${QR_FRESH_DIR:-build/fresh-root}
mkdir -p "$fresh/apt-archives/partial"
# Canonical: /proc/PID/root and findmnt report resolved paths.
fresh=$(realpath "$fresh")
# findmnt escapes blanks in the mount points it lists: keep them out.
case $fresh in *[[:space:]]*) die "QR_FRESH_DIR: no blanks in the path, please: $fresh" ;; esac
# One run per directory: a second one would take the first one's roots for
# leftovers of a killed run and remove them.
# The commands started below get "9>&-": a process left in a root by a killed
# run must not keep holding the lock that lets the next run remove it.
exec 9> "$fresh/lock"
flock -n 9 || die "another deploy/fresh-root.sh is using $fresh"
tarball=$fresh/$suite-minbase.tar
timeout_s=${QR_FRESH_TIMEOUT:-900}
source_mode=${QR_FRESH_SOURCE:-}
if [ -z "$source_mode" ]; then
    if [ "${CI:-}" = true ]; then source_mode="head"; else source_mode="worktree"; fi
fi
case $source_mode in head|worktree) ;; *) die "QR_FRESH_SOURCE=$source_mode: head or worktree" ;; esac

# --- roots: made, torn down -------------------------------------------------

roots=()       # temporary roots of this run, torn down on exit
netns_pid=""   # holder of the debs' network namespace
bg_pids=()     # background children: the daemons
qs_pgid=""     # the quickstart's process group

procs_in() { # DIR: pids of processes whose root directory is DIR or below it
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case $r in "$1"|"$1"/*) echo "${p#/proc/}" ;; esac
    done
}
mounts_in() { # DIR: mount points at or below DIR, deepest first
    findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | sort -r
}
teardown() { # DIR: kill what runs in it, unmount everything under it, delete it
    local dir=$1 pids m
    [ -d "$dir" ] || return 0
    for _ in 1 2 3 4 5; do
        pids=$(procs_in "$dir")
        [ -n "$pids" ] || break
        # shellcheck disable=SC2086  # a list of pids
        kill -KILL $pids 2>/dev/null || true
        sleep 0.5
    done
    [ -z "$(procs_in "$dir")" ] || echo "fresh-root: processes still in $dir: $(procs_in "$dir")" >&2
    while read -r m; do
        [ -n "$m" ] || continue
        umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(mounts_in "$dir")
    if [ -n "$(mounts_in "$dir")" ]; then
        # Deleting now would delete through a mount (/dev, the apt cache).
        echo "fresh-root: still mounted, $dir kept:" >&2; mounts_in "$dir" >&2
        return 1
    fi
    rm -rf --one-file-system "$dir"
}
cleanup() {
    local rc=$? r
    set +e
    [ -z "$qs_pgid" ] || kill -KILL -- "-$qs_pgid" 2>/dev/null
    for r in "${bg_pids[@]}" $netns_pid $qs_pgid; do
        kill -KILL "$r" 2>/dev/null; wait "$r" 2>/dev/null
    done
    for r in "${roots[@]}"; do teardown "$r" || rc=1; done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A run killed with SIGKILL cannot clean up: its roots are removed here.
for r in "$fresh"/root.*; do
    [ -d "$r" ] || continue
    echo "fresh-root: removing $r, left by an earlier run"
    teardown "$r" || die "could not remove $r"
done

alive() { # PID: running (a zombie child counts as gone)
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "${st%% *}" != Z ]
}

# --- the Debian mirror and apt sources of this machine ----------------------

# Lines of deb822 .sources files (stdin) whose stanzas are for $suite*, the
# keyrings they name existing under ROOT (a host's third-party repositories
# have keys a fresh root does not). MODE uri prints the first URI of a stanza
# for exactly $suite; MODE keep prints the stanzas.
deb822() { # MODE ROOT
    awk -v mode="$1" -v root="$2" -v suite="$suite" '
    BEGIN { RS = ""; ORS = "\n\n" }
    {
        n = split($0, l, "\n"); types = ""; uris = ""; suites = ""; signed = ""; enabled = "yes"
        for (i = 1; i <= n; i++) {
            if (l[i] ~ /^[ \t#]/ || !(c = index(l[i], ":"))) continue
            k = tolower(substr(l[i], 1, c - 1)); v = substr(l[i], c + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (k == "types") types = v; else if (k == "uris") uris = v
            else if (k == "suites") suites = v; else if (k == "signed-by") signed = v
            else if (k == "enabled") enabled = v
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        ok = suites != ""; exact = 0
        m = split(suites, s, /[ \t]+/)
        for (j = 1; j <= m; j++) {
            if (s[j] == suite) exact = 1
            if (s[j] !~ ("^" suite "([-/]|$)")) ok = 0
        }
        m = split(signed, s, /[ \t,]+/)
        for (j = 1; j <= m; j++)
            if (s[j] ~ /^\// && system("test -e \"" root s[j] "\"") != 0) ok = 0
        if (mode == "uri" && exact) { split(uris, u, /[ \t]+/); print u[1]; exit }
        if (mode == "keep" && ok) print
    }'
}
# The same for one-line sources.list files: "deb [options] URI SUITE COMPONENTS".
oneline() { # MODE ROOT
    awk -v mode="$1" -v root="$2" -v suite="$suite" '
    $1 != "deb" { next }
    {
        line = $0; opts = ""
        if (match(line, /\[[^]]*\]/)) { opts = substr(line, RSTART + 1, RLENGTH - 2); sub(/\[[^]]*\]/, "", line) }
        split(line, f, /[ \t]+/)
        if (mode == "uri" && f[3] == suite) { print f[2]; exit }
        if (f[3] !~ ("^" suite "([-/]|$)")) next
        if (match(opts, /signed-by=[^ \t]+/)) {
            k = substr(opts, RSTART + 10, RLENGTH - 10)
            if (k ~ /^\// && system("test -e \"" root k "\"") != 0) next
        }
        if (mode == "keep") print $0
    }'
}
host_sources() { # the apt source files of this machine
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && echo "$f"
    done
    return 0
}
mirror() {
    local f u
    if [ -n "${QR_FRESH_MIRROR:-}" ]; then echo "$QR_FRESH_MIRROR"; return; fi
    while read -r f; do
        case $f in
        *.sources) u=$(deb822 uri / < "$f") ;;
        *) u=$(oneline uri / < "$f") ;;
        esac
        if [ -n "$u" ]; then echo "$u"; return; fi
    done < <(host_sources)
    die "no deb line for $suite in /etc/apt/sources.list{,.d/*}: set QR_FRESH_MIRROR"
}

# --- the cached minbase root ------------------------------------------------

base_root() {
    if [ -s "$tarball" ]; then
        echo "fresh-root: reusing $tarball (delete it to debootstrap again)"
        return
    fi
    local m dir opts=(--variant=minbase "--cache-dir=$fresh/apt-archives")
    m=$(mirror)
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
        opts+=(--keyring /usr/share/keyrings/debian-archive-keyring.gpg)
    # apt in a minbase root has no CA certificates to talk to an https mirror.
    case $m in https:*) opts+=(--include=ca-certificates) ;; esac
    dir=$(mktemp -d "$fresh/root.XXXXXX"); roots+=("$dir")
    chmod 0755 "$dir"
    echo "fresh-root: debootstrap ${opts[*]} $suite $m"
    if ! debootstrap "${opts[@]}" "$suite" "$dir" "$m" > "$fresh/debootstrap.log" 2>&1 9>&-; then
        tail -30 "$fresh/debootstrap.log" >&2
        die "debootstrap failed (log: $fresh/debootstrap.log)"
    fi
    # Written next to the final name and renamed: an interrupted run never
    # leaves a truncated tarball that later runs would trust.
    tar --numeric-owner --xattrs -C "$dir" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    teardown "$dir"
}

# new_root NAME: a fresh copy of the cached root in $root, set up like the
# machine it stands for (this host's mirror, proxy and resolver), with /proc,
# /sys, /dev and the shared apt download cache mounted.
new_root() {
    local dir f out
    dir=$(mktemp -d "$fresh/root.$1.XXXXXX"); roots+=("$dir"); root=$dir
    tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball" -C "$dir"
    # mktemp made it 0700: / of a machine, which its users must traverse.
    chmod 0755 "$dir"
    rm -f "$dir/etc/resolv.conf"; cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
    # This machine's apt sources (same mirror, security updates), without
    # third-party repositories; debootstrap's own sources.list only if none.
    mkdir -p "$dir/etc/apt/sources.list.d"
    while read -r f; do
        case $f in
        *.sources) out=$(deb822 keep "$dir" < "$f") ;;
        *) out=$(oneline keep "$dir" < "$f") ;;
        esac
        [ -z "$out" ] || printf '%s\n' "$out" > "$dir/etc/apt/sources.list.d/host-$(basename "$f")"
    done < <(host_sources)
    if ls "$dir"/etc/apt/sources.list.d/host-* >/dev/null 2>&1; then rm -f "$dir/etc/apt/sources.list"; fi
    # A proxy this machine reaches the mirror through.
    out=$(apt-config dump | grep -i '^Acquire::[a-z]*::Proxy ' || true)
    [ -z "$out" ] || printf '%s\n' "$out" > "$dir/etc/apt/apt.conf.d/01host-proxy"
    # The root is thrown away: dpkg need not fsync every file it unpacks
    # (most of the quickstart's time is unpacking ~400 packages). The
    # packages and the commands that install them stay the same.
    echo force-unsafe-io > "$dir/etc/dpkg/dpkg.cfg.d/fresh-root-unsafe-io"
    mount -t proc proc "$dir/proc"
    # rslave: unmounting these copies later must not propagate back to the
    # host's /sys and /dev (it would on a shared root mount).
    mount --rbind /sys "$dir/sys"; mount --make-rslave "$dir/sys"
    mount --rbind /dev "$dir/dev"; mount --make-rslave "$dir/dev"
    mount --bind "$fresh/apt-archives" "$dir/var/cache/apt/archives"
    mount --make-private "$dir/var/cache/apt/archives"
    # apt downloads as _apt, whose uid is this root's, not necessarily ours.
    chroot "$dir" chown _apt:root /var/cache/apt/archives/partial
}

free_port() { # tcp|udp
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
EOF
}

# The environment of a root login on a new machine, not this script's.
clean_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb)

# --- 1. the README's first command ------------------------------------------

stage_source() { # DIR: the repository, as CI's clean clone or as the work tree
    mkdir -p "$1"
    if [ "$source_mode" = head ] && git -C "$src" rev-parse --verify -q HEAD >/dev/null; then
        echo "fresh-root: source: HEAD $(git -C "$src" rev-parse --short HEAD) (git archive)"
        git -C "$src" archive --format=tar HEAD | tar -x -C "$1"
    elif git -C "$src" rev-parse --verify -q HEAD >/dev/null; then
        echo "fresh-root: source: the work tree (tracked and new unignored files)"
        git -C "$src" ls-files -z -co --exclude-standard |
            while IFS= read -r -d '' f; do
                # listed but deleted in the work tree
                if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
            done | tar --null -T - -cf - | tar -x -C "$1"
    else
        echo "fresh-root: source: the directory (no git repository)"
        tar -C "$src" --exclude='./build*' --exclude=./.dev --exclude=./results --exclude=./.git \
            -cf - . | tar -x -C "$1"
    fi
}

quickstart() {
    local root log=$fresh/quickstart.log pid port media media_tcp control therapist patient base code body t0 rc left
    qs_fail() { tail -40 "$log" >&2; die "$* (log: $log)"; }
    new_root quickstart
    stage_source "$root/src"
    port=$(free_port tcp); control=$(free_port tcp); media=127.0.0.1:$(free_port udp)
    media_tcp=127.0.0.1:$(free_port tcp)   # the relay's listen-tcp
    echo "fresh-root: deploy/quickstart.sh in $root (log: $log; signaling on 127.0.0.1:$port)"
    # Its own session and process group, so that it and everything it starts
    # can be signalled at once. (This script runs without job control, so the
    # background child is no group leader and setsid does not fork: $! is the
    # group's id.)
    setsid "${clean_env[@]}" QR_PORT="$port" QR_CONTROL="127.0.0.1:$control" QR_MEDIA="$media" \
        QR_MEDIA_TCP="$media_tcp" \
        chroot "$root" /bin/bash -c 'cd /src && exec deploy/quickstart.sh' \
        < /dev/null > "$log" 2>&1 9>&- &
    pid=$!
    qs_pgid=$pid
    t0=$SECONDS
    until grep -q '^Therapist: ' "$log" && grep -q '^Patient: ' "$log"; do
        alive "$pid" || qs_fail "quickstart exited before printing the links"
        [ $((SECONDS - t0)) -lt "$timeout_s" ] || qs_fail "no join links after ${timeout_s}s"
        sleep 2
    done
    therapist=$(sed -n 's/^Therapist: *//p' "$log" | head -1)
    patient=$(sed -n 's/^Patient: *//p' "$log" | head -1)
    echo "fresh-root: links after $((SECONDS - t0))s: ${therapist%%#*}#token=… and ${patient%%#*}#token=…"
    case $therapist in "http://127.0.0.1:$port/#token="?*) ;; *) qs_fail "therapist link: $therapist" ;; esac
    case $patient in "http://127.0.0.1:$port/#token="?*) ;; *) qs_fail "patient link: $patient" ;; esac
    # The token is in the fragment, which a browser never sends: the page is
    # the base URL.
    base=${therapist%%#*}
    code=$(curl -sS -o "$root/page.html" -w '%{http_code}' --max-time 10 "$base") || code=none
    [ "$code" = 200 ] || qs_fail "GET $base answered $code"
    grep -Eq '<title[^>]*>Quietroom' "$root/page.html" || qs_fail "GET $base: not the Quietroom page"
    body=$(curl -fsS --max-time 10 "${base}healthz") || qs_fail "GET ${base}healthz failed"
    case $body in *'"relays_healthy":1'*|*'"relays_healthy": 1'*) ;; *) qs_fail "signaling /healthz: $body" ;; esac
    echo "fresh-root: quickstart ok: GET $base 200, /healthz $body"
    # Ctrl-C, as a person would (the terminal signals the whole process
    # group): the README says it stops everything.
    kill -INT -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && qs_fail "quickstart still running 10 s after Ctrl-C"
    rc=0; wait "$pid" || rc=$?
    qs_pgid=""
    [ "$rc" = 0 ] || qs_fail "quickstart exited with status $rc after Ctrl-C"
    for _ in $(seq 25); do left=$(procs_in "$root"); [ -n "$left" ] || break; sleep 0.2; done
    if [ -n "$left" ]; then
        # shellcheck disable=SC2086  # a list of pids
        ps -o pid,args -p ${left//$'\n'/,} >&2 || true
        qs_fail "processes left running in the root after Ctrl-C"
    fi
    echo "fresh-root: Ctrl-C stopped the quickstart (status 0) and everything it started"
    teardown "$root"
}

# --- 2. the Debian packages ---------------------------------------------------

find_debs() { # DIR: the three packages' files, one a line; fails if one is missing
    local pkg d
    for pkg in quietroom-relay quietroom-signal quietroomctl; do
        d=$(ls -t "$1"/"${pkg}"_*.deb 2>/dev/null | head -1)
        [ -n "$d" ] || return 1
        echo "$d"
    done
}
build_debs() { # DIR: as deploy/validate.sh does
    echo "fresh-root: building the packages in $1"
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DCMAKE_INSTALL_PREFIX=/usr -DQR_BUILD_TESTS=OFF >/dev/null &&
    cmake --build "$1" >/dev/null &&
    rm -f "$1"/*.deb && (cd "$1" && cpack -G DEB >/dev/null) ||
    die "building the packages failed"
}

# unit_get UNIT KEY: the value of KEY in the installed unit file (the last
# assignment: the units here set each key once, or reset it with an empty one).
unit_get() {
    sed -n "s/^$2=//p" "$root/lib/systemd/system/$1" | tail -1
}
caps() { # "CAP_A CAP_B" -> "+a,+b" (setpriv's names)
    local c out=""
    for c in $1; do c=${c,,}; out+=",+${c#cap_}"; done
    echo "$out"
}

# start_unit UNIT LOG: runs the unit's ExecStart= in the root the way
# systemd would start it, in the debs' network namespace; sets $unit_pid.
# Emulated: DynamicUser= (a system user named after the unit; systemd would
# allocate one), User=, SupplementaryGroups=, {State,Runtime,Cache,Logs}
# Directory= with their modes, owned by that user (systemd puts a dynamic
# user's state under /var/lib/private and links it: the path the daemon sees
# is the same), UMask=, LimitNOFILE=, NoNewPrivileges=,
# CapabilityBoundingSet=, AmbientCapabilities=. The rest of the sandbox
# (Protect*=, SystemCallFilter=, ...) needs systemd; deploy/validate.sh runs
# systemd-analyze verify on the units.
start_unit() {
    local unit=$1 log=$2 user groups umask nofile exec key base d mode bound amb argv=() priv=()
    exec=$(unit_get "$unit" ExecStart)
    [ -n "$exec" ] || die "$unit: no ExecStart="
    case $exec in *'$'*|*'%'*|*\"*|*\'*) die "$unit: ExecStart=$exec: expand it here first" ;; esac
    exec=${exec#[-@+!:]}
    read -ra argv <<<"$exec"
    user=$(unit_get "$unit" User)
    if [ "$(unit_get "$unit" DynamicUser)" = yes ]; then user=${user:-${unit%.service}}; fi
    [ -n "$user" ] || user=root
    if [ "$user" != root ] && ! chroot "$root" getent passwd "$user" >/dev/null; then
        chroot "$root" useradd --system --user-group --no-create-home --home-dir / \
            --shell /usr/sbin/nologin "$user"
    fi
    for key in State:/var/lib Runtime:/run Cache:/var/cache Logs:/var/log; do
        base=${key#*:}; key=${key%%:*}
        mode=$(unit_get "$unit" "${key}DirectoryMode"); mode=${mode:-0755}
        for d in $(unit_get "$unit" "${key}Directory"); do
            chroot "$root" install -d -m 0755 "$base/$(dirname "$d")"
            chroot "$root" install -d -m "$mode" -o "$user" -g "$user" "$base/$d"
        done
    done
    groups=$(unit_get "$unit" SupplementaryGroups)
    priv=(--reuid="$user" --regid="$user")
    if [ -n "$groups" ]; then priv+=(--groups="${groups// /,}"); else priv+=(--clear-groups); fi
    [ "$(unit_get "$unit" NoNewPrivileges)" != yes ] || priv+=(--no-new-privs)
    if grep -q '^CapabilityBoundingSet=' "$root/lib/systemd/system/$unit"; then
        bound=$(caps "$(unit_get "$unit" CapabilityBoundingSet)")
        priv+=(--bounding-set="-all$bound")
    fi
    amb=$(caps "$(unit_get "$unit" AmbientCapabilities)")
    priv+=(--inh-caps="-all$amb")
    [ -z "$amb" ] || priv+=(--ambient-caps="${amb#,}")
    umask=$(unit_get "$unit" UMask); umask=${umask:-0022}
    nofile=$(unit_get "$unit" LimitNOFILE)
    # umask and the descriptor limit are set as root, then kept through
    # setpriv's change of user and exec. Raising the hard limit above this
    # machine's needs CAP_SYS_RESOURCE, which systemd has and a container
    # running this may not: then the hard limit it allows.
    # shellcheck disable=SC2016  # expanded by the root's sh
    "${innet[@]}" "${clean_env[@]}" chroot "$root" /bin/sh -c \
        'umask "$1"; [ -z "$2" ] || ulimit -n "$2" 2>/dev/null || ulimit -n "$(ulimit -H -n)"
         shift 2; exec setpriv "$@"' sh "$umask" "$nofile" \
        "${priv[@]}" -- "${argv[@]}" < /dev/null > "$log" 2>&1 9>&- &
    unit_pid=$!
    bg_pids+=("$unit_pid")
    echo "fresh-root: $unit: setpriv ${priv[*]} -- ${argv[*]} (umask $umask${nofile:+, nofile $nofile})"
}

debs() {
    local dir log=$fresh/debs.log debs=() d f r s code body relay signal here
    if [ -n "${QR_FRESH_DEBS:-}" ]; then
        dir=$QR_FRESH_DEBS
    else
        dir=${QR_DEB_BUILD_DIR:-build-deb}
        build_debs "$dir"
    fi
    mapfile -t debs < <(find_debs "$dir") || true
    [ ${#debs[@]} -eq 3 ] || die "no quietroom-relay, quietroom-signal and quietroomctl .debs in $dir"
    new_root debs
    mkdir -p "$root/root/debs"
    cp "${debs[@]}" "$root/root/debs/"
    echo "fresh-root: apt-get install $(cd "$root/root/debs" && echo ./*.deb) in $root (log: $log)"
    # What an operator types; apt fetches the Depends from the mirror.
    if ! timeout 900 "${clean_env[@]}" DEBIAN_FRONTEND=noninteractive chroot "$root" /bin/sh -c \
        'cd /root/debs && apt-get update -q && apt-get install -y -q ./*.deb' \
        < /dev/null > "$log" 2>&1 9>&-; then
        tail -40 "$log" >&2; die "apt-get install of the packages failed (log: $log)"
    fi

    # Secrets as the headers of relay.conf and signal.ini say (root:quietroom,
    # 0640), the EHR key pair and a self-signed certificate standing in for
    # the real ones (the root has no openssl command: made here).
    mkdir -p "$root/etc/quietroom/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
        -keyout "$root/etc/quietroom/tls/privkey.pem" -out "$root/etc/quietroom/tls/fullchain.pem" \
        2>/dev/null
    if ! "${clean_env[@]}" chroot "$root" /bin/bash -euo pipefail -s >> "$log" 2>&1 <<'SETUP'
cd /etc/quietroom
quietroomctl secret --out relay.secret
quietroomctl secret --out audit.key
quietroomctl keygen --type ec --kid ehr --out /root/ehr
install -m 0644 /root/ehr.jwks.json ehr.jwks.json
chgrp quietroom relay.secret audit.key tls/privkey.pem
chmod 0640 relay.secret audit.key tls/privkey.pem
SETUP
    then
        tail -20 "$log" >&2; die "making the secrets in /etc/quietroom failed (log: $log)"
    fi

    # A network namespace with loopback only: the packaged ports as they are,
    # signaling on 0.0.0.0:443, touching nothing of this machine's.
    unshare --net sleep infinity 9>&- &
    netns_pid=$!
    # Until unshare has run, /proc/PID/ns/net is still this machine's.
    here=$(readlink /proc/self/ns/net)
    for _ in $(seq 50); do
        [ "$(readlink "/proc/$netns_pid/ns/net" 2>/dev/null || echo "$here")" = "$here" ] || break
        sleep 0.1
    done
    [ "$(readlink "/proc/$netns_pid/ns/net")" != "$here" ] || die "unshare --net made no namespace"
    innet=(nsenter "--net=/proc/$netns_pid/ns/net")
    "${innet[@]}" ip link set lo up

    start_unit quietroom-relay.service "$fresh/relay.log"; relay=$unit_pid
    start_unit quietroom-signal.service "$fresh/signal.log"; signal=$unit_pid

    daemon_fail() {
        echo "--- relay.log"; tail -20 "$fresh/relay.log"
        echo "--- signal.log"; tail -20 "$fresh/signal.log"
        die "$*"
    } >&2
    get() { # URL [curl options]: the body of a 200 within 20 s
        local url=$1; shift
        for _ in $(seq 100); do
            "${innet[@]}" curl -fsS --max-time 5 "$@" "$url" 2>/dev/null && return 0
            sleep 0.2
        done
        return 1
    }
    body=$(get http://127.0.0.1:9600/healthz) || daemon_fail "relay /healthz (ops 127.0.0.1:9600)"
    [ "$body" = ok ] || daemon_fail "relay /healthz said $body"
    get http://127.0.0.1:9600/readyz >/dev/null || daemon_fail "relay /readyz"
    body=$(get http://127.0.0.1:9601/healthz) || daemon_fail "signal ops /healthz (127.0.0.1:9601)"
    get http://127.0.0.1:9601/readyz >/dev/null || daemon_fail "signal ops /readyz"
    code=$("${innet[@]}" curl -ksS -o /dev/null -w '%{http_code}' --max-time 5 https://127.0.0.1/) ||
        code=none
    [ "$code" = 200 ] || daemon_fail "signal: GET https://127.0.0.1:443/ (the packaged web client) answered $code"
    for _ in $(seq 100); do
        body=$("${innet[@]}" curl -ksS --max-time 5 https://127.0.0.1/healthz 2>/dev/null || true)
        case $body in *'"relays_healthy":1'*|*'"relays_healthy": 1'*) break ;; esac
        sleep 0.2
    done
    case $body in *'"relays_healthy":1'*|*'"relays_healthy": 1'*) ;;
    *) daemon_fail "signal https /healthz never saw relay-1 healthy: $body" ;; esac
    echo "fresh-root: packaged daemons up: relay /healthz ok, /readyz 200;" \
         "signal on 0.0.0.0:443 https / 200, /healthz $body"
    # The kernel path under the unit's capabilities (kernel-forward auto):
    # attached to the namespace's lo where the kernel has TCX (6.6), and the
    # capabilities it needed gone from the relay's effective and permitted
    # sets once attached.
    kline=$(grep -o 'kernel path o[nf][f]*: .*' "$fresh/relay.log" | head -1 || true)
    echo "fresh-root: relay: ${kline:-no kernel path line}"
    if [ "$(printf '%s\n' 6.6 "$(uname -r)" | sort -V | head -1)" = 6.6 ]; then
        case $kline in "kernel path on: "*) ;; *) daemon_fail "the kernel path is not on (kernel $(uname -r))" ;; esac
        for set in CapEff CapPrm; do
            bits=$(awk -v s="$set:" '$1 == s {print $2}' "/proc/$relay/status")
            # CAP_NET_ADMIN is bit 12, CAP_BPF bit 39.
            if (( (16#$bits >> 12) & 1 || (16#$bits >> 39) & 1 )); then
                daemon_fail "relay $set $bits still holds CAP_NET_ADMIN or CAP_BPF after attaching"
            fi
        done
    fi
    # Stop as systemd does (KillSignal=SIGTERM): with no call to drain, both
    # must exit at once and cleanly.
    kill -TERM "$relay" "$signal"
    for _ in $(seq 100); do { alive "$relay" || alive "$signal"; } || break; sleep 0.1; done
    if alive "$relay" || alive "$signal"; then daemon_fail "the daemons did not exit within 10 s of SIGTERM"; fi
    r=0; wait "$relay" || r=$?
    s=0; wait "$signal" || s=$?
    if [ "$r" != 0 ] || [ "$s" != 0 ]; then daemon_fail "exit status after SIGTERM: relay $r, signal $s"; fi
    # The audit logs were written where StateDirectory= put them, by the
    # daemons' users, and verify with the key made above.
    for d in relay signal; do
        f=$root/var/lib/quietroom/$d/audit.jsonl
        [ -s "$f" ] || daemon_fail "no audit log at /var/lib/quietroom/$d/audit.jsonl"
        r=$(chroot "$root" stat -c %U "/var/lib/quietroom/$d/audit.jsonl")
        [ "$r" = "quietroom-$d" ] || daemon_fail "/var/lib/quietroom/$d/audit.jsonl is owned by $r"
        "${clean_env[@]}" chroot "$root" quietroomctl audit verify --key-file /etc/quietroom/audit.key \
            "/var/lib/quietroom/$d/audit.jsonl" >> "$log" 2>&1 || daemon_fail "audit verify $d failed"
    done
    echo "fresh-root: debs ok: both stopped on SIGTERM with status 0; audit logs verify"
    kill -KILL "$netns_pid" 2>/dev/null || true; wait "$netns_pid" 2>/dev/null || true; netns_pid=""
    teardown "$root"
}

# --- run, timed -----------------------------------------------------------------

times=()
timed() { # NAME FUNCTION
    local t=$SECONDS
    "$2"
    times+=("$(printf '%-12s %4ds' "$1" $((SECONDS - t)))")
}
timed "root" base_root
if [ "$what" != debs ]; then timed "quickstart" quickstart; fi
if [ "$what" != quickstart ]; then timed "debs" debs; fi
echo "fresh-root: all passed; seconds per part:"
printf '  %s\n' "${times[@]}"
