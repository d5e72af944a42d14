#!/usr/bin/env python3
"""Soak arm of the benchmark: is quietroom-relay flat over a long call day?

One relay (its default worker count, as deployed), one quietroom-loadtest run
of --links links at audio rates (the "audio" profile: one Opus-sized packet
every 20 ms per leg) for --minutes minutes, keeping consent like browsers (a
check per leg every ~5 s). Every 10 s the relay's RSS and open file
descriptors are read from /proc. Reports:

  - loss over the whole run (the load tester's sequence numbers), and how
    many consent checks were answered;
  - RSS: first sample after the warm-up minute, last, max, and the slope of a
    least-squares line through the samples after warm-up (KiB per hour);
  - fds: min and max after warm-up.

"Flat" means: RSS grew by less than 2 % (and 1 MiB) from the end of the
warm-up to the end, and the fd count did not change. Loss must be 0.

Writes results/soak-<time>/samples.csv, summary.json and summary.md. Traffic
stays on loopback; the run ends by itself.

    loadtest/soak.py [--build build] [--minutes 30] [--links 300]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SAMPLE_S = 10
WARMUP_S = 60


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


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_hour(samples):
    """Least-squares slope of (t, rss) in KiB per hour; 0 for < 2 samples."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    if den == 0:
        return 0.0
    return sum((t - mt) * (r - mr) for t, r in samples) / den * 3600


def verdict(rows, lt):
    after = [r for r in rows if r["t"] >= WARMUP_S] or rows
    first, last = after[0]["rss_kb"], after[-1]["rss_kb"]
    growth = last - first
    flat_rss = growth < max(1024, 0.02 * first)
    fd_values = {r["fds"] for r in after}
    return {
        "samples": len(rows),
        "rss_kb_after_warmup": first,
        "rss_kb_last": last,
        "rss_kb_max": max(r["rss_kb"] for r in rows),
        "rss_growth_kb": growth,
        "rss_slope_kb_per_hour": round(slope_per_hour([(r["t"], r["rss_kb"]) for r in after]), 1),
        "fds_min": min(fd_values),
        "fds_max": max(fd_values),
        "rss_flat": flat_rss,
        "fds_flat": len(fd_values) == 1,
        "loss": lt.get("loss"),
        "sent": lt.get("sent"),
        "received": lt.get("received"),
        "consent_checks_sent": lt.get("consent_checks_sent"),
        "consent_checks_answered": lt.get("consent_checks_answered"),
        "setup_failed": lt.get("setup_failed"),
    }


def markdown(v, opts):
    ok = v["rss_flat"] and v["fds_flat"] and v["loss"] == 0
    return "\n".join([
        f"Soak: {opts.links} links at audio rates, {opts.minutes} min, relay sampled every "
        f"{SAMPLE_S} s ({v['samples']} samples; the first {WARMUP_S} s are warm-up).",
        "",
        "| | value |",
        "|---|---|",
        f"| loss | {v['loss'] * 100:.4f} % ({v['received']:,} of {v['sent']:,} packets) |",
        f"| consent checks answered | {v['consent_checks_answered']:,} of {v['consent_checks_sent']:,} |",
        f"| RSS after warm-up → last (max) | {v['rss_kb_after_warmup']:,} → {v['rss_kb_last']:,} KiB "
        f"({v['rss_kb_max']:,}) |",
        f"| RSS slope after warm-up | {v['rss_slope_kb_per_hour']:,} KiB/h |",
        f"| open fds after warm-up | {v['fds_min']}–{v['fds_max']} |",
        "",
        f"Verdict: RSS {'flat' if v['rss_flat'] else 'GROWING'}, fds "
        f"{'flat' if v['fds_flat'] else 'CHANGING'}, loss {'none' if v['loss'] == 0 else 'SOME'}: "
        f"{'pass' if ok else 'FAIL'}.",
        "",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--links", type=int, default=300)
    ap.add_argument("--results", default="results")
    opts = ap.parse_args()
    seconds = int(opts.minutes * 60)
    if seconds < WARMUP_S + 2 * SAMPLE_S:
        sys.exit(f"soak: --minutes must leave samples after the {WARMUP_S} s warm-up")
    results = os.path.join(opts.results, f"soak-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(results, exist_ok=True)
    work = tempfile.mkdtemp(prefix="qr-soak-")
    secret = os.path.join(work, "relay.secret")
    subprocess.run([f"{opts.build}/ctl/quietroomctl", "secret", "--out", secret], check=True)
    port = free_port()
    relay = subprocess.Popen(
        [f"{opts.build}/relay/quietroom-relay", "--listen", f"127.0.0.1:{port}", "--control",
         f"127.0.0.1:{free_port(socket.SOCK_STREAM)}", "--secret-file", secret, "--log-level", "info"],
        stdout=open(os.path.join(work, "relay.log"), "w"), stderr=subprocess.STDOUT)
    lt_out = os.path.join(work, "loadtest.json")
    rows = []
    try:
        time.sleep(0.3)
        if relay.poll() is not None:
            sys.exit(f"soak: the relay did not start (see {work}/relay.log)")
        gen = subprocess.Popen(
            [f"{opts.build}/loadtest/quietroom-loadtest", "--mode", "relay", "--server",
             f"127.0.0.1:{port}", "--secret-file", secret, "--links", str(opts.links), "--seconds",
             str(seconds), "--profile", "audio", "--server-pid", str(relay.pid), "--json", lt_out],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start = time.monotonic()
        with open(os.path.join(results, "samples.csv"), "w") as csv:
            csv.write("t_s,rss_kb,fds\n")
            while gen.poll() is None:
                t = round(time.monotonic() - start)
                row = {"t": t, "rss_kb": rss_kb(relay.pid), "fds": fds(relay.pid)}
                rows.append(row)
                csv.write(f"{row['t']},{row['rss_kb']},{row['fds']}\n")
                csv.flush()
                print(f"soak {t:5d} s: relay RSS {row['rss_kb']:,} KiB, {row['fds']} fds", flush=True)
                try:
                    gen.wait(timeout=SAMPLE_S)
                except subprocess.TimeoutExpired:
                    pass
        out = gen.stdout.read()
        if gen.returncode != 0 or not os.path.exists(lt_out):
            sys.exit(f"soak: the load tester failed ({gen.returncode}):\n{out}")
        with open(lt_out) as f:
            lt = json.load(f)
    finally:
        relay.send_signal(signal.SIGINT)
        try:
            relay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.kill()
    v = verdict(rows, lt)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"links": opts.links, "minutes": opts.minutes, **v}, f, indent=2)
    md = markdown(v, opts)
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"results in {results}")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if v["rss_flat"] and v["fds_flat"] and v["loss"] == 0 else 1)


if __name__ == "__main__":
    main()
