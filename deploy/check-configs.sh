#!/bin/bash
# Starts each daemon from its packaged default configuration (deploy/etc/) and
# checks /healthz and /readyz. The only changes made to the files are the ones
# a test on a shared machine needs: /etc/quietroom/ and /var/lib/quietroom/ are
# moved into a temporary directory, and the fixed ports become free ones
# (listen 0.0.0.0:443 becomes 127.0.0.1:PORT: binding 443 needs a capability).
# Secrets, the TLS certificate and the EHR keys named by the files are made
# here the way operations.md tells operators to make them.
#
#   deploy/check-configs.sh BUILD_DIR
#
# Then the same for the Kubernetes ConfigMaps and container args of
# deploy/k8s/ (relay.yaml, signaling.yaml), with the pod's mount paths moved
# into the temporary directory, $(NODE_IP) = 127.0.0.1, free ports, and the
# placeholders an operator replaces (relay lines, EHR keys) filled in.
# signaling.yaml's cluster lines (NATS, nats.yaml) are taken out and the pod
# keeps its state in a state-dir here instead: no NATS cluster is started.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
relay_bin=$build/relay/quietroom-relay
signal_bin=$build/signaling/quietroom-signal
ctl=$build/ctl/quietroomctl
for b in "$relay_bin" "$signal_bin" "$ctl"; do
    [ -x "$b" ] || { echo "check-configs: $b not built" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${QR_KEEP_TEST_DIRS:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() { echo "check-configs: FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }

free_port() { # $1: tcp|udp
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
EOF
}
wait_http() { # URL [curl options]: waits up to 10 s for a 200
    local url=$1; shift
    for _ in $(seq 1 100); do
        if curl -fsS "$@" -o "$tmp/body" "$url" 2>/dev/null; then cat "$tmp/body"; return 0; fi
        sleep 0.1
    done
    return 1
}

mkdir -p "$tmp/etc/tls" "$tmp/var/relay" "$tmp/var/signal"
chmod 0700 "$tmp/var/relay" "$tmp/var/signal"
media=$(free_port udp); control=$(free_port tcp); relay_ops=$(free_port tcp)
https=$(free_port tcp); signal_ops=$(free_port tcp); media_tcp=$(free_port tcp)

# Secrets, as relay.conf's header says.
"$ctl" secret --out "$tmp/etc/relay.secret" >/dev/null
"$ctl" secret --out "$tmp/etc/audit.key" >/dev/null
openssl rand -hex 32 > "$tmp/etc/ops.token"; chmod 0600 "$tmp/etc/ops.token"
"$ctl" keygen --type ec --kid ehr --out "$tmp/etc/ehr" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$tmp/etc/tls/privkey.pem" -out "$tmp/etc/tls/fullchain.pem" 2>/dev/null
chmod 0600 "$tmp/etc/tls/privkey.pem"

redirect() { # FILE: the path and port substitutions described above
    sed -e "s#/etc/quietroom/#$tmp/etc/#g" -e "s#/var/lib/quietroom/#$tmp/var/#g" \
        -e "s#127\.0\.0\.1:3478#127.0.0.1:$media#g" -e "s#127\.0\.0\.1:7600#127.0.0.1:$control#g" \
        -e "s#127\.0\.0\.1:9600#127.0.0.1:$relay_ops#g" -e "s#127\.0\.0\.1:9601#127.0.0.1:$signal_ops#g" \
        -e "s#^listen = 0\.0\.0\.0:443\$#listen = 127.0.0.1:$https#" "$1"
}

# --- relay: the packaged file as it is, every key included ------------------
redirect deploy/etc/relay.conf > "$tmp/relay.conf"
grep -q "^ops-listen = 127.0.0.1:$relay_ops\$" "$tmp/relay.conf" || fail "relay.conf: no ops-listen to test"
"$relay_bin" --config "$tmp/relay.conf" > "$tmp/relay.log" 2>&1 &
pids+=($!)
body=$(wait_http "http://127.0.0.1:$relay_ops/healthz") || fail "relay /healthz did not answer 200"
[ "$body" = ok ] || fail "relay /healthz said '$body'"
body=$(wait_http "http://127.0.0.1:$relay_ops/readyz") || fail "relay /readyz did not answer 200"
metrics=$(curl -fsS "http://127.0.0.1:$relay_ops/metrics") || fail "relay /metrics"
grep -q '^quietroom_relay_ready 1' <<<"$metrics" || fail "relay /metrics: quietroom_relay_ready is not 1"
[ -s "$tmp/var/relay/audit.jsonl" ] || fail "relay wrote no audit record"
echo "relay: default relay.conf starts; /healthz ok, /readyz $body, /metrics ready 1"

# Same file with the operator token enabled: /metrics needs it, /healthz not.
sed -i "s@^#ops-token-file = @ops-token-file = @" "$tmp/relay.conf"
kill -INT "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
"$relay_bin" --config "$tmp/relay.conf" > "$tmp/relay.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$relay_ops/healthz" >/dev/null || fail "relay (token) /healthz"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$relay_ops/metrics")
[ "$code" = 401 ] || [ "$code" = 403 ] || fail "relay /metrics without token answered $code"
curl -fsS -H "Authorization: Bearer $(cat "$tmp/etc/ops.token")" \
    "http://127.0.0.1:$relay_ops/metrics" >/dev/null || fail "relay /metrics with token"
echo "relay: with ops-token-file, /metrics answers $code without the token and 200 with it"

# --- signaling ------------------------------------------------------------
redirect deploy/etc/signal.ini > "$tmp/signal.ini"
# static-dir: the packaged web client, or the source tree's before installation.
[ -d /usr/share/quietroom/web ] || sed -i "s#^static-dir = .*#static-dir = $PWD/signaling/web#" "$tmp/signal.ini"
"$signal_bin" --config "$tmp/signal.ini" > "$tmp/signal.log" 2>&1 &
pids+=($!)
body=$(wait_http "https://127.0.0.1:$https/healthz" -k) || fail "signal https /healthz did not answer 200"
echo "signal: default signal.ini starts; https /healthz: $body"
body=$(wait_http "http://127.0.0.1:$signal_ops/healthz") || fail "signal ops /healthz"
wait_http "http://127.0.0.1:$signal_ops/readyz" >/dev/null || fail "signal ops /readyz"
echo "signal: ops /healthz $body, /readyz 200"
# The relay line of the default file must lead to a working control
# connection: the public /healthz counts healthy relays.
for _ in $(seq 1 100); do
    body=$(curl -fsSk "https://127.0.0.1:$https/healthz" || true)
    case $body in *'"relays_healthy": 1'*|*'"relays_healthy":1'*) break ;; esac
    sleep 0.1
done
case $body in *'"relays_healthy": 1'*|*'"relays_healthy":1'*) ;; *) fail "signal never reached relay-1: $body" ;; esac
echo "signal: relay-1 from signal.ini is healthy"

# --- the Kubernetes ConfigMaps and args --------------------------------------
for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
wait 2>/dev/null || true; pids=()
k=$tmp/k8s
mkdir -p "$k/etc/secret" "$k/etc/ops" "$k/etc/audit" "$k/etc/tls" "$k/etc/ehr" "$k/var/relay" "$k/var/signal"
chmod 0700 "$k/var/relay" "$k/var/signal"
cp -p "$tmp/etc/relay.secret" "$k/etc/secret/"; cp -p "$tmp/etc/ops.token" "$k/etc/ops/"
cp -p "$tmp/etc/audit.key" "$k/etc/audit/"; cp -p "$tmp/etc/ehr.jwks.json" "$k/etc/ehr/"
cp -p "$tmp/etc/tls/fullchain.pem" "$k/etc/tls/tls.crt"; cp -p "$tmp/etc/tls/privkey.pem" "$k/etc/tls/tls.key"
media=$(free_port udp); control=$(free_port tcp); relay_ops=$(free_port tcp)
https=$(free_port tcp); signal_ops=$(free_port tcp); media_tcp=$(free_port tcp)
kredirect() { # the pod's paths and ports -> this test's
    sed -e "s#/etc/quietroom/#$k/etc/#g" -e "s#/var/lib/quietroom/#$k/var/#g" \
        -e "s#:3478\b#:$media#g" -e "s#:7600\b#:$control#g" -e "s#:9600\b#:$relay_ops#g" \
        -e "s#:443\b#:$media_tcp#g" -e "s#0\.0\.0\.0:8443#127.0.0.1:$https#" -e "s#0\.0\.0\.0:9601#127.0.0.1:$signal_ops#"
}
# k8s_pod FILE CONFIGMAP KEY CONTAINER: writes the ConfigMap's file where the
# container mounts it and prints the container's command and args, one a line,
# with $(VAR) expanded as the kubelet does (NODE_IP, NODE_NAME, POD_NAME).
k8s_pod() {
    /usr/bin/python3 - "$@" <<'EOF2'
import re, sys, yaml
f, cm, key, cname = sys.argv[1:]
docs = list(yaml.safe_load_all(open(f)))
data = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm)["data"]
w = next(d for d in docs if d["kind"] in ("DaemonSet", "Deployment"))
c = next(c for c in w["spec"]["template"]["spec"]["containers"] if c["name"] == cname)
mount = next(m for m in c["volumeMounts"] if m.get("subPath") == key)["mountPath"]
env = {"NODE_IP": "127.0.0.1", "NODE_NAME": "test-node", "POD_NAME": "test-pod"}
print(mount)
sys.stdout.write(data[key].replace("\n", "\x01") + "\n")
for a in c["command"] + c.get("args", []):
    print(re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a))
EOF2
}
# Relay
mapfile -t lines < <(k8s_pod deploy/k8s/relay.yaml quietroom-relay relay.conf relay)
conf=$(kredirect <<<"${lines[0]}"); tr '\001' '\n' <<<"${lines[1]}" | kredirect > "$conf"
argv=(); for a in "${lines[@]:2}"; do argv+=("$(kredirect <<<"$a")"); done
argv[0]=$relay_bin
"${argv[@]}" > "$tmp/k8s-relay.log" 2>&1 &
pids+=($!)
body=$(wait_http "http://127.0.0.1:$relay_ops/healthz") || fail "k8s relay /healthz did not answer 200"
wait_http "http://127.0.0.1:$relay_ops/readyz" >/dev/null || fail "k8s relay /readyz"
curl -fsS -H "Authorization: Bearer $(cat "$k/etc/ops/ops.token")" "http://127.0.0.1:$relay_ops/metrics" \
    >/dev/null || fail "k8s relay /metrics with the token"
grep -q "media on tcp 127.0.0.1:$media_tcp" "$tmp/k8s-relay.log" || fail "k8s relay: no ICE-TCP listener"
echo "k8s relay: ConfigMap + DaemonSet args start; /healthz $body, /readyz 200, /metrics with token, ICE-TCP"
# Signaling: the relay lines and the EHR keys are the operator's to fill in.
# The cluster lines are stripped: with them signaling would connect to the
# NATS servers of nats.yaml (quietroom-nats-N...svc:4222), which do not exist
# here. What remains must start on its own, with state in a state-dir of this
# test (deploy/k8s/validate.py checks the cluster lines and their mounts).
mapfile -t lines < <(k8s_pod deploy/k8s/signaling.yaml quietroom-signal signal.ini signal)
conf=$(kredirect <<<"${lines[0]}")
tr '\001' '\n' <<<"${lines[1]}" | grep -q '^cluster = ' || fail "k8s signal.ini names no cluster"
tr '\001' '\n' <<<"${lines[1]}" | kredirect | awk -v r="relay = relay-1 127.0.0.1:$control 127.0.0.1:$media" \
    '/^relay = /{ if (!done) print r; done=1; next } /^cluster(-[a-z-]+)? = /{ next } {print}' > "$conf"
echo "state-dir = $k/var/signal/test-pod.state" >> "$conf"
! grep -q '^cluster' "$conf" || fail "k8s signal.ini: cluster lines left in $conf"
[ -d /usr/share/quietroom/web ] || sed -i "s#^static-dir = .*#static-dir = $PWD/signaling/web#" "$conf"
argv=(); for a in "${lines[@]:2}"; do argv+=("$(kredirect <<<"$a")"); done
argv[0]=$signal_bin
"${argv[@]}" > "$tmp/k8s-signal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    body=$(curl -fsSk "https://127.0.0.1:$https/healthz" || true)
    case $body in *'"relays_healthy": 1'*|*'"relays_healthy":1'*) break ;; esac
    sleep 0.1
done
case $body in *'"relays_healthy": 1'*|*'"relays_healthy":1'*) ;; *) fail "k8s signal: $body" ;; esac
[ -s "$k/var/signal/test-pod.jsonl" ] || fail "k8s signal wrote no audit log at --audit-log"
echo "k8s signal: ConfigMap (cluster lines stripped, local state-dir) + Deployment args start; https /healthz $body"
echo "check-configs: ok"
