#!/bin/bash
# A second copy started by mistake (issue 10, part 4) exits non-zero before
# doing anything, naming what is held and by whom; the first copy keeps all
# its traffic and its audit chain still verifies.
#
#   test_second_instance.sh RELAY_BIN SIGNAL_BIN CTL_BIN LOADTEST_BIN SOURCE_DIR
#
# Cases, for the relay and then for signaling:
#   1. the same command line again (same runtime-dir): the address lock;
#   2. another runtime-dir, same ports: a trial bind without SO_REUSEPORT
#      (which is how the relay's UDP group could otherwise take it in);
#   3. other ports, same audit log: the audit file's lock; (signaling) same
#      state-dir: the state store's lock;
# then kill -9 of the first copy: a restart is not blocked by what it left.
set -euo pipefail
relay_bin=$1 signal_bin=$2 ctl=$3 loadtest=$4 src=$5

work=$(mktemp -d)
pids=()
failures=0
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

free_port() { # PROTO: a port free right now on 127.0.0.1
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
PY
}
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
records() { grep -c . "$1" 2>/dev/null || echo 0; }

"$ctl" secret --out "$work/relay.secret" >/dev/null
"$ctl" secret --out "$work/audit.key" >/dev/null
"$ctl" keygen --type ec --out "$work/ehr" --kid t >/dev/null
udp=$(free_port udp) control=$(free_port tcp) rops=$(free_port tcp)
web=$(free_port tcp) sops=$(free_port tcp)

relay_args() { # RUNTIME_DIR AUDIT UDP CONTROL OPS
    echo --listen "127.0.0.1:$3" --control "127.0.0.1:$4" --ops-listen "127.0.0.1:$5" \
         --secret-file "$work/relay.secret" --audit-log "$2" --audit-key-file "$work/audit.key" \
         --runtime-dir "$1" --log-level debug
}

# expect_refusal NAME PATTERN CMD...: the command exits non-zero within 5 s
# and its stderr matches PATTERN.
expect_refusal() {
    local name=$1 pattern=$2; shift 2
    local t0=$SECONDS code=0
    timeout 5 "$@" >"$work/second.out" 2>&1 || code=$?
    if [ "$code" -ne 1 ]; then
        # 1 is a start-up failure; 124 a copy that kept running; anything
        # else a crash (139) or a usage error.
        fail "$name: the second copy exited with $code, not 1"
        cat "$work/second.out"
        return
    fi
    if grep -Eq "$pattern" "$work/second.out"; then
        ok "$name: exit $code after $((SECONDS - t0)) s: $(grep -E "$pattern" "$work/second.out" | head -1)"
    else
        fail "$name: no message matching /$pattern/"
        cat "$work/second.out"
    fi
}

# --- the relay ------------------------------------------------------------
# shellcheck disable=SC2046
"$relay_bin" $(relay_args "$work/run" "$work/relay-audit.jsonl" "$udp" "$control" "$rops") \
    --ready-file "$work/relay.ready" 2>"$work/relay.log" &
relay_pid=$!
pids+=($relay_pid)
wait_file "$work/relay.ready" || { cat "$work/relay.log"; exit 1; }
before=$(records "$work/relay-audit.jsonl")

# shellcheck disable=SC2046
expect_refusal "relay, same runtime-dir" "udp 127\.0\.0\.1:$udp is held by pid $relay_pid \(quietroom-relay\)" \
    "$relay_bin" $(relay_args "$work/run" "$work/relay-audit.jsonl" "$udp" "$control" "$rops")
# shellcheck disable=SC2046
expect_refusal "relay, other runtime-dir, same UDP port" "udp 127\.0\.0\.1:$udp: Address already in use" \
    "$relay_bin" $(relay_args "$work/run2" "$work/relay2.jsonl" "$udp" 0 0)
# shellcheck disable=SC2046
expect_refusal "relay, other runtime-dir, same control port" "tcp 127\.0\.0\.1:$control: Address already in use" \
    "$relay_bin" $(relay_args "$work/run2" "$work/relay2.jsonl" 0 "$control" 0)
# shellcheck disable=SC2046
expect_refusal "relay, same audit log" "audit log $work/relay-audit.jsonl is held by pid $relay_pid \(quietroom-relay\)" \
    "$relay_bin" $(relay_args "$work/run2" "$work/relay-audit.jsonl" 0 0 0)
[ ! -e "$work/relay2.jsonl" ] && ok "relay: a refused copy wrote no audit log of its own" ||
    fail "relay: a refused copy created $work/relay2.jsonl"
after=$(records "$work/relay-audit.jsonl")
[ "$before" = "$after" ] && ok "relay: the first copy's audit log is untouched ($after records)" ||
    fail "relay: the audit log went from $before to $after records"

# All the traffic still reaches the first copy.
"$loadtest" --mode relay --server "127.0.0.1:$udp" --secret-file "$work/relay.secret" \
    --links 50 --seconds 3 --profile audio --json "$work/lt.json" >"$work/lt.out" 2>&1 ||
    { fail "loadtest against the first relay failed"; cat "$work/lt.out"; }
loss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["loss"])' "$work/lt.json" 2>/dev/null || echo missing)
[ "$loss" = 0 ] || [ "$loss" = 0.0 ] && ok "relay: 50 links, no loss after the refused copies" ||
    fail "relay: loss $loss after the refused copies"

# --- signaling ------------------------------------------------------------
signal_conf() { # FILE RUNTIME_DIR AUDIT PORT OPS [STATE_DIR]
    cat > "$1" <<INI
[signal]
listen = 127.0.0.1:$4
ops-listen = 127.0.0.1:$5
origin = https://ehr.example.org
static-dir = $src/signaling/web
ehr-jwks = $work/ehr.jwks.json
issuer = t
audience = t
relay = r 127.0.0.1:$control 127.0.0.1:$udp
relay-secret-file = $work/relay.secret
audit-log = $3
audit-key-file = $work/audit.key
runtime-dir = $2
state-dir = ${6:-$work/state}
log-level = debug
INI
}
signal_conf "$work/s1.ini" "$work/run" "$work/signal-audit.jsonl" "$web" "$sops"
"$signal_bin" --config "$work/s1.ini" --ready-file "$work/signal.ready" 2>"$work/signal.log" &
signal_pid=$!
pids+=($signal_pid)
wait_file "$work/signal.ready" || { cat "$work/signal.log"; exit 1; }
for _ in $(seq 50); do grep -q "control connection up" "$work/signal.log" && break; sleep 0.1; done
before=$(records "$work/signal-audit.jsonl")

expect_refusal "signaling, same config" "tcp 127\.0\.0\.1:$web is held by pid $signal_pid \(quietroom-signal\)" \
    "$signal_bin" --config "$work/s1.ini"
signal_conf "$work/s2.ini" "$work/run2" "$work/signal2.jsonl" "$web" 0
expect_refusal "signaling, other runtime-dir, same port" "tcp 127\.0\.0\.1:$web: Address already in use" \
    "$signal_bin" --config "$work/s2.ini"
signal_conf "$work/s4.ini" "$work/run2" "$work/signal4.jsonl" 0 0
expect_refusal "signaling, same state-dir" "the state directory is held by pid $signal_pid \(quietroom-signal\)" \
    "$signal_bin" --config "$work/s4.ini"
signal_conf "$work/s3.ini" "$work/run2" "$work/signal-audit.jsonl" 0 0 "$work/state2"
expect_refusal "signaling, same audit log" "audit log $work/signal-audit.jsonl is held by pid $signal_pid \(quietroom-signal\)" \
    "$signal_bin" --config "$work/s3.ini"
# This copy got furthest (its listeners were bound): it must still not have
# reached the relay.
if grep -q "control connection up" "$work/second.out"; then
    fail "signaling: the copy refused at its audit log connected to the relay"
else
    ok "signaling: the copy refused at its audit log never connected to the relay"
fi
[ ! -e "$work/signal2.jsonl" ] && ok "signaling: a refused copy wrote no audit log of its own" ||
    fail "signaling: a refused copy created $work/signal2.jsonl"
after=$(records "$work/signal-audit.jsonl")
[ "$before" = "$after" ] && ok "signaling: the first copy's audit log is untouched ($after records)" ||
    fail "signaling: the audit log went from $before to $after records"
code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$web/healthz" || true)
[ "$code" = 200 ] && ok "signaling: the first copy still serves" || fail "signaling: /healthz $code"

# --- both chains verify after an orderly stop --------------------------------
kill -TERM "$signal_pid"; sleep 0.2; kill -TERM "$signal_pid" 2>/dev/null || true
wait "$signal_pid" || fail "signaling exited with $?"
kill -TERM "$relay_pid"; sleep 0.2; kill -TERM "$relay_pid" 2>/dev/null || true
wait "$relay_pid" || fail "the relay exited with $?"
pids=()
for log in relay-audit signal-audit; do
    if out=$("$ctl" audit verify --key-file "$work/audit.key" "$work/$log.jsonl" 2>&1); then
        ok "$log: $out"
    else
        fail "$log does not verify: $out"
    fi
done

# --- kill -9 leaves nothing that blocks a restart ---------------------------
# shellcheck disable=SC2046
"$relay_bin" $(relay_args "$work/run" "$work/relay-audit.jsonl" "$udp" "$control" "$rops") \
    --ready-file "$work/relay.ready2" 2>"$work/relay2.log" &
pids+=($!)
wait_file "$work/relay.ready2" || { fail "relay did not restart"; cat "$work/relay2.log"; }
kill -9 "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
# shellcheck disable=SC2046
"$relay_bin" $(relay_args "$work/run" "$work/relay-audit.jsonl" "$udp" "$control" "$rops") \
    --ready-file "$work/relay.ready3" 2>"$work/relay3.log" &
pids+=($!)
if wait_file "$work/relay.ready3"; then
    ok "relay: restarts after kill -9 on the same addresses and audit log"
else
    fail "relay: no restart after kill -9"; cat "$work/relay3.log"
fi
kill -TERM "${pids[-1]}"; sleep 0.2; kill -TERM "${pids[-1]}" 2>/dev/null || true
wait "${pids[-1]}" || true
pids=()
if out=$("$ctl" audit verify --key-file "$work/audit.key" "$work/relay-audit.jsonl" 2>&1); then
    ok "relay-audit after kill -9 and restart: $out"
else
    fail "relay-audit after kill -9 and restart does not verify: $out"
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "a second copy never takes the first one's addresses or audit log"
