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
   ClusterFirstWithHostNet and exactly one UDP port; the daemons' probes hit
   /healthz and /readyz; terminationGracePeriodSeconds exceeds the
   drain-timeout of the daemon's configuration; pods run as non-root without
   privilege escalation; Secrets hold placeholders only.
4. The cluster (nats.yaml, signal.ini's cluster lines): the NATS StatefulSet
   has 3 replicas, a headless serviceName, and a PodDisruptionBudget with
   maxUnavailable 1 selecting it; nats-server.conf has client TLS with
   verify true, route TLS, one route per replica through the headless
   Service, its JetStream store_dir on a volumeClaimTemplate, and the TLS
   files mounted from a Secret; its probes hit /healthz?js-enabled-only=true
   on the monitor port and the grace period covers lame duck mode.
   Signaling's config names the cluster with tls:// URLs of NATS pods or
   Services on the client port, cluster-replicas no more than the servers,
   and cluster-tls-ca/cert/key files mounted from a Secret that has them.
   Without cluster lines signaling keeps per-pod state and its Service needs
   sessionAffinity ClientIP.

    deploy/k8s/validate.py [FILE.yaml...]     (default: deploy/k8s/*.yaml)

deploy/k8s/validate_rules_test.py breaks the manifests in a copy, one rule at
a time, and checks that each broken copy is refused.
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
    ("apps/v1", "StatefulSet"): "statefulset-apps-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
}

# The Quietroom daemons (probes /healthz and /readyz, drain-timeout); the
# NATS servers have rules of their own (check_nats).
DAEMONS = ("quietroom-relay", "quietroom-signal")
# Binaries of the image with file capabilities (=ep), and what they hold.
CAPS_BINARIES = {"/usr/sbin/quietroom-relay-caps": {"NET_BIND_SERVICE", "BPF", "NET_ADMIN"}}
NATS = "quietroom-nats"

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


def ini_values(ini_text, key):
    """Every value of KEY in a daemon's ini text (keys may repeat)."""
    return [m.group(1).strip() for m in
            re.finditer(rf"^{re.escape(key)}\s*=\s*(.*?)\s*$", ini_text, re.M)]


def parse_nats_conf(text):
    """nats-server.conf (the subset used here) as nested dicts and lists:
    KEY [:=] VALUE, KEY { ... }, KEY [ ... ]; comments # and //."""
    toks = []
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[{}\[\],]|(?:#|//)[^\n]*|[^\s{}\[\],"]+', text):
        t = m.group(0)
        if t.startswith(("#", "//")):
            continue
        toks.append(t)
    pos = 0

    def value():
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "{":
            return block("}")
        if t == "[":
            out = []
            while toks[pos] != "]":
                if toks[pos] == ",":
                    pos += 1
                    continue
                out.append(value())
            pos += 1
            return out
        if t.startswith('"'):
            return t[1:-1]
        return {"true": True, "false": False}.get(t, t)

    def block(end):
        nonlocal pos
        out = {}
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if key == ",":
                continue
            if key.endswith((":", "=")):
                key = key[:-1]
            elif toks[pos] in (":", "="):
                pos += 1
            out[key] = value()
        pos += 1
        return out

    return block(None)


def mounted_from_secret(path, container, vols, secrets):
    """The Secret (name) whose volume, mounted in container, provides path and
    has the key of path's file name; None if none does."""
    for m in container.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "secret" not in v or m.get("subPath"):
            continue
        mp = m["mountPath"].rstrip("/") + "/"
        if path.startswith(mp) and path[len(mp):] in secrets.get(v["secret"]["secretName"], {}):
            return v["secret"]["secretName"]
    return None


def config_of(container, vols, configmaps, suffixes):
    """The text of the first ConfigMap key the container mounts by subPath
    with one of the suffixes, or None."""
    for m in container.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "configMap" in v and m.get("subPath", "").endswith(suffixes):
            return configmaps.get(v["configMap"]["name"], {}).get(m["subPath"])
    return None


def seconds(duration):
    """NATS durations: 30s, 2m, 1h (or bare seconds)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(duration))
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def selects(selector, pod_labels):
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def check_nats(by_kind, configmaps, secrets, namespace):
    """Rules for the NATS StatefulSet; returns {"hosts", "port", "replicas"}
    for the signaling checks (None if there is no usable NATS)."""
    sts = by_kind.get("StatefulSet", {}).get(NATS)
    if sts is None:
        err("manifests", f"no StatefulSet {NATS} (the cluster signaling's config names)")
        return None
    where, st = sts
    spec = st["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    replicas = spec.get("replicas", 1)
    if replicas != 3:
        err(where, f"replicas {replicas}: NATS runs 3 servers (a quorum of 2 survives one loss)")
    pdbs = [p for _, p in by_kind.get("PodDisruptionBudget", {}).values()
            if selects(p["spec"]["selector"].get("matchLabels", {}), labels)]
    if not any(p["spec"].get("maxUnavailable") == 1 and "minAvailable" not in p["spec"]
               for p in pdbs):
        err(where, "needs a PodDisruptionBudget with maxUnavailable 1 selecting its pods "
                   "(a drain must never take two of three servers)")
    headless = by_kind.get("Service", {}).get(spec["serviceName"])
    if headless is None or headless[1]["spec"].get("clusterIP") != "None" or \
            not selects(headless[1]["spec"].get("selector", {}), labels):
        err(where, f"serviceName {spec['serviceName']}: no headless Service selecting the pods")
    pod = spec["template"]["spec"]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    c = pod["containers"][0]
    text = config_of(c, vols, configmaps, (".conf",))
    if text is None:
        err(where, "no nats-server.conf mounted from a ConfigMap")
        return None
    try:
        conf = parse_nats_conf(text)
    except (IndexError, KeyError) as e:
        err(where, f"nats-server.conf: cannot parse ({e!r})")
        return None
    cw = f"{where} nats-server.conf"

    def tls_block(tls, name):
        if not isinstance(tls, dict):
            err(cw, f"{name}: no tls block")
            return
        for k in ("cert_file", "key_file", "ca_file"):
            if k not in tls:
                err(cw, f"{name}.{k} missing")
            elif not mounted_from_secret(tls[k], c, vols, secrets):
                err(cw, f"{name}.{k} {tls[k]} is not a key of a Secret mounted there")
        if tls.get("verify") is not True:
            err(cw, f"{name}.verify must be true (mutual TLS: peers present a certificate)")

    tls_block(conf.get("tls"), "tls")
    js = conf.get("jetstream")
    if not isinstance(js, dict) or "store_dir" not in js:
        err(cw, "jetstream { store_dir } missing")
    else:
        claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        if not any(m["name"] in claims and
                   (js["store_dir"].rstrip("/") + "/").startswith(m["mountPath"].rstrip("/") + "/")
                   for m in c.get("volumeMounts", [])):
            err(cw, f"jetstream.store_dir {js['store_dir']} is not on a volumeClaimTemplate")
    cl = conf.get("cluster")
    cport = None
    if not isinstance(cl, dict) or not cl.get("name"):
        err(cw, "cluster { name ... } missing")
    else:
        tls_block(cl.get("tls"), "cluster.tls")
        cport = str(cl.get("listen", "6222")).rsplit(":", 1)[-1]
        want = {f"{st['metadata']['name']}-{i}.{spec['serviceName']}.{namespace}.svc{tail}:{cport}"
                for i in range(replicas) for tail in ("", ".cluster.local")}
        routes = [re.sub(r"^nats-route://", "", r) for r in cl.get("routes", [])]
        if len(routes) != replicas or not all(r in want for r in routes) or \
                len({r.split(".")[0] for r in routes}) != replicas:
            err(cw, f"cluster.routes {routes}: expected one nats-route:// per pod through the "
                    f"headless Service, port {cport}")
    client_port = int(str(conf.get("listen", "4222")).rsplit(":", 1)[-1])
    mon_port = int(str(conf.get("http", conf.get("http_port", "0"))).rsplit(":", 1)[-1])
    numbers = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for kind in ("readinessProbe", "livenessProbe"):
        p = c.get(kind, {}).get("httpGet")
        if not p or p.get("path") != "/healthz?js-enabled-only=true" or \
                numbers.get(p["port"], p["port"]) != mon_port:
            err(f"{where} container {c['name']}", f"{kind}: expected an httpGet of "
                f"/healthz?js-enabled-only=true on the monitoring port {mon_port}")
    ld = (seconds(conf.get("lame_duck_duration", "2m")) or 0) + \
        (seconds(conf.get("lame_duck_grace_period", "10s")) or 0)
    if pod.get("terminationGracePeriodSeconds", 30) <= ld:
        err(where, f"terminationGracePeriodSeconds does not exceed lame duck mode ({ld:g} s)")
    hosts = {f"{st['metadata']['name']}-{i}.{spec['serviceName']}.{namespace}.svc{tail}"
             for i in range(replicas) for tail in ("", ".cluster.local")}
    for name, (_, svc) in by_kind.get("Service", {}).items():
        if selects(svc["spec"].get("selector", {}), labels):
            hosts |= {f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"}
    return {"hosts": hosts, "port": client_port, "replicas": replicas}


def check_signal_cluster(by_kind, configmaps, secrets, nats):
    """signal.ini's cluster lines; True if signaling runs with a cluster."""
    dep = by_kind.get("Deployment", {}).get("quietroom-signal")
    if dep is None:
        return False
    where, d = dep
    pod = d["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    c = next(c for c in pod["containers"] if c["name"] == "signal")
    ini = config_of(c, vols, configmaps, (".ini",)) or ""
    urls = ini_values(ini, "cluster") + [c["args"][i + 1] for i, a in enumerate(c.get("args", []))
                                         if a == "--cluster" and i + 1 < len(c["args"])]
    if not urls:
        return False
    cw = f"{where} signal.ini"
    if any(a == "--state-dir" for a in c.get("args", [])):
        err(cw, "--state-dir with a cluster: the state is in NATS, not in the pod")
    for u in urls:
        m = re.fullmatch(r"tls://([^:/]+):(\d+)", u)
        if not m:
            err(cw, f"cluster = {u}: expected tls://HOST:PORT (the cluster is reached over TLS)")
        elif nats and (m.group(1) not in nats["hosts"] or int(m.group(2)) != nats["port"]):
            err(cw, f"cluster = {u}: not a NATS pod or Service of {NATS} on its client "
                    f"port {nats['port']}")
    reps = ini_values(ini, "cluster-replicas")
    if nats and reps and int(reps[-1]) > nats["replicas"]:
        err(cw, f"cluster-replicas {reps[-1]} exceeds the {nats['replicas']} NATS servers")
    for key in ("cluster-tls-ca", "cluster-tls-cert", "cluster-tls-key"):
        vals = ini_values(ini, key)
        if not vals:
            err(cw, f"{key} missing: the NATS servers require a client certificate")
        elif not mounted_from_secret(vals[-1], c, vols, secrets):
            err(cw, f"{key} = {vals[-1]} is not a key of a Secret mounted there")
    return True


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

    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("DaemonSet", {}),
                 **by_kind.get("StatefulSet", {})}
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
        # A StatefulSet's claims are volumes of its pods too.
        vols.update({t["metadata"]["name"]: {"persistentVolumeClaim": {}}
                     for t in w["spec"].get("volumeClaimTemplates", [])})
        for c in spec.get("initContainers", []) + spec["containers"]:
            cw = f"{where} container {c['name']}"
            csc = c.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False:
                err(cw, "allowPrivilegeEscalation must be false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                err(cw, "capabilities must drop ALL")
            # A non-root container's process gets an added capability only
            # through file capabilities on its binary: the image's
            # quietroom-relay-caps (deploy/container/Containerfile).
            added = set(csc.get("capabilities", {}).get("add", []))
            runs_as = csc.get("runAsUser", psc.get("runAsUser"))
            if added and runs_as != 0 and c.get("command", [""])[0] not in CAPS_BINARIES:
                err(cw, f"adds {sorted(added)} but runs as a non-root user a binary without file "
                        f"capabilities: they would never be effective")
            need = CAPS_BINARIES.get(c.get("command", [""])[0], set())
            if need - added:
                err(cw, f"{c['command'][0]} has file capabilities {sorted(need)}: the kernel refuses "
                        f"to start it unless the container adds them all (missing {sorted(need - added)})")
            for cap in added & {"BPF", "NET_ADMIN"}:
                if name != "quietroom-relay":
                    err(cw, f"{cap} is for the relay's kernel path only")
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
        for c in spec["containers"] if name in DAEMONS else []:
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
            conf = config_of(c, vols, configmaps, (".conf", ".ini"))
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

    ns = next(iter(namespaces)) if len(namespaces) == 1 else None
    clustered = False
    if "quietroom-signal" in by_kind.get("Deployment", {}):
        cm = by_kind.get("ConfigMap", {}).get("quietroom-signal", (None, {}))[1]
        uses_cluster = bool(ini_values(cm.get("data", {}).get("signal.ini", ""), "cluster"))
        nats = check_nats(by_kind, configmaps, secrets, ns) \
            if uses_cluster or NATS in by_kind.get("StatefulSet", {}) else None
        clustered = check_signal_cluster(by_kind, configmaps, secrets, nats)

    for name, (where, svc) in by_kind.get("Service", {}).items():
        sel = svc["spec"].get("selector", {})
        targets = [w for w in workloads.values()
                   if sel and all(w[1]["spec"]["template"]["metadata"]["labels"].get(k) == v
                                  for k, v in sel.items())]
        if not targets:
            err(where, f"selector {sel} matches no workload")
        signal = any(w["metadata"]["name"] == "quietroom-signal" for _, w in targets)
        if signal and not clustered and svc["spec"].get("sessionAffinity") != "ClientIP":
            err(where, "signaling without a cluster keeps visits per pod: it needs "
                       "sessionAffinity ClientIP")
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
