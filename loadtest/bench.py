#!/usr/bin/env python3
"""Side-by-side benchmark of quietroom-relay (see the top README, "Benchmark").

In one run, with the same traffic and the same CPU pinning (server on one core,
generator on the other), alternating the arms round by round:

  direct  generator to itself, no server: the latency floor
  minfwd  quietroom-minfwd, a minimal recvmmsg/sendmmsg forwarder: the limit
  coturn  coturn from Debian, TURN-to-TURN (ChannelData): what a user would pick
  relay   quietroom-relay with its default worker count: pinned to one CPU, it
          runs one worker (the count it chose and why are read from its log and
          printed with the results)
  relay-tcp  the same relay with --listen-tcp, every leg on ICE-TCP (a
          connection each, RFC 4571 frames): not in the default arms; ask for
          it with --arms relay,relay-tcp to set TCP's cost per packet beside
          UDP's (docs/bench/tcp.md)

Each arm runs twice per round against the same server: a load run at the
issue's 150 kpps (server CPU per packet, loss, kernel drops) and a latency run
at 30 kpps, where neither the server nor the generator is saturated (a busy
generator adds its own queueing delay, which would swamp the few microseconds
being compared). Reports medians and spread, the ratios the targets are stated
in, memory and file descriptors per session, and session setups per server
CPU-second.
Writes results/bench-<time>/ with runs.jsonl, summary.json, summary.md and
plot.png (gnuplot). Traffic stays on loopback; every run ends by itself.

    loadtest/bench.py [--build build] [--rounds 5] [--seconds 10] [--links 100]
    loadtest/bench.py --arms relay,relay-tcp --links 20 --seconds 4 --session-probe 0
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ARMS = ["direct", "minfwd", "coturn", "relay", "relay-tcp"]
DEFAULT_ARMS = ["direct", "minfwd", "coturn", "relay"]
SERVER_CPU = "0"
GENERATOR_CPU = "1"
# The relay's start-up line: "control on tcp ADDR; 1 worker (cpu affinity: 1 CPU), ..."
RELAY_WORKERS = re.compile(r"control on tcp \S+; (\d+) workers? \((.*?)\), \d+ link slots")


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """One arm's server process, pinned to SERVER_CPU."""

    def __init__(self, arm, build, work, extra=()):
        self.arm, self.build, self.work = arm, build, work
        self.extra = list(extra)
        self.proc = None
        self.args = []
        self.workers = None  # relay: (count, why) from its log

    def start(self):
        port = free_port()
        pin = ["taskset", "-c", SERVER_CPU]
        log = open(os.path.join(self.work, f"{self.arm}.log"), "a")
        if self.arm == "direct":
            self.args = ["--mode", "direct"]
            return
        if self.arm == "minfwd":
            cmd = pin + [f"{self.build}/loadtest/quietroom-minfwd", "--listen", f"127.0.0.1:{port}"]
            self.args = ["--mode", "minfwd", "--server", f"127.0.0.1:{port}"]
        elif self.arm == "coturn":
            cmd = pin + ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
                         "--relay-ip=127.0.0.1", "--min-port=40000", "--max-port=49999",
                         "--lt-cred-mech", "--user=bench:bench-secret", "--realm=quietroom",
                         "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
                         "--simple-log", "--log-file=stdout", "--no-stun",
                         f"--userdb={self.work}/turndb", "--total-quota=0", "--user-quota=0"]
            self.args = ["--mode", "turn", "--server", f"127.0.0.1:{port}",
                         "--turn-user", "bench", "--turn-pass", "bench-secret"]
        else:
            secret = os.path.join(self.work, "relay.secret")
            if not os.path.exists(secret):
                subprocess.run([f"{self.build}/ctl/quietroomctl", "secret", "--out", secret],
                               check=True)
            # No --workers: the relay sizes itself to the CPUs it may use, as
            # a deployment would. At info it logs only at start and stop.
            cmd = pin + [f"{self.build}/relay/quietroom-relay", "--listen", f"127.0.0.1:{port}",
                         "--control", f"127.0.0.1:{free_port()}", "--secret-file", secret,
                         "--log-level", "info"] + self.extra
            self.args = ["--mode", "relay", "--server", f"127.0.0.1:{port}",
                         "--secret-file", secret]
            if self.arm == "relay-tcp":
                # The same relay, UDP address and all; its legs come over TCP.
                tcp = free_port(socket.SOCK_STREAM)
                cmd += ["--listen-tcp", f"127.0.0.1:{tcp}"]
                self.args = ["--mode", "relay", "--transport", "tcp", "--server",
                             f"127.0.0.1:{tcp}", "--secret-file", secret]
        log_start = log.tell()  # earlier runs' lines are above this
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        time.sleep(0.8 if self.arm == "coturn" else 0.3)
        if self.proc.poll() is not None:
            sys.exit(f"bench: {self.arm} did not start (see {self.work}/{self.arm}.log)")
        self.args += ["--server-pid", str(self.proc.pid)]
        if self.arm.startswith("relay"):
            self.workers = relay_workers(os.path.join(self.work, f"{self.arm}.log"), log_start)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def relay_workers(path, offset):
    """The worker count the relay logged at start (after offset), and why."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(path) as f:
            f.seek(offset)
            m = RELAY_WORKERS.search(f.read())
        if m:
            return int(m.group(1)), m.group(2)
        time.sleep(0.05)
    sys.exit(f"bench: the relay logged no worker count in {path}")


def workers_note(runs):
    """One line on how many workers the relay ran, from every relay run."""
    seen = sorted({(r["relay_workers"], r["relay_workers_why"]) for r in runs
                   if "relay_workers" in r})
    if not seen:
        return None
    chosen = "; ".join(f"{n} worker{'' if n == 1 else 's'} ({why})" for n, why in seen)
    return f"relay: default worker count (no --workers; pinned to CPU {SERVER_CPU} → {chosen})."


def loadtest(build, work, args, name):
    out = os.path.join(work, f"{name}.json")
    cmd = ["taskset", "-c", GENERATOR_CPU, f"{build}/loadtest/quietroom-loadtest"] + args + \
          ["--json", out]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not os.path.exists(out):
        sys.exit(f"bench: loadtest failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    with open(out) as f:
        return json.load(f)


LATENCY_PPS_PER_LEG = 150


def run_arm(arm, build, work, opts, tag):
    """The load run and the latency run of one arm, one server process."""
    server = Server(arm, build, work)
    server.start()
    try:
        base = server.args + ["--links", str(opts.links), "--seconds", str(opts.seconds),
                              "--profile", "bench"]
        load = loadtest(build, work, base, f"{tag}-load")
        lat = loadtest(build, work, base + ["--pps", str(LATENCY_PPS_PER_LEG)], f"{tag}-latency")
    finally:
        server.stop()
    load["arm"] = lat["arm"] = arm
    load["phase"], lat["phase"] = "load", "latency"
    if server.workers is not None:
        for r in (load, lat):
            r["relay_workers"], r["relay_workers_why"] = server.workers
    return load, lat


def sessions_probe(build, work, links):
    """Relay memory and fds per session, and setups per server CPU-second.

    Memory per session is what a relay sized for `links` sessions holds when
    they are all up, over a relay sized for 64: every per-session structure,
    the preallocated indexes included."""
    small = Server("relay", build, work, ["--max-links", "64"])
    small.start()
    try:
        time.sleep(0.2)
        rss_small = rss_kb(small.proc.pid)
    finally:
        small.stop()
    server = Server("relay", build, work, ["--max-links", str(links)])
    server.start()
    try:
        time.sleep(0.2)
        base = rss_kb(server.proc.pid)
        # Setup only: media would add nothing to the relay's memory, and
        # libsrtp2 on NSS makes tens of thousands of sessions slowly.
        r = loadtest(build, work, server.args + ["--links", str(links), "--seconds", "0",
                                                 "--threads", "2"], f"sessions-{links}")
        r["rss_before_kb"] = base
        r["rss_small_kb"] = rss_small
    finally:
        server.stop()
    return r


def generator_cpu_percent(r):
    return r["generator_cpu_s"] / r["seconds"] * 100


def kernel_drops(r):
    return r["kernel_rcvbuf_errors"] + r["kernel_in_errors"]


PHASE_KEYS = {
    "load": {"server_cpu_s_per_mpkt": None, "pps_received": None, "loss": None,
             "kernel_drops": kernel_drops, "generator_cpu_percent": generator_cpu_percent},
    "latency": {"latency_p50_us": None, "latency_p99_us": None, "latency_p999_us": None,
                "loss": None, "generator_cpu_percent": generator_cpu_percent},
}


def summarize(runs):
    """{phase: {arm: {key: {median, min, max, n}}}}"""
    out = {}
    for phase, keys in PHASE_KEYS.items():
        out[phase] = {}
        for arm in ARMS:
            mine = [r for r in runs if r["arm"] == arm and r["phase"] == phase]
            if not mine:
                continue
            out[phase][arm] = {}
            for k, fn in keys.items():
                vals = [fn(r) if fn else r[k] for r in mine]
                out[phase][arm][k] = {"median": statistics.median(vals), "min": min(vals),
                                      "max": max(vals), "n": len(vals)}
    return out


def ratios(s):
    load, lat = s["load"], s["latency"]

    def cpu(arm):
        return load[arm]["server_cpu_s_per_mpkt"]["median"]

    def p(arm, k):
        return lat[arm][k]["median"]
    r = {}
    if "relay" in load and "minfwd" in load:
        r["relay_cpu_per_pkt_vs_minfwd"] = cpu("relay") / cpu("minfwd")
        r["relay_throughput_vs_minfwd"] = cpu("minfwd") / cpu("relay")
        r["relay_added_p50_us_vs_minfwd"] = p("relay", "latency_p50_us") - \
            p("minfwd", "latency_p50_us")
        r["relay_p99_vs_minfwd"] = p("relay", "latency_p99_us") / \
            max(p("minfwd", "latency_p99_us"), 1)
    if "relay" in load and "coturn" in load:
        r["relay_packets_per_cpu_s_vs_coturn"] = cpu("coturn") / cpu("relay")
    if "minfwd" in load and "coturn" in load:
        r["limit_vs_coturn"] = cpu("coturn") / cpu("minfwd")
    if "relay" in load and "relay-tcp" in load:
        r["relay_tcp_cpu_per_pkt_vs_udp"] = cpu("relay-tcp") / cpu("relay")
        r["relay_tcp_added_p50_us_vs_udp"] = p("relay-tcp", "latency_p50_us") - \
            p("relay", "latency_p50_us")
    if "relay" in lat and "direct" in lat:
        r["relay_added_p50_us_vs_direct"] = p("relay", "latency_p50_us") - \
            p("direct", "latency_p50_us")
    return r


def paired(runs, arm, base, key):
    """arm's key over base's, round by round (each round runs both back to
    back, so the machine's noise of the moment is in both): median, min,
    max and n of those ratios, or None."""
    def load_run(rnd, name):
        return [r[key] for r in runs
                if r["round"] == rnd and r["arm"] == name and r["phase"] == "load"]
    vals = []
    for rnd in sorted({r["round"] for r in runs}):
        a, b = load_run(rnd, arm), load_run(rnd, base)
        if a and b and b[0] > 0:
            vals.append(a[0] / b[0])
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def spread(v, fmt):
    return f"{v['median']:{fmt}} ({v['min']:{fmt}}–{v['max']:{fmt}})"


def markdown(s, r, probe, opts, note, tcp_rounds=None):
    lines = [f"{opts.links} links, {opts.seconds} s per run, {opts.rounds} rounds, arms "
             f"alternating; server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}; "
             f"medians (min–max).", ""]
    if note:
        lines += [note, ""]
    lines += [f"Load: 1,200-byte SRTP packets at 750 pps per leg ({opts.links * 2 * 750:,} pps "
              f"offered).", "",
              "| arm | server CPU µs/packet | pps delivered | loss | kernel drops | generator CPU |",
              "|---|---|---|---|---|---|"]
    for arm, a in s["load"].items():
        cpu = "–" if arm == "direct" else spread(a["server_cpu_s_per_mpkt"], ".2f")
        lines.append(f"| {arm} | {cpu} | {a['pps_received']['median']:,.0f} | "
                     f"{a['loss']['median'] * 100:.3f} % | {a['kernel_drops']['median']:.0f} | "
                     f"{a['generator_cpu_percent']['median']:.0f} % |")
    lines += ["", f"Latency: the same packets at {LATENCY_PPS_PER_LEG} pps per leg "
              f"({opts.links * 2 * LATENCY_PPS_PER_LEG:,} pps), one-way, generator to "
              f"generator.", "",
              "| arm | p50 µs | p99 µs | p99.9 µs | loss | generator CPU |",
              "|---|---|---|---|---|---|"]
    for arm, a in s["latency"].items():
        lines.append(f"| {arm} | {spread(a['latency_p50_us'], '.0f')} | "
                     f"{spread(a['latency_p99_us'], '.0f')} | "
                     f"{a['latency_p999_us']['median']:.0f} | {a['loss']['median'] * 100:.3f} % | "
                     f"{a['generator_cpu_percent']['median']:.0f} % |")
    lines += ["", "| ratio | value | target |", "|---|---|---|"]
    targets = {
        "relay_cpu_per_pkt_vs_minfwd": "≤ 1.11",
        "relay_throughput_vs_minfwd": "≥ 0.90",
        "relay_packets_per_cpu_s_vs_coturn": "≥ 1.9",
        "limit_vs_coturn": "≈ 2.1 (measured by the issue)",
        "relay_added_p50_us_vs_minfwd": "≤ 5 µs",
        "relay_p99_vs_minfwd": "≤ 1.20",
        "relay_added_p50_us_vs_direct": "",
        "relay_tcp_cpu_per_pkt_vs_udp": "≤ 2.0 (issue 13)",
        "relay_tcp_added_p50_us_vs_udp": "",
    }
    for k, v in r.items():
        lines.append(f"| {k} | {v:.3f} | {targets.get(k, '')} |")
    if tcp_rounds:
        lines.append(f"| relay_tcp_cpu_per_pkt_vs_udp, round by round | "
                     f"{spread(tcp_rounds, '.3f')}, {tcp_rounds['n']} rounds | ≤ 2.0 |")
    if probe:
        per = (probe["server_rss_kb"] - probe["rss_small_kb"]) * 1024 / probe["links"]
        grew = (probe["server_rss_kb"] - probe["rss_before_kb"]) * 1024 / probe["links"]
        lines += ["", f"Sessions: {probe['links']:,} links set up on a relay sized for them: "
                  f"{per:.0f} bytes of relay memory per session, preallocated indexes included "
                  f"({grew:.0f} bytes of growth while they came up; target ≤ 256); "
                  f"{probe['server_fds']} fds in all (no fd per session); "
                  f"{probe['setups_per_server_cpu_s']:,.0f} session setups per server "
                  f"CPU-second (target ≥ 20,000)."]
    return "\n".join(lines) + "\n"


def plot(work, s, results):
    if shutil.which("gnuplot") is None:
        return
    data = os.path.join(work, "plot.dat")
    with open(data, "w") as f:
        for i, arm in enumerate(a for a in ARMS if a in s["load"]):
            c = s["load"][arm]["server_cpu_s_per_mpkt"]
            lat = s["latency"].get(arm, {})
            p50 = lat.get("latency_p50_us", {}).get("median", 0)
            p99 = lat.get("latency_p99_us", {}).get("median", 0)
            f.write(f"{i} {arm} {c['median']} {c['min']} {c['max']} {p50} {p99}\n")
    script = f"""set terminal pngcairo size 1000,450
set output '{results}/plot.png'
set multiplot layout 1,2 title 'quietroom-relay benchmark (medians, min-max)'
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set ylabel 'server CPU microseconds per packet (load run)'
set xtics rotate by 0
set xrange [-0.6:{len(ARMS) - 0.4}]
# x y ylow yhigh xdelta: with four columns gnuplot would read the spread as
# (ydelta, xdelta) and draw the boxes as wide as the error bars.
plot '{data}' using 1:3:4:5:(0.3):xtic(2) with boxerrorbars notitle
set ylabel 'one-way latency, microseconds (latency run)'
plot '{data}' using ($1-0.15):6:(0.3):xtic(2) with boxes title 'p50', \\
     '{data}' using ($1+0.15):7:(0.3) with boxes title 'p99'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--links", type=int, default=100)
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                    help="comma-separated, of " + ", ".join(ARMS))
    ap.add_argument("--session-probe", type=int, default=16384)
    ap.add_argument("--results", default="results")
    ap.add_argument("--replot", metavar="DIR", help="redraw DIR/plot.png from DIR/summary.json")
    opts = ap.parse_args()
    if opts.replot:
        with open(os.path.join(opts.replot, "summary.json")) as f:
            saved = json.load(f)
        work = tempfile.mkdtemp(prefix="qr-bench-")
        plot(work, saved["summary"], opts.replot)
        shutil.rmtree(work, ignore_errors=True)
        return
    arms = opts.arms.split(",")
    if any(a not in ARMS for a in arms):
        ap.error(f"--arms: each of {', '.join(ARMS)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = os.path.join(opts.results, f"bench-{stamp}")
    os.makedirs(results, exist_ok=True)
    work = tempfile.mkdtemp(prefix="qr-bench-")
    runs = []
    with open(os.path.join(results, "runs.jsonl"), "w") as log:
        for rnd in range(opts.rounds):
            order = arms[rnd % len(arms):] + arms[:rnd % len(arms)]
            for arm in order:
                load, lat = run_arm(arm, opts.build, work, opts, f"{arm}-{rnd}")
                for r in (load, lat):
                    r["round"] = rnd
                    runs.append(r)
                    log.write(json.dumps(r) + "\n")
                log.flush()
                print(f"round {rnd} {arm:7s} load: cpu {load['server_cpu_s_per_mpkt']:.2f} "
                      f"us/pkt, {load['pps_received']:,.0f} pps, loss "
                      f"{load['loss'] * 100:.3f} %, generator "
                      f"{generator_cpu_percent(load):.0f} %; latency: p50 "
                      f"{lat['latency_p50_us']:.0f} us, p99 {lat['latency_p99_us']:.0f} us",
                      flush=True)
    probe = sessions_probe(opts.build, work, opts.session_probe) if "relay" in arms and \
        opts.session_probe > 0 else None
    s = summarize(runs)
    r = ratios(s)
    note = workers_note(runs)
    tcp_rounds = paired(runs, "relay-tcp", "relay", "server_cpu_s_per_mpkt")
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"summary": s, "ratios": r, "sessions": probe, "links": opts.links,
                   "seconds": opts.seconds, "rounds": opts.rounds, "relay_workers": note,
                   "relay_tcp_vs_udp_by_round": tcp_rounds}, f, indent=2)
    md = markdown(s, r, probe, opts, note, tcp_rounds)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    plot(work, s, results)
    print(md)
    print(f"results in {results}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
