#!/bin/bash
# Sets up and runs Quietroom locally on loopback: installs what is missing,
# builds, creates a development relay secret, starts the relay and prints
# relay credentials for a first session. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

dev=.dev
mkdir -p "$dev"
chmod 700 "$dev"
[ -f "$dev/relay.secret" ] || build/ctl/quietroomctl secret --out "$dev/relay.secret"

listen=${QR_LISTEN:-127.0.0.1:3478}
control=${QR_CONTROL:-127.0.0.1:7600}
build/relay/quietroom-relay --listen "$listen" --control "$control" \
    --secret-file "$dev/relay.secret" --audit-log "$dev/relay-audit.jsonl" \
    --ready-file "$dev/relay.ready" &
relay=$!
trap 'kill $relay 2>/dev/null; wait $relay 2>/dev/null' EXIT INT TERM

for _ in $(seq 50); do [ -f "$dev/relay.ready" ] && break; sleep 0.1; done
[ -f "$dev/relay.ready" ] || { echo "relay did not start" >&2; exit 1; }

cat <<TXT

Quietroom relay is running: media on udp $listen, control on tcp $control.
Relay credentials for session "dev-session" (what signaling will hand each browser):
TXT
build/ctl/quietroomctl creds --secret-file "$dev/relay.secret" --session dev-session
cat <<TXT

  relay stats:   build/ctl/quietroomctl stats --secret-file $dev/relay.secret --control $control
  revoke:        build/ctl/quietroomctl revoke --secret-file $dev/relay.secret --control $control --session dev-session
  audit log:     $dev/relay-audit.jsonl

Signaling and the browser client are not built yet (issues 3 and 6). Ctrl-C stops the relay.
TXT
wait $relay
