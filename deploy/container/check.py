#!/usr/bin/python3
"""Static check of deploy/container/Containerfile (no container engine here:
`docker build` needs an engine this CI does not have). Runs hadolint too when
it is installed. Checks: a debian:12 build stage and a debian:12-slim final
stage; COPY --from names an earlier stage; the final stage installs no
compiler or -dev package, runs as a numeric non-root USER, EXPOSEs the relay's
UDP port and the TCP ports of operations.md, has a HEALTHCHECK on /healthz and
a CMD whose config exists in deploy/etc; every path the final stage copies
from the build context is not ignored by .dockerignore."""
import json
import os
import re
import shutil
import subprocess
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
path = os.path.join(root, "deploy/container/Containerfile")
text = open(path).read()
lines = re.sub(r"\\\n", " ", text).splitlines()
ins = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
errors = []

stages = []  # (image, name, [instructions])
for l in ins:
    word, _, rest = l.partition(" ")
    if word.upper() == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
        stages.append((m.group(1), m.group(2), []))
    elif not stages:
        if word.upper() != "ARG":
            errors.append(f"{word} before the first FROM")
    else:
        stages[-1][2].append((word.upper(), rest.strip()))

if len(stages) < 2:
    errors.append("expected a multi-stage build (build, run)")
else:
    if stages[0][0] != "debian:12":
        errors.append(f"build stage is {stages[0][0]}, expected debian:12")
    if stages[-1][0] != "debian:12-slim":
        errors.append(f"final stage is {stages[-1][0]}, expected debian:12-slim")
names = [s[1] for s in stages]
final = stages[-1][2] if stages else []
for i, (_, _, body) in enumerate(stages):
    for w, rest in body:
        m = re.search(r"--from=(\S+)", rest)
        if w == "COPY" and m and m.group(1) not in names[:i]:
            errors.append(f"COPY --from={m.group(1)}: no earlier stage of that name")
for w, rest in final:
    if w == "RUN" and "apt-get install" in rest:
        bad = [p for p in rest.split() if p.endswith("-dev") or p in
               ("gcc", "cmake", "clang", "make", "ninja-build", "build-essential", "dpkg-dev")]
        if bad:
            errors.append(f"final stage installs build tools: {bad}")
        if "--no-install-recommends" not in rest:
            errors.append("final stage apt-get install without --no-install-recommends")
users = [rest for w, rest in final if w == "USER"]
if not users:
    errors.append("final stage has no USER: it would run as root")
else:
    u = users[-1].split(":")[0]
    if not u.isdigit() or int(u) == 0:
        errors.append(f"USER {users[-1]}: use a numeric non-root uid (runAsNonRoot checks it)")
exposed = set(" ".join(rest for w, rest in final if w == "EXPOSE").split())
for want in ("3478/udp", "7600/tcp", "9600/tcp", "8443/tcp", "9601/tcp"):
    if want not in exposed:
        errors.append(f"EXPOSE lacks {want}")
hc = [rest for w, rest in final if w == "HEALTHCHECK"]
if not hc or "/healthz" not in hc[-1]:
    errors.append("no HEALTHCHECK on /healthz")
cmd = [rest for w, rest in final if w == "CMD"]
if not cmd:
    errors.append("no CMD")
else:
    argv = json.loads(cmd[-1])
    if argv[0] not in ("/usr/sbin/quietroom-relay", "/usr/sbin/quietroom-signal"):
        errors.append(f"CMD runs {argv[0]}")
    if "--config" in argv:
        conf = argv[argv.index("--config") + 1]
        if not os.path.exists(os.path.join(root, "deploy/etc", os.path.basename(conf))):
            errors.append(f"CMD config {conf} is not a packaged file of deploy/etc")
ignore = os.path.join(root, ".dockerignore")
if os.path.exists(ignore):
    pats = [p.strip() for p in open(ignore) if p.strip() and not p.startswith("#")]
    for must in ("CMakeLists.txt", "relay", "signaling", "common", "ctl", "cmake", "deploy"):
        if any(p.strip("/") == must for p in pats):
            errors.append(f".dockerignore excludes {must}, which the build needs")
    if not any(p.strip("/").startswith("build") for p in pats):
        errors.append(".dockerignore should exclude build trees")

if shutil.which("hadolint"):
    r = subprocess.run(["hadolint", "--ignore", "DL3008", path])
    if r.returncode:
        errors.append("hadolint failed")
    tool = "hadolint and static checks"
else:
    tool = "static checks (hadolint not installed)"
for e in errors:
    print(f"container: {e}", file=sys.stderr)
print(f"container: {len(stages)} stages, {tool}: {'ok' if not errors else 'FAILED'}")
sys.exit(1 if errors else 0)
