#!/usr/bin/python3
"""Checks that the Grafana dashboard is valid JSON and that every metric (and
every label in a selector) used by its PromQL, by alerts.yml and by the alert
unit tests is documented in docs/operations.md's metric tables: a renamed or
invented metric would make a panel silently empty or an alert never fire.

    deploy/check-metrics.py [REPO_ROOT]
"""
import json
import os
import re
import sys

import yaml

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
errors = []

# --- documented metrics: | `name` | type | `label`, ... | meaning | ---------
doc = open(os.path.join(root, "docs/operations.md")).read()
documented = {}  # name -> (type, set of labels)
for m in re.finditer(r"^\| `(quietroom_[a-z0-9_]+)` \| (\w+) \| ([^|]*)\|", doc, re.M):
    documented[m.group(1)] = (m.group(2), set(re.findall(r"`([a-z_]+)`", m.group(3))))
for name in re.findall(r"`(process_[a-z_]+)`", doc):
    documented[name] = ("process", set())
if len(documented) < 40:
    errors.append(f"operations.md: found only {len(documented)} metrics; did the tables change shape?")
# Added by Prometheus itself, not by the daemons; the labels every target gets.
BUILTIN = {"up"}
TARGET_LABELS = {"job", "instance"}

PROMQL_WORDS = {"sum", "by", "rate", "increase", "max", "min", "avg", "count", "without", "on",
                "ignoring", "group_left", "group_right", "and", "or", "unless", "clamp_min",
                "clamp_max", "histogram_quantile", "label_values", "bool", "offset", "topk",
                "bottomk", "abs", "irate", "delta", "deriv", "humanizePercentage"}


def base(name):
    """histogram series -> family name"""
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and name[: -len(suf)] in documented \
                and documented[name[: -len(suf)]][0] == "histogram":
            return name[: -len(suf)]
    return name


def check_expr(where, expr):
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values and strings
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?", expr):
        name, sel = m.group(1), m.group(3)
        if name in PROMQL_WORDS or name.startswith("$") or expr[m.end(1):m.end(1) + 1] == "(":
            continue
        if not (name.startswith("quietroom_") or name.startswith("process_") or name in BUILTIN):
            continue  # a label name inside by (...) and the like
        fam = base(name)
        if fam in BUILTIN:
            continue
        if fam not in documented:
            errors.append(f"{where}: metric {name} is not in docs/operations.md")
            continue
        labels = documented[fam][1] | TARGET_LABELS
        if documented[fam][0] == "histogram":
            labels |= {"le"}
        for lab in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel or ""):
            if lab not in labels:
                errors.append(f"{where}: {name} has no label {lab} in docs/operations.md")
    # by (...) / without (...) grouping labels must exist on some metric used
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for lab in (x.strip() for x in grp.split(",") if x.strip()):
            if lab not in TARGET_LABELS | {"le"} and \
                    not any(lab in v[1] for v in documented.values()):
                errors.append(f"{where}: grouping label {lab} is on no documented metric")


# --- Grafana ---------------------------------------------------------------
path = os.path.join(root, "deploy/grafana/quietroom.json")
try:
    dash = json.load(open(path))
except ValueError as e:
    errors.append(f"{path}: not valid JSON: {e}")
    dash = {}
n = 0


def walk(panels):
    global n
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            n += 1
            check_expr(f"grafana panel '{p.get('title')}'", t.get("expr", ""))


walk(dash.get("panels", []))
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        check_expr(f"grafana variable {v['name']}", q)
if dash and n < 10:
    errors.append(f"grafana: only {n} queries found")
ids = [p.get("id") for p in dash.get("panels", [])]
if len(ids) != len(set(ids)):
    errors.append("grafana: duplicate panel ids")

# --- alerts and their tests ------------------------------------------------
rules = yaml.safe_load(open(os.path.join(root, "deploy/prometheus/alerts.yml")))
for g in rules["groups"]:
    for r in g["rules"]:
        check_expr(f"alert {r.get('alert')}", r["expr"])
tests = yaml.safe_load(open(os.path.join(root, "deploy/prometheus/alerts_test.yml")))
for t in tests["tests"]:
    for s in t.get("input_series", []):
        check_expr(f"alert test '{t['name']}'", s["series"])

for e in errors:
    print(f"metrics: {e}", file=sys.stderr)
print(f"metrics: {n} dashboard queries, {sum(len(g['rules']) for g in rules['groups'])} alerts "
      f"against {len(documented)} documented metrics: {'ok' if not errors else 'FAILED'}")
sys.exit(1 if errors else 0)
