#!/bin/bash
# Every listener binds exactly the configured address (issue 10, part 3).
#
# A network namespace joined to this host by a veth pair plays "the rest of
# the network". Both daemons start with every listener on loopback (IPv4,
# then IPv6): from inside the namespace, none of their ports answers through
# the host's veth addresses (v4 and v6), and ss shows no wildcard socket on
# them. Then the same listeners configured on the host's veth address do
# answer from the namespace, which proves the probes can see a listener.
#
#   test_bind_exact.sh RELAY_BIN SIGNAL_BIN CTL_BIN SOURCE_DIR
#
# Needs root (network namespaces), iproute2, curl, openssl, python3. Exits 77
# (ctest: skipped, never passed) when it cannot create a namespace.
set -euo pipefail
relay_bin=$1 signal_bin=$2 ctl=$3 src=$4

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
tag=qrb$$
ns=$tag host_if=${tag}h ns_if=${tag}n
octet=$(( ($$ % 250) + 1 ))
host4=10.213.$octet.1 ns4=10.213.$octet.2
host6=fd51:7e57:$octet::1 ns6=fd51:7e57:$octet::2
work=$(mktemp -d)
pids=()
failures=0

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip link del "$host_if" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if ! ip netns add "$ns" 2>/dev/null; then
    echo "SKIP: cannot create a network namespace here"
    exit 77
fi
ip link add "$host_if" type veth peer name "$ns_if"
ip link set "$ns_if" netns "$ns"
ip addr add "$host4/30" dev "$host_if"
ip -6 addr add "$host6/64" dev "$host_if" nodad
ip link set "$host_if" up
ip -n "$ns" addr add "$ns4/30" dev "$ns_if"
ip -n "$ns" -6 addr add "$ns6/64" dev "$ns_if" nodad
ip -n "$ns" link set "$ns_if" up
ip -n "$ns" link set lo up

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# Keys, a TLS certificate for the host's veth addresses, an operator token.
"$ctl" secret --out "$work/relay.secret" >/dev/null
"$ctl" secret --out "$work/audit.key" >/dev/null
"$ctl" keygen --type ec --out "$work/ehr" --kid t >/dev/null
head -c 24 /dev/urandom | base64 | tr -d '\n/+=' > "$work/ops.token"
chmod 600 "$work/ops.token"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=quietroom-test -addext "subjectAltName=IP:$host4,IP:$host6,IP:127.0.0.1" \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# The bracketed form of an address for ADDR:PORT.
hostport() { case $1 in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac; }
url_host() { case $1 in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }

wait_file() { # FILE: up to 10 s
    for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done
    return 1
}
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# start PHASE ADDR: relay and signaling with every listener on ADDR. Sets
# relay_udp relay_control relay_ops signal_port signal_ops.
start() {
    local phase=$1 addr=$2 d="$work/$1" tls=()
    mkdir -p "$d"
    "$relay_bin" --listen "$(hostport "$addr" 0)" --control "$(hostport "$addr" 0)" \
        --ops-listen "$(hostport "$addr" 0)" --ops-token-file "$work/ops.token" \
        --secret-file "$work/relay.secret" --audit-log "$d/relay-audit.jsonl" \
        --audit-key-file "$work/audit.key" --runtime-dir "$d/run" \
        --ready-file "$d/relay.ready" --workers 1 2>"$d/relay.log" &
    pids+=($!)
    wait_file "$d/relay.ready" || { cat "$d/relay.log"; return 1; }
    relay_udp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"][0].rsplit(":",1)[1])' "$d/relay.ready")
    relay_control=$(json "$d/relay.ready" control); relay_control=${relay_control##*:}
    relay_ops=$(json "$d/relay.ready" ops_port)
    case $addr in 127.0.0.1|::1) ;; *) tls=("tls-cert = $work/tls.crt" "tls-key = $work/tls.key") ;; esac
    {
        echo "[signal]"
        echo "listen = $(hostport "$addr" 0)"
        echo "ops-listen = $(hostport "$addr" 0)"
        echo "ops-token-file = $work/ops.token"
        printf '%s\n' "${tls[@]}"
        echo "origin = https://ehr.example.org"
        echo "static-dir = $src/signaling/web"
        echo "ehr-jwks = $work/ehr.jwks.json"
        echo "issuer = t"
        echo "audience = t"
        echo "relay = r $(hostport "$addr" "$relay_control") $(hostport "$addr" "$relay_udp")"
        echo "relay-secret-file = $work/relay.secret"
        echo "audit-log = $d/signal-audit.jsonl"
        echo "audit-key-file = $work/audit.key"
        echo "runtime-dir = $d/run"
        echo "state-dir = $d/state"
        echo "ready-file = $d/signal.ready"
    } > "$d/signal.ini"
    "$signal_bin" --config "$d/signal.ini" 2>"$d/signal.log" &
    pids+=($!)
    wait_file "$d/signal.ready" || { cat "$d/signal.log"; return 1; }
    signal_port=$(json "$d/signal.ready" port)
    signal_ops=$(json "$d/signal.ready" ops_port)
    echo "$phase: relay udp $relay_udp control $relay_control ops $relay_ops;" \
         "signaling $signal_port ops $signal_ops"
}

stop() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}

# tcp_state TARGET PORT: "open" or "refused" (or "timeout"), seen from the
# namespace.
tcp_state() {
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect((host, port)); print("open")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("timeout" if isinstance(e, socket.timeout) else "error:%s" % e)
PY
}

# udp_state TARGET PORT: "refused" if an ICMP port unreachable comes back,
# else "silent" (a relay drops junk without answering).
udp_state() {
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((host, port))
try:
    for _ in range(3):
        s.send(b"\x00" * 20)
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("silent")
PY
}

# http_code URL [HEADER]: the status code, fetched from the namespace.
http_code() {
    local h=()
    [ $# -gt 1 ] && h=(-H "$2")
    ip netns exec "$ns" curl -sk -m 3 -o /dev/null -w '%{http_code}' "${h[@]}" "$1" || true
}

no_wildcards() { # PHASE PORTS...: ss shows each port on a specific address
    local phase=$1; shift
    # Through a file: with pipefail, grep -q leaving early could make ss or
    # awk die of SIGPIPE and hide a match.
    ss -Hltnu | awk '{print $5}' > "$work/ss.txt"
    for p in "$@"; do
        if grep -Eq "^(\*|0\.0\.0\.0|\[::\]):$p\$" "$work/ss.txt"; then
            fail "$phase: port $p is bound to a wildcard address"; ss -Hltnu | grep ":$p\b"
        fi
    done
}

# --- loopback-only listeners are unreachable from the network ----------------
for lo in 127.0.0.1 ::1; do
    start "lo-$lo" "$lo"
    no_wildcards "lo-$lo" "$relay_udp" "$relay_control" "$relay_ops" "$signal_port" "$signal_ops"
    for target in "$host4" "$host6"; do
        for port in "$relay_control" "$relay_ops" "$signal_port" "$signal_ops"; do
            state=$(tcp_state "$target" "$port")
            [ "$state" = refused ] && ok "listen on $lo: tcp $target port $port refused" ||
                fail "listen on $lo: tcp $target port $port is $state"
        done
        state=$(udp_state "$target" "$relay_udp")
        [ "$state" = refused ] && ok "listen on $lo: udp $target port $relay_udp refused" ||
            fail "listen on $lo: udp $target port $relay_udp is $state"
        code=$(http_code "http://$(url_host "$target"):$signal_port/")
        [ "$code" = 000 ] || fail "listen on $lo: the page answered $code through $target"
        code=$(http_code "http://$(url_host "$target"):$signal_ops/metrics")
        [ "$code" = 000 ] || fail "listen on $lo: /metrics answered $code through $target"
    done
    # The same ports do answer on loopback, on this host.
    code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$(url_host "$lo"):$signal_port/healthz")
    [ "$code" = 200 ] && ok "listen on $lo: /healthz answers on loopback" ||
        fail "listen on $lo: /healthz on loopback gave $code"
    stop
done

# --- the same listeners on the veth address do answer -----------------------
auth="Authorization: Bearer $(cat "$work/ops.token")"
for addr in "$host4" "$host6"; do
    start "veth-$addr" "$addr"
    no_wildcards "veth-$addr" "$relay_udp" "$relay_control" "$relay_ops" "$signal_port" "$signal_ops"
    h=$(url_host "$addr")
    for port in "$relay_control" "$relay_ops" "$signal_port" "$signal_ops"; do
        state=$(tcp_state "$addr" "$port")
        [ "$state" = open ] && ok "listen on $addr: tcp port $port open" ||
            fail "listen on $addr: tcp port $port is $state"
    done
    state=$(udp_state "$addr" "$relay_udp")
    [ "$state" = silent ] && ok "listen on $addr: udp port $relay_udp reached the relay" ||
        fail "listen on $addr: udp port $relay_udp is $state"
    code=$(http_code "https://$h:$signal_port/")
    [ "$code" = 200 ] && ok "listen on $addr: the page answers" || fail "listen on $addr: page $code"
    code=$(http_code "https://$h:$signal_port/healthz")
    [ "$code" = 200 ] || fail "listen on $addr: /healthz $code"
    code=$(http_code "http://$h:$signal_ops/metrics")
    [ "$code" = 401 ] && ok "listen on $addr: signaling /metrics wants the token" ||
        fail "listen on $addr: signaling /metrics without a token gave $code"
    code=$(http_code "http://$h:$signal_ops/metrics" "$auth")
    [ "$code" = 200 ] || fail "listen on $addr: signaling /metrics with the token gave $code"
    code=$(http_code "http://$h:$relay_ops/metrics" "$auth")
    [ "$code" = 200 ] && ok "listen on $addr: relay /metrics answers" ||
        fail "listen on $addr: relay /metrics gave $code"
    # The loopback addresses are not served by these.
    state=$(python3 - "$signal_port" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print("open")
except ConnectionRefusedError:
    print("refused")
PY
)
    [ "$state" = refused ] || fail "listen on $addr: 127.0.0.1:$signal_port is $state"
    stop
done

echo
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "every listener bound exactly where configured"
