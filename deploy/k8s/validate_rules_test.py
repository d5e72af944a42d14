#!/usr/bin/python3
"""Proof that validate.py's cluster rules can fail: each case breaks one
thing in a copy of deploy/k8s/ and expects validate.py to exit non-zero with
the rule's message. The manifests themselves are never changed.

    deploy/k8s/validate_rules_test.py
"""
import os, re, shutil, subprocess, sys, tempfile
SRC = os.path.dirname(os.path.abspath(__file__))
M = [
 ("nats replicas 2", "nats.yaml", "  replicas: 3\n", "  replicas: 2\n", "replicas 2"),
 ("nats PDB maxUnavailable 2", "nats.yaml", "spec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-nats}", "spec:\n  maxUnavailable: 2\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-nats}", "PodDisruptionBudget with maxUnavailable 1"),
 ("nats PDB minAvailable instead", "nats.yaml", "spec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-nats}", "spec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-nats}", "PodDisruptionBudget with maxUnavailable 1"),
 ("nats PDB selects signaling", "nats.yaml", "  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-nats}", "  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: quietroom-signal}", "PodDisruptionBudget with maxUnavailable 1"),
 ("client tls verify false", "nats.yaml", "      ca_file: /etc/nats/tls/ca.crt\n      verify: true", "      ca_file: /etc/nats/tls/ca.crt\n      verify: false", "tls.verify must be true"),
 ("client tls verify removed", "nats.yaml", "      ca_file: /etc/nats/tls/ca.crt\n      verify: true\n", "      ca_file: /etc/nats/tls/ca.crt\n", "tls.verify must be true"),
 ("client tls block removed", "nats.yaml", "    tls {\n      cert_file", "    xtls {\n      cert_file", "tls: no tls block"),
 ("route tls verify false", "nats.yaml", "        verify: true", "        verify: false", "cluster.tls.verify must be true"),
 ("tls file not in Secret", "nats.yaml", "      ca_file: /etc/nats/tls/ca.crt\n      verify", "      ca_file: /etc/nats/tls/ca.pem\n      verify", "not a key of a Secret"),
 ("two routes", "nats.yaml", "        nats-route://quietroom-nats-2.quietroom-nats.quietroom.svc:6222\n", "", "cluster.routes"),
 ("store_dir off the PVC", "nats.yaml", "store_dir: /data\n", "store_dir: /tmp\n", "not on a volumeClaimTemplate"),
 ("nats probe /healthz", "nats.yaml", 'readinessProbe:\n            httpGet: {path: "/healthz?js-enabled-only=true"', 'readinessProbe:\n            httpGet: {path: "/healthz"', "readinessProbe: expected"),
 ("nats grace 30", "nats.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 30", "lame duck"),
 ("headless not headless", "nats.yaml", "  clusterIP: None\n", "", "no headless Service"),
 ("signal nats:// url", "signaling.yaml", "cluster = tls://quietroom-nats-1", "cluster = nats://quietroom-nats-1", "expected tls://HOST:PORT"),
 ("signal unknown host", "signaling.yaml", "cluster = tls://quietroom-nats-1.", "cluster = tls://quietroom-natz-1.", "not a NATS pod or Service"),
 ("signal wrong port", "signaling.yaml", "quietroom-nats-2.quietroom-nats.quietroom.svc:4222", "quietroom-nats-2.quietroom-nats.quietroom.svc:6222", "not a NATS pod or Service"),
 ("signal cluster-tls-key removed", "signaling.yaml", "    cluster-tls-key = /etc/quietroom/nats/tls.key\n", "", "cluster-tls-key missing"),
 ("signal nats Secret not mounted", "signaling.yaml", "            - {name: nats-client, mountPath: /etc/quietroom/nats, readOnly: true}\n", "", "is not a key of a Secret"),
 ("signal Secret lacks tls.key", "secrets.yaml", 'signed by that CA (PEM)"\n  tls.key: "REPLACE-ME: its private key (PEM)"\n', 'signed by that CA (PEM)"\n', "is not a key of a Secret"),
 ("cluster-replicas 5", "signaling.yaml", "cluster-replicas = 3", "cluster-replicas = 5", "exceeds the 3 NATS servers"),
 ("--state-dir back", "signaling.yaml", "            - /var/lib/quietroom/signal/$(POD_NAME).jsonl\n", "            - /var/lib/quietroom/signal/$(POD_NAME).jsonl\n            - --state-dir\n            - /var/lib/quietroom/signal/$(POD_NAME).state\n", "--state-dir with a cluster"),
 ("no cluster lines, no affinity", "signaling.yaml", None, None, "needs sessionAffinity ClientIP"),
 ("nats StatefulSet removed", "nats.yaml", "kind: StatefulSet\n", "kind: StatefulSetX\n", "no StatefulSet quietroom-nats"),
 ("relay caps on the plain binary", "relay.yaml", 'command: ["/usr/sbin/quietroom-relay-caps"]', 'command: ["/usr/sbin/quietroom-relay"]', "would never be effective"),
 ("relay caps binary without BPF", "relay.yaml", "add: [NET_BIND_SERVICE, BPF, NET_ADMIN]", "add: [NET_BIND_SERVICE, NET_ADMIN]", "refuses to start it"),
]
bad = 0
for name, f, a, b, want in M:
    d = tempfile.mkdtemp()
    shutil.copytree(SRC, d + "/k8s", ignore=shutil.ignore_patterns("__pycache__"))
    p = f"{d}/k8s/{f}"
    s = open(p).read()
    if a is None:
        s2 = re.sub(r"^    cluster = .*\n", "", s, flags=re.M)
    else:
        if a not in s:
            print(f"?? {name}: pattern not found (update this test)"); bad += 1; shutil.rmtree(d); continue
        s2 = s.replace(a, b, 1)
    open(p, "w").write(s2)
    r = subprocess.run(["/usr/bin/python3", d + "/k8s/validate.py"], capture_output=True, text=True)
    hit = [l for l in r.stderr.splitlines() if want in l]
    ok = r.returncode != 0 and hit
    if not ok: bad += 1
    print(f"{'FAILS as expected' if ok else 'NOT CAUGHT'}: {name}: {hit[0][:150] if hit else r.stderr[:300]}")
    shutil.rmtree(d)
print(f"validate_rules_test: {len(M) - bad} of {len(M)} broken manifests refused")
sys.exit(1 if bad else 0)
