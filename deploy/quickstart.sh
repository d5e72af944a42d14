#!/bin/bash
# Sets up and runs Quietroom locally on loopback: installs what is missing,
# builds, creates development keys (relay secret, an EHR signing key standing
# in for the EHR), starts the relay and signaling, and prints two join links,
# one for a therapist and one for a patient. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

deploy/deps.sh
# Only what runs here: the tests need packages deps.sh leaves to --test
# (cmocka), and deploy/fresh-root.sh proves this works on a new machine.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQR_BUILD_TESTS=OFF >/dev/null
cmake --build build --target quietroom-relay quietroom-signal quietroomctl

dev=.dev
mkdir -p "$dev"
chmod 700 "$dev"
ctl=build/ctl/quietroomctl
[ -f "$dev/relay.secret" ] || $ctl secret --out "$dev/relay.secret"
[ -f "$dev/ehr.key" ] || $ctl keygen --type ec --out "$dev/ehr" --kid dev
[ -f "$dev/audit.key" ] || $ctl secret --out "$dev/audit.key"

media=${QR_MEDIA:-127.0.0.1:3478}
# ICE-TCP, for networks that block UDP: TCP ports are apart from UDP ones, so
# the same address and port serve; browsers get it below the UDP candidate.
media_tcp=${QR_MEDIA_TCP:-$media}
control=${QR_CONTROL:-127.0.0.1:7600}
port=${QR_PORT:-8443}
base="http://127.0.0.1:$port"

cat > "$dev/signal.ini" <<INI
[signal]
listen = 127.0.0.1:$port
origin = $base
static-dir = $root/signaling/web
ehr-jwks = $root/$dev/ehr.jwks.json
issuer = quietroom-dev
audience = quietroom
relay = dev $control $media tcp:$media_tcp
relay-secret-file = $root/$dev/relay.secret
audit-log = $root/$dev/signal-audit.jsonl
audit-key-file = $root/$dev/audit.key
runtime-dir = $root/$dev/run
state-dir = $root/$dev/state
INI

pids=()
stop() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM

rm -f "$dev/relay.ready"
build/relay/quietroom-relay --listen "$media" --listen-tcp "$media_tcp" --control "$control" \
    --secret-file "$dev/relay.secret" --audit-log "$dev/relay-audit.jsonl" \
    --audit-key-file "$dev/audit.key" --runtime-dir "$dev/run" \
    --ready-file "$dev/relay.ready" &
pids+=($!)
for _ in $(seq 50); do [ -f "$dev/relay.ready" ] && break; sleep 0.1; done
[ -f "$dev/relay.ready" ] || { echo "the relay did not start" >&2; exit 1; }

build/signaling/quietroom-signal --config "$dev/signal.ini" &
pids+=($!)
for _ in $(seq 50); do
    curl -fs "$base/healthz" 2>/dev/null | grep -q '"relays_healthy":1' && break
    sleep 0.2
done

sid="dev-$(date +%s)"
doctor=$($ctl token --key "$dev/ehr.key" --kid dev --iss quietroom-dev --aud quietroom \
    --sid "$sid" --role clinician --sub therapist-1 --name "Dr. Rivera" --ttl 14400)
patient=$($ctl token --key "$dev/ehr.key" --kid dev --iss quietroom-dev --aud quietroom \
    --sid "$sid" --role patient --sub patient-1 --name "Sam Patient" --ttl 14400)

cat <<TXT

Quietroom is running on this machine:
  relay      udp $media, tcp $media_tcp (control tcp $control)
  signaling  $base  (plain HTTP: loopback only)

Therapist:  $base/#token=$doctor

Patient:    $base/#token=$patient

Each link brings its own person back to their place while the visit lives (close the tab and open it again); run again for a new visit.
Audit logs: $dev/relay-audit.jsonl, $dev/signal-audit.jsonl
  (check them: $ctl audit verify --key-file $dev/audit.key $dev/signal-audit.jsonl*)
Ctrl-C stops everything.
TXT
wait
