#!/usr/bin/env python3
"""Side-by-side benchmark of quietroom-relay (see the top README, "Benchmark").

In one run, with the same traffic and the same CPU pinning (server on one core,
generator on the other), alternating the arms round by round:

  direct  generator to itself, no server: the latency floor
  minfwd  quietroom-minfwd, a minimal recvmmsg/sendmmsg forwarder: the limit
  coturn  coturn from Debian, TURN-to-TURN (ChannelData): what a user would pick
  relay   quietroom-relay with one worker

Reports medians and spread, the ratios the targets are stated in, memory and
file descriptors per session, and session setups per server CPU-second.
Writes results/bench-<time>/ with runs.jsonl, summary.json, summary.md and
plot.png (gnuplot). Traffic stays on loopback; every run ends by itself.

    loadtest/bench.py [--build build] [--rounds 5] [--seconds 10] [--links 100]
"""

import argparse
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

ARMS = ["direct", "minfwd", "coturn", "relay"]
SERVER_CPU = "0"
GENERATOR_CPU = "1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
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
            cmd = pin + [f"{self.build}/relay/quietroom-relay", "--listen", f"127.0.0.1:{port}",
                         "--control", f"127.0.0.1:{free_port()}", "--secret-file", secret,
                         "--workers", "1", "--log-level", "warn"] + self.extra
            self.args = ["--mode", "relay", "--server", f"127.0.0.1:{port}",
                         "--secret-file", secret]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        time.sleep(0.8 if self.arm == "coturn" else 0.3)
        if self.proc.poll() is not None:
            sys.exit(f"bench: {self.arm} did not start (see {self.work}/{self.arm}.log)")
        self.args += ["--server-pid", str(self.proc.pid)]

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def loadtest(build, work, args, name):
    out = os.path.join(work, f"{name}.json")
    cmd = ["taskset", "-c", GENERATOR_CPU, f"{build}/loadtest/quietroom-loadtest"] + args + \
          ["--json", out]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not os.path.exists(out):
        sys.exit(f"bench: loadtest failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    with open(out) as f:
        return json.load(f)


def run_arm(arm, build, work, opts, tag):
    server = Server(arm, build, work)
    server.start()
    try:
        r = loadtest(build, work, server.args + ["--links", str(opts.links), "--seconds",
                                                 str(opts.seconds), "--profile", "bench"], tag)
    finally:
        server.stop()
    r["arm"] = arm
    return r


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


def summarize(runs):
    keys = ["server_cpu_s_per_mpkt", "pps_received", "loss", "latency_p50_us",
            "latency_p99_us", "latency_p999_us", "generator_cpu_s", "kernel_rcvbuf_errors"]
    out = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        if not mine:
            continue
        out[arm] = {}
        for k in keys:
            vals = [r[k] for r in mine]
            out[arm][k] = {"median": statistics.median(vals), "min": min(vals),
                           "max": max(vals), "n": len(vals)}
    return out


def ratios(s):
    def med(arm, k):
        return s[arm][k]["median"]
    r = {}
    if "relay" in s and "minfwd" in s:
        r["relay_cpu_per_pkt_vs_minfwd"] = med("relay", "server_cpu_s_per_mpkt") / \
            med("minfwd", "server_cpu_s_per_mpkt")
        r["relay_added_p50_us_vs_minfwd"] = med("relay", "latency_p50_us") - \
            med("minfwd", "latency_p50_us")
        r["relay_p99_vs_minfwd"] = med("relay", "latency_p99_us") / \
            max(med("minfwd", "latency_p99_us"), 1)
        r["relay_throughput_vs_minfwd"] = 1.0 / r["relay_cpu_per_pkt_vs_minfwd"]
    if "relay" in s and "coturn" in s:
        r["relay_packets_per_cpu_s_vs_coturn"] = med("coturn", "server_cpu_s_per_mpkt") / \
            med("relay", "server_cpu_s_per_mpkt")
    if "minfwd" in s and "coturn" in s:
        r["limit_vs_coturn"] = med("coturn", "server_cpu_s_per_mpkt") / \
            med("minfwd", "server_cpu_s_per_mpkt")
    if "relay" in s and "direct" in s:
        r["relay_added_p50_us_vs_direct"] = med("relay", "latency_p50_us") - \
            med("direct", "latency_p50_us")
    return r


def markdown(s, r, probe, opts):
    lines = [f"{opts.links} links, 1,200-byte packets at 750 pps per leg "
             f"({opts.links * 2 * 750:,} pps offered), {opts.seconds} s per run, "
             f"{opts.rounds} rounds; server on CPU {SERVER_CPU}, generator on CPU "
             f"{GENERATOR_CPU}; medians (min–max).", "",
             "| arm | server CPU µs/packet | pps delivered | loss | p50 µs | p99 µs | p99.9 µs |",
             "|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        if arm not in s:
            continue
        a = s[arm]
        cpu = a["server_cpu_s_per_mpkt"]
        cpu_text = "–" if arm == "direct" else \
            f"{cpu['median']:.2f} ({cpu['min']:.2f}–{cpu['max']:.2f})"
        lines.append(f"| {arm} | {cpu_text} | {a['pps_received']['median']:,.0f} | "
                     f"{a['loss']['median'] * 100:.3f} % | {a['latency_p50_us']['median']:.0f} | "
                     f"{a['latency_p99_us']['median']:.0f} | "
                     f"{a['latency_p999_us']['median']:.0f} |")
    lines += ["", "| ratio | value | target |", "|---|---|---|"]
    targets = {
        "relay_cpu_per_pkt_vs_minfwd": "≤ 1.11",
        "relay_throughput_vs_minfwd": "≥ 0.90",
        "relay_packets_per_cpu_s_vs_coturn": "≥ 1.9",
        "limit_vs_coturn": "≈ 2.1 (measured by the issue)",
        "relay_added_p50_us_vs_minfwd": "≤ 5 µs",
        "relay_p99_vs_minfwd": "≤ 1.20",
        "relay_added_p50_us_vs_direct": "",
    }
    for k, v in r.items():
        lines.append(f"| {k} | {v:.3f} | {targets.get(k, '')} |")
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
        for i, arm in enumerate(a for a in ARMS if a in s):
            c = s[arm]["server_cpu_s_per_mpkt"]
            f.write(f"{i} {arm} {c['median']} {c['min']} {c['max']} "
                    f"{s[arm]['latency_p50_us']['median']} {s[arm]['latency_p99_us']['median']}\n")
    script = f"""set terminal pngcairo size 1000,450
set output '{results}/plot.png'
set multiplot layout 1,2 title 'quietroom-relay benchmark (medians, min-max)'
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set ylabel 'server CPU microseconds per packet'
set xtics rotate by 0
plot '{data}' using 1:3:4:5:xtic(2) with boxerrorbars notitle
set ylabel 'latency, microseconds'
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
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--session-probe", type=int, default=10000)
    ap.add_argument("--results", default="results")
    opts = ap.parse_args()
    arms = opts.arms.split(",")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = os.path.join(opts.results, f"bench-{stamp}")
    os.makedirs(results, exist_ok=True)
    work = tempfile.mkdtemp(prefix="qr-bench-")
    runs = []
    with open(os.path.join(results, "runs.jsonl"), "w") as log:
        for rnd in range(opts.rounds):
            order = arms[rnd % len(arms):] + arms[:rnd % len(arms)]
            for arm in order:
                r = run_arm(arm, opts.build, work, opts, f"{arm}-{rnd}")
                r["round"] = rnd
                runs.append(r)
                log.write(json.dumps(r) + "\n")
                log.flush()
                print(f"round {rnd} {arm:7s} cpu {r['server_cpu_s_per_mpkt']:.2f} us/pkt, "
                      f"{r['pps_received']:,.0f} pps, loss {r['loss'] * 100:.3f} %, "
                      f"p50 {r['latency_p50_us']:.0f} us, p99 {r['latency_p99_us']:.0f} us",
                      flush=True)
    probe = sessions_probe(opts.build, work, opts.session_probe) if "relay" in arms and \
        opts.session_probe > 0 else None
    s = summarize(runs)
    r = ratios(s)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"summary": s, "ratios": r, "sessions": probe, "links": opts.links,
                   "seconds": opts.seconds, "rounds": opts.rounds}, f, indent=2)
    md = markdown(s, r, probe, opts)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    plot(work, s, results)
    print(md)
    print(f"results in {results}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
