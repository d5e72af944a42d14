#!/usr/bin/python3
"""Offline check of deploy/k8s/*.yaml (no cluster, no network).

1. Every document validates against the strict JSON Schema of its kind in
   schemas/ (generated from the Kubernetes 1.22 API models: unknown fields,
   wrong types and missing required fields are errors).
2. Cross-references the schemas cannot see: every ConfigMap and Secret a pod
   mounts exists (and the key a subPath names); named probe and Service ports
   exist in the container; Service and PodDisruptionBudget selectors match a
   workload's pod labels; one namespace everywhere.
3. Quietroom's own rules: the relay is a DaemonSet on the host network with
   ClusterFirstWithHostNet and exactly one UDP port; probes hit /healthz and
   /readyz; terminationGracePeriodSeconds exceeds the drain-timeout of the
   daemon's configuration; the Service has ClientIP affinity; pods run as
   non-root without privilege escalation; Secrets hold placeholders only.

    deploy/k8s/validate.py [FILE.yaml...]     (default: deploy/k8s/*.yaml)
"""
import glob
import json
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = {
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
    ("v1", "Namespace"): "namespace-v1.json",
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("apps/v1", "DaemonSet"): "daemonset-apps-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
}

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def load(files):
    docs = []
    for f in files:
        with open(f) as fp:
            for i, d in enumerate(yaml.safe_load_all(fp)):
                if d is not None:
                    docs.append((f"{os.path.basename(f)}#{i} {d.get('kind')}/"
                                 f"{d.get('metadata', {}).get('name')}", d))
    return docs


def check_schema(where, d):
    key = (d.get("apiVersion"), d.get("kind"))
    if key not in SCHEMAS:
        err(where, f"no schema for {key}: add it to schemas/generate.py")
        return
    with open(os.path.join(HERE, "schemas", SCHEMAS[key])) as fp:
        schema = json.load(fp)
    v = jsonschema.Draft7Validator(schema)
    for e in sorted(v.iter_errors(d), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in e.absolute_path) or "(top)"
        err(where, f"{path}: {e.message[:300]}")


def drain_timeout(ini_text):
    m = re.search(r"^drain-timeout\s*=\s*(\d+)\s*$", ini_text, re.M)
    return int(m.group(1)) if m else 3600  # the daemons' default


def main():
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.yaml")))
    if not files:
        print("validate.py: no manifests", file=sys.stderr)
        return 1
    docs = load(files)
    by_kind = {}
    for where, d in docs:
        check_schema(where, d)
        by_kind.setdefault(d.get("kind"), {})[d["metadata"]["name"]] = (where, d)

    namespaces = {d["metadata"].get("namespace") for _, d in docs if d["kind"] != "Namespace"}
    if len(namespaces) != 1 or None in namespaces:
        err("manifests", f"expected one namespace on every object, found {namespaces}")
    elif next(iter(namespaces)) not in by_kind.get("Namespace", {}):
        err("manifests", f"namespace {namespaces} is not defined")

    configmaps = {n: d.get("data", {}) for n, (_, d) in by_kind.get("ConfigMap", {}).items()}
    secrets = {n: {**d.get("data", {}), **d.get("stringData", {})}
               for n, (_, d) in by_kind.get("Secret", {}).items()}

    for name, (where, s) in by_kind.get("Secret", {}).items():
        for k, v in {**s.get("stringData", {}), **s.get("data", {})}.items():
            if "REPLACE-ME" not in str(v):
                err(where, f"{k}: not a placeholder; real secrets never go in the repository")

    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("DaemonSet", {})}
    for name, (where, w) in workloads.items():
        pod = w["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        sel = w["spec"]["selector"].get("matchLabels", {})
        if any(labels.get(k) != v for k, v in sel.items()):
            err(where, "selector does not match the pod template's labels")
        spec = pod["spec"]
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            err(where, "pod securityContext.runAsNonRoot must be true")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec["containers"]:
            cw = f"{where} container {c['name']}"
            csc = c.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False:
                err(cw, "allowPrivilegeEscalation must be false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                err(cw, "capabilities must drop ALL")
            for m in c.get("volumeMounts", []):
                v = vols.get(m["name"])
                if v is None:
                    err(cw, f"mounts undefined volume {m['name']}")
                    continue
                if "configMap" in v:
                    cm = configmaps.get(v["configMap"]["name"])
                    if cm is None:
                        err(cw, f"ConfigMap {v['configMap']['name']} is not defined")
                    elif m.get("subPath") and m["subPath"] not in cm:
                        err(cw, f"ConfigMap {v['configMap']['name']} has no key {m['subPath']}")
                if "secret" in v:
                    if v["secret"]["secretName"] not in secrets:
                        err(cw, f"Secret {v['secret']['secretName']} is not defined")
                    if v["secret"].get("defaultMode", 0o644) & 0o007:
                        err(cw, f"Secret volume {m['name']}: others may read it; the daemons refuse that")
        for c in spec["containers"]:
            cw = f"{where} container {c['name']}"
            ports = {p.get("name"): p for p in c.get("ports", [])}
            numbers = {p["containerPort"] for p in c.get("ports", [])}
            probes = {k: c.get(k) for k in ("readinessProbe", "livenessProbe")}
            for kind, want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                p = probes[kind]
                if not p or "httpGet" not in p:
                    err(cw, f"{kind}: expected an httpGet of {want}")
                    continue
                if p["httpGet"].get("path") != want:
                    err(cw, f"{kind}: path {p['httpGet'].get('path')}, expected {want}")
                port = p["httpGet"]["port"]
                if (isinstance(port, str) and port not in ports) or \
                        (isinstance(port, int) and port not in numbers):
                    err(cw, f"{kind}: port {port} is not a container port")
            # terminationGracePeriodSeconds vs the daemon's drain-timeout.
            conf = None
            for m in c.get("volumeMounts", []):
                v = vols.get(m["name"], {})
                if "configMap" in v and m.get("subPath", "").endswith((".conf", ".ini")):
                    conf = configmaps.get(v["configMap"]["name"], {}).get(m["subPath"])
            if conf is None:
                err(cw, "no relay.conf/signal.ini mounted from a ConfigMap")
            else:
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= drain_timeout(conf):
                    err(cw, f"terminationGracePeriodSeconds {grace} does not exceed drain-timeout "
                            f"{drain_timeout(conf)}: Kubernetes would kill calls mid-drain")

    relay = by_kind.get("DaemonSet", {}).get("quietroom-relay")
    if relay is None:
        err("manifests", "no DaemonSet quietroom-relay")
    else:
        where, ds = relay
        spec = ds["spec"]["template"]["spec"]
        if spec.get("hostNetwork") is not True:
            err(where, "relay must use hostNetwork")
        if spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
            err(where, "hostNetwork pods need dnsPolicy ClusterFirstWithHostNet")
        udp = [p for c in spec["containers"] for p in c.get("ports", [])
               if p.get("protocol") == "UDP"]
        if len(udp) != 1:
            err(where, f"relay must expose exactly one UDP port, found {len(udp)}")
    if "quietroom-signal" not in by_kind.get("Deployment", {}):
        err("manifests", "no Deployment quietroom-signal")

    for name, (where, svc) in by_kind.get("Service", {}).items():
        sel = svc["spec"].get("selector", {})
        targets = [w for w in workloads.values()
                   if sel and all(w[1]["spec"]["template"]["metadata"]["labels"].get(k) == v
                                  for k, v in sel.items())]
        if not targets:
            err(where, f"selector {sel} matches no workload")
        if svc["spec"].get("sessionAffinity") != "ClientIP":
            err(where, "signaling needs sessionAffinity ClientIP")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            for _, w in targets:
                cports = [cp for c in w["spec"]["template"]["spec"]["containers"]
                          for cp in c.get("ports", [])]
                if not any(cp.get("name") == tp or cp["containerPort"] == tp for cp in cports):
                    err(where, f"targetPort {tp} is not a port of the selected pods")

    for name, (where, pdb) in by_kind.get("PodDisruptionBudget", {}).items():
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not any(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v
                       for k, v in sel.items()) for _, w in workloads.values()):
            err(where, f"selector {sel} matches no workload")

    for e in errors:
        print(f"k8s: {e}", file=sys.stderr)
    print(f"k8s: {len(docs)} objects in {len(files)} files: "
          f"{'ok' if not errors else f'{len(errors)} error(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
