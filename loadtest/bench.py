#!/usr/bin/env python3
"""Side-by-side benchmark of quietroom-relay (see the top README, "Benchmark").

In one run, with the same traffic and the same CPU pinning (server on one core,
generator on the other), alternating the arms round by round:

  direct  generator to itself, no server: the latency floor
  minfwd  quietroom-minfwd, a minimal recvmmsg/sendmmsg forwarder: the limit
  coturn  coturn from Debian, TURN-to-TURN (ChannelData): what a user would pick
  relay   quietroom-relay with its default worker count, on its userspace
          path (--kernel-forward off): pinned to one CPU, it runs one worker
          (the count it chose and why are read from its log and printed with
          the results)
  relay-kernel  the same relay with --kernel-forward on: once a link's legs
          are bound, its BPF program on lo forwards the media (needs root, or
          CAP_BPF and CAP_NET_ADMIN; the arm fails if the relay does not log
          "kernel path on")
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

Forwarding cost, whole machine. On loopback a packet's kernel work runs in
softirq on the CPU that sent it, charged to whichever process was running
there: with the kernel path the relay process does almost nothing and the
forwarding is done in the generator's sends. So beside the server process's
CPU, every load run also samples /proc/stat (busy = user + nice + system + irq
+ softirq, all CPUs, every 100 ms) over the steady part of the traffic (found
from the UDP datagram counter of /proc/net/snmp; by time for relay-tcp), and
an arm's forwarding cost per packet is its machine CPU rate minus the direct
arm's in the same round, over the packets delivered per second. The same is
computed from the bench's own processes alone (generator, server, ksoftirqd:
/proc/PID/stat; on loopback a packet's softirq work is charged to the task it
ran in), which other work on a shared machine does not reach; what they did
not use is reported as "other".

Ceiling (--ceiling-seconds, 0 to skip): once per arm, after the rounds, runs
at 60 to 220 links (90 to 330 kpps offered) until loss passes 0.1 % or the
kernel drops: the highest packet rate one generator on one CPU delivers
cleanly through that arm.

relay-kernel's load runs also set kernel.bpf_stats_enabled (restored after)
and read the program's own run time per run from the kernel (bpftool; left
out without it).

Writes results/bench-<time>/ with runs.jsonl, summary.json, summary.md and
plot.png (gnuplot). Traffic stays on loopback; every run ends by itself.

    loadtest/bench.py [--build build] [--rounds 5] [--seconds 10] [--links 100]
    loadtest/bench.py --arms relay,relay-tcp --links 20 --seconds 4 --session-probe 0
    loadtest/bench.py --arms direct,minfwd,relay,relay-kernel --session-probe 0
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
import urllib.request

ARMS = ["direct", "minfwd", "coturn", "relay", "relay-kernel", "relay-tcp"]
DEFAULT_ARMS = ["direct", "minfwd", "coturn", "relay", "relay-kernel"]
SERVER_CPU = "0"
GENERATOR_CPU = "1"
# The relay's start-up line: "control on tcp ADDR; 1 worker (cpu affinity: 1 CPU), ..."
RELAY_WORKERS = re.compile(r"control on tcp \S+; (\d+) workers? \((.*?)\), \d+ link slots")
# The relay's kernel-path line: "kernel path on: 1 interface(s) (lo)".
RELAY_KERNEL_ON = re.compile(r"kernel path on: (\d+) interface")
SAMPLE_S = 0.1


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
        self.ops = None  # relay: its operator port (/metrics)

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
            # Each arm names its forwarding path: the default (auto) would
            # take the kernel path whenever the bench runs as root.
            self.ops = free_port(socket.SOCK_STREAM)
            kfwd = "on" if self.arm == "relay-kernel" else "off"
            cmd = pin + [f"{self.build}/relay/quietroom-relay", "--listen", f"127.0.0.1:{port}",
                         "--control", f"127.0.0.1:{free_port()}", "--secret-file", secret,
                         "--ops-listen", f"127.0.0.1:{self.ops}",
                         "--kernel-forward", kfwd, "--log-level", "info"] + self.extra
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
        if self.arm == "relay-kernel":
            relay_kernel_on(os.path.join(self.work, f"{self.arm}.log"), log_start)

    def metrics(self):
        """The relay's packet counters from /metrics (relay arms only)."""
        if self.ops is None:
            return {}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops}/metrics", timeout=5) as f:
            text = f.read().decode()
        want = ("quietroom_relay_packets_forwarded_total", "quietroom_relay_kernel_path_packets_total",
                "quietroom_relay_kernel_path_userspace_packets_total", "quietroom_relay_kernel_path_flows")
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in want:
                out[name[len("quietroom_relay_"):]] = float(value)
        return out

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


def relay_kernel_on(path, offset):
    """Waits for the relay's "kernel path on" line; the arm means nothing without it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(path) as f:
            f.seek(offset)
            if RELAY_KERNEL_ON.search(f.read()):
                return
        time.sleep(0.05)
    sys.exit(f"bench: relay-kernel: the relay did not log \"kernel path on\" ({path}); "
             "it needs root (CAP_BPF, CAP_NET_ADMIN) and a build with QR_KERNEL_FORWARD")


def workers_note(runs):
    """One line on how many workers the relay ran, from every relay run."""
    seen = sorted({(r["relay_workers"], r["relay_workers_why"]) for r in runs
                   if "relay_workers" in r})
    if not seen:
        return None
    chosen = "; ".join(f"{n} worker{'' if n == 1 else 's'} ({why})" for n, why in seen)
    return f"relay: default worker count (no --workers; pinned to CPU {SERVER_CPU} → {chosen})."


TICK = os.sysconf("SC_CLK_TCK")


def ksoftirqd_pids():
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().startswith("ksoftirqd/"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def pid_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def machine_sample(pids):
    """(monotonic s, busy ticks of all CPUs, UDP datagrams received, ticks of pids)"""
    t = time.monotonic()
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: idle, iowait and
    # steal (the hypervisor's) are not work done here.
    busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]
    udp = 0
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    if len(rows) == 2:
        udp = int(rows[1][rows[0].index("InDatagrams")])
    return t, busy, udp, sum(pid_ticks(p) for p in pids)


def machine_window(samples, seconds, by_time):
    """The first and last sample of the steady traffic: where UDP datagrams
    arrive at half the usual rate or more, less one interval at each end; or
    (by_time, TCP legs) the run's last `seconds` before the generator's 300 ms
    drain, less 0.3 s at the start and 0.2 s at the end."""
    if len(samples) < 4:
        return None
    if not by_time:
        rates = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:])]
        high = sorted(rates)[int(len(rates) * 0.9)]
        on = [i for i, r in enumerate(rates) if r >= high / 2]
        if on and on[-1] - on[0] >= 3:
            return samples[on[0] + 1], samples[on[-1]]
        return None
    end = samples[-1][0] - 0.3
    inside = [x for x in samples if end - seconds + 0.3 <= x[0] <= end - 0.2]
    return (inside[0], inside[-1]) if len(inside) >= 3 else None


def loadtest(build, work, args, name, server_pid=None, by_time=False):
    """Runs the generator; with server_pid (a load run), also the machine's
    CPU over the steady traffic: machine_cpu (busy CPU-seconds per second),
    own_cpu (of it, the generator's, the server's and ksoftirqd's: on
    loopback the softirq work of a packet is charged to the task it ran in),
    machine_other_cpu (the rest), machine_window_s."""
    out = os.path.join(work, f"{name}.json")
    cmd = ["taskset", "-c", GENERATOR_CPU, f"{build}/loadtest/quietroom-loadtest"] + args + \
          ["--json", out]
    text = os.path.join(work, f"{name}.out")
    with open(text, "w") as o:
        proc = subprocess.Popen(cmd, stdout=o, stderr=subprocess.STDOUT)
    pids = [proc.pid] + ([server_pid] if server_pid else []) + ksoftirqd_pids()
    samples = []
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if server_pid is not None:
            samples.append(machine_sample(pids))
        time.sleep(SAMPLE_S)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    # --ramp exits 1 when not even its first step was clean: a result too.
    ramp_none = proc.returncode == 1 and "--ramp" in args
    if (proc.returncode != 0 and not ramp_none) or not os.path.exists(out):
        with open(text) as f:
            sys.exit(f"bench: loadtest failed: {' '.join(cmd)}\n{f.read()}")
    with open(out) as f:
        r = json.load(f)
    if server_pid is not None and "seconds" in r:
        w = machine_window(samples, r["seconds"], by_time)
        if w is None:
            sys.exit(f"bench: {name}: no steady traffic found in the machine samples")
        a, b = w
        dt = b[0] - a[0]
        r["machine_cpu"] = (b[1] - a[1]) / TICK / dt
        r["own_cpu"] = (b[3] - a[3]) / TICK / dt
        r["machine_other_cpu"] = r["machine_cpu"] - r["own_cpu"]
        r["machine_window_s"] = dt
        r["machine_cpu_us_per_pkt"] = r["machine_cpu"] / max(r["pps_received"], 1) * 1e6
        r["own_cpu_us_per_pkt"] = r["own_cpu"] / max(r["pps_received"], 1) * 1e6
    return r


LATENCY_PPS_PER_LEG = 150


def relay_prog_ids(pid):
    """The BPF programs the relay process holds (from its fds' fdinfo)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return sorted(ids)


def prog_stats(ids):
    """run_time_ns and run_cnt summed over the programs (bpftool -j)."""
    t = n = 0
    if shutil.which("bpftool") is None:
        return t, n
    for i in ids:
        res = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(i)],
                             capture_output=True, text=True)
        if res.returncode == 0:
            j = json.loads(res.stdout)
            t += j.get("run_time_ns", 0)
            n += j.get("run_cnt", 0)
    return t, n


class BpfStats:
    """kernel.bpf_stats_enabled for the length of a run (the kernel then
    times every program run), restored after."""

    path = "/proc/sys/kernel/bpf_stats_enabled"

    def __enter__(self):
        try:
            with open(self.path) as f:
                self.old = f.read().strip()
            with open(self.path, "w") as f:
                f.write("1")
        except OSError:
            self.old = None
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            with open(self.path, "w") as f:
                f.write(self.old)


def run_arm(arm, build, work, opts, tag):
    """The load run and the latency run of one arm, one server process."""
    server = Server(arm, build, work)
    server.start()
    try:
        base = server.args + ["--links", str(opts.links), "--seconds", str(opts.seconds),
                              "--profile", "bench"]
        before = server.metrics()
        progs = relay_prog_ids(server.proc.pid) if arm == "relay-kernel" else []
        with BpfStats():
            p0 = prog_stats(progs)
            load = loadtest(build, work, base, f"{tag}-load",
                            server.proc.pid if server.proc else 0, arm == "relay-tcp")
            p1 = prog_stats(progs)
        after = server.metrics()
        if progs and p1[1] > p0[1]:
            # The program's own time per run; it runs twice per forwarded
            # packet on lo (the hit, then the miss when the redirected packet
            # comes in again), and on every other packet lo carries.
            load["bpf_ns_per_run"] = (p1[0] - p0[0]) / (p1[1] - p0[1])
            load["bpf_runs"] = p1[1] - p0[1]
        lat = loadtest(build, work, base + ["--pps", str(LATENCY_PPS_PER_LEG)], f"{tag}-latency")
    finally:
        server.stop()
    # The relay's own count of the load run: how much went by the kernel path.
    if after.get("packets_forwarded_total"):
        fwd = after["packets_forwarded_total"] - before.get("packets_forwarded_total", 0)
        kp = after.get("kernel_path_packets_total", 0) - before.get("kernel_path_packets_total", 0)
        load["relay_forwarded"] = fwd
        load["relay_kernel_path_share"] = kp / fwd if fwd else 0.0
    load["arm"] = lat["arm"] = arm
    load["phase"], lat["phase"] = "load", "latency"
    if server.workers is not None:
        for r in (load, lat):
            r["relay_workers"], r["relay_workers_why"] = server.workers
    return load, lat


CEILING_LINKS = (60, 100, 140, 180, 220)


def run_ceiling(arm, build, work, opts):
    """The highest packet rate one generator delivers through one arm: runs
    of --ceiling-seconds at 60, 100, 140, 180 and 220 links (750 pps per
    leg: 90 to 330 kpps offered) against one server; the best delivered
    rate of a run with loss <= 0.1 % and no kernel drops. The generator's own
    --ramp is not used: it stops as soon as the generator is busy 90 % of
    the time, which this generator is at every rate on the development VM
    (its pacing loop), so it found no clean step for direct and minfwd."""
    server = Server(arm, build, work)
    server.start()
    steps = []
    try:
        for links in CEILING_LINKS:
            r = loadtest(build, work, server.args + ["--links", str(links), "--seconds",
                                                     str(opts.ceiling_seconds), "--profile",
                                                     "bench"], f"{arm}-ceiling-{links}")
            steps.append({"links": links, "offered": links * 2 * 750,
                          "pps": r["pps_received"], "loss": r["loss"],
                          "kernel_drops": kernel_drops(r),
                          "generator_cpu_percent": generator_cpu_percent(r)})
            if r["loss"] > 0.001 or kernel_drops(r) > 0:
                break
    finally:
        server.stop()
    clean = [x for x in steps if x["loss"] <= 0.001 and x["kernel_drops"] == 0]
    best = max(clean, key=lambda x: x["pps"]) if clean else {"links": 0, "pps": 0,
                                                              "generator_cpu_percent": 0}
    last = steps[-1] if steps else None
    stop = "loss or kernel drops" if last and last not in clean else "the last step"
    return {"arm": arm, "phase": "ceiling", "pps": best["pps"], "links": best["links"],
            "generator_cpu_percent": best["generator_cpu_percent"], "stopped_by": stop,
            "steps": steps}


def fwd_costs(runs):
    """Each load run's forwarding cost: its CPU rate minus the direct arm's
    of the same round, over its packets delivered per second (µs per
    packet); fwd_cost_us from the whole machine, fwd_cost_own_us from the
    bench's own processes (generator, server, ksoftirqd), which other work
    on a shared machine does not reach."""
    for r in runs:
        if r["phase"] != "load" or "machine_cpu" not in r:
            continue
        d = [x for x in runs if x["phase"] == "load" and x["arm"] == "direct"
             and x["round"] == r["round"] and "machine_cpu" in x]
        if d:
            pps = max(r["pps_received"], 1)
            r["fwd_cost_us"] = (r["machine_cpu"] - d[0]["machine_cpu"]) / pps * 1e6
            r["fwd_cost_own_us"] = (r["own_cpu"] - d[0]["own_cpu"]) / pps * 1e6


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


def other_cpu_percent(r):
    return r["machine_other_cpu"] * 100 if "machine_other_cpu" in r else None


PHASE_KEYS = {
    "load": {"server_cpu_s_per_mpkt": None, "pps_received": None, "loss": None,
             "kernel_drops": kernel_drops, "generator_cpu_percent": generator_cpu_percent,
             "machine_cpu_us_per_pkt": None, "fwd_cost_us": None,
             "own_cpu_us_per_pkt": None, "fwd_cost_own_us": None,
             "other_cpu_percent": other_cpu_percent, "relay_kernel_path_share": None,
             "bpf_ns_per_run": None},
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
                vals = [v for v in (fn(r) if fn else r.get(k) for r in mine) if v is not None]
                if vals:
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

    def fwd(arm):
        return load.get(arm, {}).get("fwd_cost_us", {}).get("median")
    def own(arm):
        return load.get(arm, {}).get("fwd_cost_own_us", {}).get("median")
    if fwd("relay-kernel") is not None and fwd("minfwd"):
        r["relay_kernel_fwd_cost_vs_minfwd"] = fwd("relay-kernel") / fwd("minfwd")
    if fwd("relay-kernel") is not None and fwd("relay"):
        r["relay_kernel_fwd_cost_vs_relay"] = fwd("relay-kernel") / fwd("relay")
    if own("relay-kernel") is not None and own("minfwd"):
        r["relay_kernel_fwd_cost_own_vs_minfwd"] = own("relay-kernel") / own("minfwd")
    if own("relay-kernel") is not None and own("relay"):
        r["relay_kernel_fwd_cost_own_vs_relay"] = own("relay-kernel") / own("relay")
    if "relay-kernel" in lat and "relay" in lat:
        r["relay_kernel_p99_vs_relay"] = p("relay-kernel", "latency_p99_us") / \
            max(p("relay", "latency_p99_us"), 1)
        r["relay_kernel_added_p50_us_vs_relay"] = p("relay-kernel", "latency_p50_us") - \
            p("relay", "latency_p50_us")
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


def markdown(s, r, probe, opts, note, tcp_rounds=None, ceilings=None):
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
    if any("machine_cpu_us_per_pkt" in a for a in s["load"].values()):
        lines += ["", "Forwarding cost (the load runs), CPU per packet delivered over the steady "
                  "traffic: machine = busy CPU of both cores (/proc/stat); own = of it, the "
                  "generator's, the server's and ksoftirqd's (on loopback a packet's softirq "
                  "work is charged to the task it ran in); forwarding = minus the direct arm's "
                  "of the same round; other = the machine's other work, in the machine figures "
                  "and not in the own ones.", "",
                  "| arm | machine µs/packet | forwarding, machine | own µs/packet | "
                  "forwarding, own | other CPU | by the kernel path |",
                  "|---|---|---|---|---|---|---|"]
        for arm, a in s["load"].items():
            if "machine_cpu_us_per_pkt" not in a:
                continue

            def fc(k):
                return "–" if arm == "direct" or k not in a else spread(a[k], ".2f")
            kp = f"{a['relay_kernel_path_share']['median'] * 100:.1f} %" \
                if "relay_kernel_path_share" in a else "–"
            lines.append(f"| {arm} | {spread(a['machine_cpu_us_per_pkt'], '.2f')} | "
                         f"{fc('fwd_cost_us')} | {spread(a['own_cpu_us_per_pkt'], '.2f')} | "
                         f"{fc('fwd_cost_own_us')} | "
                         f"{a['other_cpu_percent']['median']:.0f} % of a CPU | {kp} |")
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
        "relay_kernel_fwd_cost_vs_minfwd": "≤ 0.20 (issue 15, whole machine)",
        "relay_kernel_fwd_cost_vs_relay": "",
        "relay_kernel_fwd_cost_own_vs_minfwd": "≤ 0.20 (the same, the bench's own processes)",
        "relay_kernel_fwd_cost_own_vs_relay": "",
        "relay_kernel_p99_vs_relay": "≤ 1.00 (issue 15: p99 no worse)",
        "relay_kernel_added_p50_us_vs_relay": "",
    }
    for k, v in r.items():
        lines.append(f"| {k} | {v:.3f} | {targets.get(k, '')} |")
    if tcp_rounds:
        lines.append(f"| relay_tcp_cpu_per_pkt_vs_udp, round by round | "
                     f"{spread(tcp_rounds, '.3f')}, {tcp_rounds['n']} rounds | ≤ 2.0 |")
    if any("bpf_ns_per_run" in a for a in s["load"].values()):
        for arm, a in s["load"].items():
            if "bpf_ns_per_run" in a:
                lines += ["", f"{arm}: the BPF program's own run time (kernel.bpf_stats_enabled, "
                          f"the load runs): {spread(a['bpf_ns_per_run'], '.0f')} ns per run, two "
                          f"runs per forwarded packet on lo."]
    if ceilings:
        lines += ["", f"Ceiling: once per arm, {opts.ceiling_seconds} s runs at "
                  f"{', '.join(str(n) for n in CEILING_LINKS)} links (750 pps per leg), up to "
                  f"the first with loss over 0.1 % or kernel drops: the most one generator on "
                  f"one CPU delivered cleanly through the arm (delivered below offered: the "
                  f"generator could not send faster).", "",
                  "| arm | highest clean pps | at links (offered pps) | generator CPU there | "
                  "every step: delivered pps, loss |", "|---|---|---|---|---|"]
        for c in ceilings:
            st = "; ".join(f"{x['links']}: {x['pps']:,.0f}, {x['loss'] * 100:.2f} %"
                           for x in c["steps"])
            lines.append(f"| {c['arm']} | {c['pps']:,.0f} | {c['links']} "
                         f"({c['links'] * 1500:,}) | {c['generator_cpu_percent']:.0f} % | {st} |")
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
            # Whole-machine forwarding cost where the run has it (the kernel
            # path's work is not in the relay process); the server's own CPU
            # in summaries of older runs.
            c = s["load"][arm].get("fwd_cost_us", s["load"][arm]["server_cpu_s_per_mpkt"])
            lat = s["latency"].get(arm, {})
            p50 = lat.get("latency_p50_us", {}).get("median", 0)
            p99 = lat.get("latency_p99_us", {}).get("median", 0)
            f.write(f"{i} {arm} {c['median']} {c['min']} {c['max']} {p50} {p99}\n")
    fwd = any("fwd_cost_us" in a for a in s["load"].values())
    script = f"""set terminal pngcairo size 1000,450
set output '{results}/plot.png'
set multiplot layout 1,2 title 'quietroom-relay benchmark (medians, min-max)'
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set ylabel '{"forwarding CPU µs per packet, whole machine minus direct" if fwd else "server CPU µs per packet"} (load run)'
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
    ap.add_argument("--ceiling-seconds", type=int, default=3,
                    help="seconds per run of each arm's ceiling steps; 0: no ceiling runs")
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
                      f"us/pkt, machine {load.get('machine_cpu_us_per_pkt', 0):.2f} us/pkt, own "
                      f"{load.get('own_cpu_us_per_pkt', 0):.2f} us/pkt (other "
                      f"{load.get('machine_other_cpu', 0) * 100:.0f} %), "
                      f"{load['pps_received']:,.0f} pps, loss "
                      f"{load['loss'] * 100:.3f} %, generator "
                      f"{generator_cpu_percent(load):.0f} %; latency: p50 "
                      f"{lat['latency_p50_us']:.0f} us, p99 {lat['latency_p99_us']:.0f} us",
                      flush=True)
        ceilings = []
        if opts.ceiling_seconds > 0:
            for arm in arms:
                c = run_ceiling(arm, opts.build, work, opts)
                ceilings.append(c)
                log.write(json.dumps(c) + "\n")
                log.flush()
                print(f"ceiling {arm:7s}: {c['pps']:,.0f} pps clean at {c['links']} links; "
                      + "; ".join(f"{x['links']}: {x['pps']:,.0f} pps, loss {x['loss'] * 100:.2f} %"
                                  for x in c["steps"]), flush=True)
    probe = sessions_probe(opts.build, work, opts.session_probe) if "relay" in arms and \
        opts.session_probe > 0 else None
    fwd_costs(runs)
    s = summarize(runs)
    r = ratios(s)
    note = workers_note(runs)
    tcp_rounds = paired(runs, "relay-tcp", "relay", "server_cpu_s_per_mpkt")
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"summary": s, "ratios": r, "sessions": probe, "links": opts.links,
                   "seconds": opts.seconds, "rounds": opts.rounds, "relay_workers": note,
                   "relay_tcp_vs_udp_by_round": tcp_rounds, "ceilings": ceilings}, f, indent=2)
    md = markdown(s, r, probe, opts, note, tcp_rounds, ceilings)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    plot(work, s, results)
    print(md)
    print(f"results in {results}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
