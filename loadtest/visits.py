#!/usr/bin/env python3
"""Side-by-side benchmark of visits through quietroom-signal and its state store.

In one run, on loopback, with one quietroom-relay for all, alternating the
arms round by round (the order rotates each round):

  sqlite  one signaling replica, visits in SQLite (state-dir, synchronous=FULL)
  nats1   one replica, a 1-server NATS JetStream cluster (cluster-replicas = 1)
  nats3   three replicas, a 3-server NATS cluster (cluster-replicas = 3);
          clinicians connect to replica 1 (which then owns the visit),
          patients to replica 2 (their messages are forwarded to the owner)

Every arm's servers start fresh each round (empty state-dir / JetStream store)
and are stopped after it. Two quietroom-visitbench runs per arm and round:
  setup  --visits V at --concurrency C, no pings: visits/s and setup times
         (clinician connect -> answer received), server CPU per visit
  rtt    --rtt-visits at concurrency 1, --pings P per side: ping -> pong round
         trip on the clinician's connection (on the owner) and the patient's
         (forwarded to the owner in nats3), without other load
Reports medians (min-max over rounds). Writes results/visits-<time>/ with
runs.jsonl, summary.json and summary.md. Every process it starts is stopped
at the end, also on failure.

    loadtest/visits.py [--build build] [--rounds 3] [--visits 100] [--concurrency 4] [--arms A,B]
                       [--rtt-visits 10] [--pings 50] [--keep]
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ARMS = ["sqlite", "nats1", "nats3"]
NATS_SERVER = os.environ.get("QR_NATS_SERVER", "/usr/sbin/nats-server")
ORIGIN = "https://ehr.example.org"
ISSUER = "https://ehr.example.org/issuer"
AUDIENCE = "quietroom-bench"
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # A killed benchmark must not leave servers behind (PR_SET_PDEATHSIG).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def cpu_s(pid):
    """User + system CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def http_ok(port, path, want=None):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            body = r.read().decode(errors="replace")
            return r.status == 200 and (want is None or want in body)
    except (OSError, ValueError):
        return False


class Procs:
    """Every process this run started, stopped in reverse order."""

    def __init__(self):
        self.live = []  # (name, Popen)

    def start(self, name, cmd, log):
        with open(log, "a") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=f, stdin=subprocess.DEVNULL,
                                 preexec_fn=_die_with_parent)
        self.live.append((name, p))
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            # Signaling drains on the first SIGTERM and stops on a second.
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.live = [(n, q) for (n, q) in self.live if q is not p]

    def stop_all(self):
        for _, p in reversed(list(self.live)):
            self.stop(p)


def wait_for(what, cond, proc, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


class Common:
    """Keys and the one relay, shared by every arm."""

    def __init__(self, build, work, procs):
        self.build, self.work, self.procs = build, work, procs
        ctl = f"{build}/ctl/quietroomctl"
        self.secret = f"{work}/relay.secret"
        self.audit_key = f"{work}/audit.key"
        for path in (self.secret, self.audit_key):
            subprocess.run([ctl, "secret", "--out", path], check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run([ctl, "keygen", "--type", "ec", "--out", f"{work}/ehr", "--kid", "ehr-1"],
                       check=True, stdout=subprocess.DEVNULL)
        self.ehr_key, self.jwks = f"{work}/ehr.key", f"{work}/ehr.jwks.json"
        for path in (self.ehr_key, self.jwks):
            if not os.path.exists(path):
                raise RuntimeError(f"keygen made no {path}")

    def start_relay(self):
        d = f"{self.work}/relay"
        os.makedirs(f"{d}/run", exist_ok=True)
        ready = f"{d}/ready.json"
        self.media = f"127.0.0.1:{free_port_udp()}"
        cmd = [f"{self.build}/relay/quietroom-relay", "--listen", self.media,
               "--control", "127.0.0.1:0", "--secret-file", self.secret,
               "--audit-log", f"{d}/audit.jsonl", "--audit-key-file", self.audit_key,
               "--runtime-dir", f"{d}/run", "--ready-file", ready, "--workers", "1",
               "--log-level", "info"]
        self.relay = self.procs.start("relay", cmd, f"{d}/relay.log")
        wait_for("relay", lambda: os.path.exists(ready) and os.path.getsize(ready) > 0,
                 self.relay)
        time.sleep(0.1)
        with open(ready) as f:
            doc = json.load(f)
        self.control = doc["control"]
        self.media = doc["listen"][0]


def free_port_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nats:
    """n nats-server processes with JetStream, clustered when n > 1."""

    def __init__(self, procs, d, n):
        self.procs, self.dir, self.n = procs, d, n
        self.port = [free_port() for _ in range(n)]
        self.route = [free_port() for _ in range(n)]
        self.mon = [free_port() for _ in range(n)]
        self.p = []

    def urls(self):
        return [f"nats://127.0.0.1:{p}" for p in self.port]

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        for i in range(self.n):
            conf = f"{self.dir}/n{i}.conf"
            with open(conf, "w") as f:
                f.write(f'server_name: n{i}\nlisten: "127.0.0.1:{self.port[i]}"\n'
                        f'http: "127.0.0.1:{self.mon[i]}"\n'
                        f'jetstream {{ store_dir: "{self.dir}/n{i}" }}\n')
                if self.n > 1:
                    routes = "".join(f'    "nats-route://127.0.0.1:{self.route[j]}"\n'
                                     for j in range(self.n) if j != i)
                    f.write(f'cluster {{\n  name: qrbench\n  listen: "127.0.0.1:{self.route[i]}"\n'
                            f'  routes: [\n{routes}  ]\n}}\n')
            self.p.append(self.procs.start(f"nats{i}", [NATS_SERVER, "-c", conf],
                                           f"{self.dir}/n{i}.log"))
        for i in range(self.n):
            wait_for(f"nats-server n{i}", lambda i=i: http_ok(self.mon[i], "/healthz"), self.p[i])

    def stop(self):
        for p in self.p:
            self.procs.stop(p)
        self.p = []


class Replica:
    def __init__(self, common, d, extra):
        self.c, self.dir, self.extra = common, d, extra
        self.p, self.port, self.ops_port = None, None, None

    def store_writes(self):
        """quietroom_signal_store_writes_total from /metrics, or None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics",
                                        timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("quietroom_signal_store_writes_total"):
                        return float(line.split()[-1])
        except (OSError, ValueError):
            pass
        return None

    def start(self):
        d = self.dir
        os.makedirs(f"{d}/run", exist_ok=True)
        os.makedirs(f"{d}/state", exist_ok=True)
        os.chmod(f"{d}/state", 0o700)  # it holds visit records
        conf = f"{d}/signal.ini"
        with open(conf, "w") as f:
            f.write("[signal]\nlisten = 127.0.0.1:0\n"
                    f"origin = {ORIGIN}\nstatic-dir = {SRC}/signaling/web\n"
                    f"ehr-jwks = {self.c.jwks}\nissuer = {ISSUER}\naudience = {AUDIENCE}\n"
                    f"relay = r1 {self.c.control} {self.c.media}\n"
                    f"relay-secret-file = {self.c.secret}\n"
                    f"audit-log = {d}/audit.jsonl\naudit-key-file = {self.c.audit_key}\n"
                    f"ready-file = {d}/ready.json\nruntime-dir = {d}/run\n"
                    f"state-dir = {d}/state\nlog-level = info\nops-listen = 127.0.0.1:0\n"
                    # The benchmark's pings would exceed the default 20/s.
                    "rate-limit = 1000\n")
            for line in self.extra:
                f.write(line + "\n")
        self.p = self.c.procs.start(os.path.basename(d),
                                    [f"{self.c.build}/signaling/quietroom-signal", "--config", conf],
                                    f"{d}/signal.log")

        def ready():
            try:
                with open(f"{d}/ready.json") as f:
                    doc = json.load(f)
                self.port, self.ops_port = doc["port"], doc.get("ops_port")
            except (OSError, ValueError, KeyError):
                return False
            return http_ok(self.port, "/healthz", '"relays_healthy":1')

        wait_for(f"signaling {d}", ready, self.p)

    def stop(self):
        if self.p is not None:
            self.c.procs.stop(self.p)
            self.p = None


class Arm:
    def __init__(self, name, common, d):
        self.name, self.c, self.dir = name, common, d
        self.nats, self.reps = None, []

    def start(self):
        os.makedirs(self.dir)
        if self.name == "sqlite":
            self.reps = [Replica(self.c, f"{self.dir}/sig1", [])]
        else:
            n = 1 if self.name == "nats1" else 3
            self.nats = Nats(self.c.procs, f"{self.dir}/nats", n)
            self.nats.start()
            lines = [f"cluster = {u}" for u in self.nats.urls()] + [f"cluster-replicas = {n}"]
            self.reps = [Replica(self.c, f"{self.dir}/sig{i + 1}",
                                 lines + [f"node-id = bench-{i + 1}"]) for i in range(n)]
        for r in self.reps:
            r.start()

    def ports(self):
        doc = self.reps[0].port
        pat = self.reps[1].port if len(self.reps) > 1 else doc
        return doc, pat

    def pids(self):
        sig = [r.p.pid for r in self.reps if r.p is not None]
        nats = [p.pid for p in self.nats.p] if self.nats is not None else []
        return sig, nats

    def stop(self):
        for r in self.reps:
            r.stop()
        if self.nats is not None:
            self.nats.stop()


def visitbench(common, arm, tag, visits, concurrency, pings, seconds):
    doc, pat = arm.ports()
    cmd = [f"{common.build}/loadtest/quietroom-visitbench", "--clinician-port", str(doc),
           "--patient-port", str(pat), "--key", common.ehr_key, "--kid", "ehr-1",
           "--iss", ISSUER, "--aud", AUDIENCE, "--origin", ORIGIN, "--visits", str(visits),
           "--concurrency", str(concurrency), "--pings", str(pings), "--seconds", str(seconds),
           "--tag", tag]
    sig, nats = arm.pids()
    writes0 = [r.store_writes() for r in arm.reps]
    before = [sum(cpu_s(p) for p in sig), sum(cpu_s(p) for p in nats)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=seconds + 60)
    after = [sum(cpu_s(p) for p in sig), sum(cpu_s(p) for p in nats)]
    try:
        r = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(f"visitbench gave no JSON (exit {out.returncode}): {out.stderr[-500:]}")
    r["signal_cpu_s"] = after[0] - before[0]
    r["nats_cpu_s"] = after[1] - before[1]
    writes1 = [r_.store_writes() for r_ in arm.reps]
    if None not in writes0 + writes1:
        r["store_writes"] = sum(writes1) - sum(writes0)
    return r


def summarize(runs):
    """Per arm: median, min, max of each metric over rounds."""
    metrics = {
        "visits_per_s": lambda r: r["setup"]["visits_per_s"],
        "setup_p50_ms": lambda r: r["setup"]["setup"]["p50_ms"],
        "setup_p99_ms": lambda r: r["setup"]["setup"]["p99_ms"],
        "setup_max_ms": lambda r: r["setup"]["setup"]["max_ms"],
        "signal_cpu_ms_per_visit": lambda r: 1000 * r["setup"]["signal_cpu_s"] / max(1, r["setup"]["completed"]),
        "nats_cpu_ms_per_visit": lambda r: 1000 * r["setup"]["nats_cpu_s"] / max(1, r["setup"]["completed"]),
        "store_writes_per_visit": lambda r: (r["setup"]["store_writes"] / max(1, r["setup"]["completed"])
                                             if "store_writes" in r["setup"] else None),
        "rtt_local_p50_ms": lambda r: r["rtt"]["rtt_clinician"]["p50_ms"],
        "rtt_local_p99_ms": lambda r: r["rtt"]["rtt_clinician"]["p99_ms"],
        "rtt_patient_p50_ms": lambda r: r["rtt"]["rtt_patient"]["p50_ms"],
        "rtt_patient_p99_ms": lambda r: r["rtt"]["rtt_patient"]["p99_ms"],
    }
    out = {}
    for arm in sorted({r["arm"] for r in runs}, key=ARMS.index):
        rs = [r for r in runs if r["arm"] == arm and "error" not in r]
        out[arm] = {"rounds": len(rs),
                    "failed_visits": sum(r["setup"]["attempted"] - r["setup"]["completed"] +
                                         r["rtt"]["attempted"] - r["rtt"]["completed"]
                                         for r in rs),
                    "failed_rounds": len([r for r in runs if r["arm"] == arm and "error" in r])}
        for k, f in metrics.items():
            vals = [f(r) for r in rs]
            vals = [v for v in vals if v is not None and v >= 0]
            if vals:
                out[arm][k] = {"median": statistics.median(vals), "min": min(vals),
                               "max": max(vals)}
    return out


def spread(m, fmt):
    if m is None:
        return "–"
    return f"{fmt.format(m['median'])} ({fmt.format(m['min'])}–{fmt.format(m['max'])})"


def markdown(s, opts, note):
    lines = [
        f"{opts.rounds} rounds, arms alternating (order rotated each round), fresh servers per "
        f"arm and round; one relay; loopback; no CPU pinning ({os.cpu_count()} CPUs, shared). "
        "Medians (min–max over rounds).", "",
        f"Setup run: {opts.visits} visits, {opts.concurrency} at once, no pings. A visit: "
        "clinician connect + auth → welcome, patient connect + auth → welcome (waiting), lobby, "
        "admit → peer ×2, offer → rewritten offer, answer → rewritten answer [setup ends], "
        "end → ended ×2. visits/s counts whole visits (with `end`) over the run's wall time.", "",
        "| arm | visits/s | setup p50 ms | setup p99 ms | setup max ms | signaling CPU ms/visit "
        "| NATS CPU ms/visit | visit writes/visit | failed visits |",
        "|---|---|---|---|---|---|---|---|---|"]
    for arm, a in s.items():
        lines.append(f"| {arm} | {spread(a.get('visits_per_s'), '{:.1f}')} | "
                     f"{spread(a.get('setup_p50_ms'), '{:.1f}')} | "
                     f"{spread(a.get('setup_p99_ms'), '{:.1f}')} | "
                     f"{spread(a.get('setup_max_ms'), '{:.1f}')} | "
                     f"{spread(a.get('signal_cpu_ms_per_visit'), '{:.2f}')} | "
                     f"{spread(a.get('nats_cpu_ms_per_visit'), '{:.2f}')} | "
                     f"{spread(a.get('store_writes_per_visit'), '{:.1f}')} | "
                     f"{a['failed_visits']} |")
    lines += [
        "", f"RTT run: {opts.rtt_visits} visits one at a time, {opts.pings} pings per side per "
        "visit, sequential (`ping` → `pong`, nothing else in flight). The clinician is on the "
        "visit's owner; the patient is on the same replica (sqlite, nats1) or on replica 2, "
        "forwarded to the owner on replica 1 over NATS and back (nats3).", "",
        "| arm | clinician (owner) p50 ms | p99 ms | patient p50 ms | p99 ms | patient path |",
        "|---|---|---|---|---|---|"]
    for arm, a in s.items():
        path = "forwarded (replica 2 → 1 → 2)" if arm == "nats3" else "local"
        lines.append(f"| {arm} | {spread(a.get('rtt_local_p50_ms'), '{:.3f}')} | "
                     f"{spread(a.get('rtt_local_p99_ms'), '{:.3f}')} | "
                     f"{spread(a.get('rtt_patient_p50_ms'), '{:.3f}')} | "
                     f"{spread(a.get('rtt_patient_p99_ms'), '{:.3f}')} | {path} |")
    failed = [f"{arm} ({a['failed_rounds']})" for arm, a in s.items() if a["failed_rounds"]]
    if failed:
        lines += ["", "Rounds that failed to run (servers did not start or visitbench gave no "
                  "result; see runs.jsonl): " + ", ".join(failed) + "."]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--visits", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rtt-visits", type=int, default=10)
    ap.add_argument("--pings", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=120, help="cap per visitbench run")
    ap.add_argument("--results", default="results")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " +
                    ",".join(ARMS))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    arms = [a for a in opts.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        sys.exit(f"visits: --arms takes {','.join(ARMS)}")
    build = os.path.abspath(opts.build)
    for b in ("relay/quietroom-relay", "signaling/quietroom-signal", "ctl/quietroomctl",
              "loadtest/quietroom-visitbench"):
        if not os.access(f"{build}/{b}", os.X_OK):
            sys.exit(f"visits: {build}/{b} missing: build first")
    if not os.access(NATS_SERVER, os.X_OK):
        sys.exit(f"visits: no {NATS_SERVER} (set QR_NATS_SERVER)")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = os.path.join(opts.results, f"visits-{stamp}")
    os.makedirs(results, exist_ok=True)
    work = tempfile.mkdtemp(prefix="qr-visits-")
    procs = Procs()
    runs = []
    # SIGTERM/SIGINT stop the servers too, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("visits: terminated"))
    try:
        common = Common(build, work, procs)
        common.start_relay()
        with open(os.path.join(results, "runs.jsonl"), "w") as log:
            for rnd in range(opts.rounds):
                order = arms[rnd % len(arms):] + arms[:rnd % len(arms)]
                for name in order:
                    arm = Arm(name, common, f"{work}/r{rnd}-{name}")
                    rec = {"round": rnd, "arm": name}
                    t0 = time.monotonic()
                    try:
                        arm.start()
                        rec["setup"] = visitbench(common, arm, f"s{rnd}{name}", opts.visits,
                                                  opts.concurrency, 0, opts.seconds)
                        rec["rtt"] = visitbench(common, arm, f"r{rnd}{name}", opts.rtt_visits, 1,
                                                opts.pings, opts.seconds)
                    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
                        rec["error"] = str(e)
                    finally:
                        arm.stop()
                    rec["elapsed_s"] = time.monotonic() - t0
                    runs.append(rec)
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    if "error" in rec:
                        print(f"round {rnd + 1} {name}: FAILED: {rec['error']}", flush=True)
                    else:
                        st, rt = rec["setup"], rec["rtt"]
                        print(f"round {rnd + 1} {name}: {st['visits_per_s']:.1f} visits/s, "
                              f"setup p50 {st['setup']['p50_ms']:.1f} ms p99 "
                              f"{st['setup']['p99_ms']:.1f} ms, rtt clinician "
                              f"{rt['rtt_clinician']['p50_ms']:.3f} ms patient "
                              f"{rt['rtt_patient']['p50_ms']:.3f} ms, failures "
                              f"{st['failures'] or ''}{rt['failures'] or ''}", flush=True)
    finally:
        procs.stop_all()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")

    s = summarize(runs)
    try:
        load = os.getloadavg()
        note = f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}."
    except OSError:
        note = ""
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"summary": s, "options": vars(opts), "cpus": os.cpu_count(), "note": note},
                  f, indent=2, sort_keys=True)
    md = markdown(s, opts, note)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"results in {results}")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
