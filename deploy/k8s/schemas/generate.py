#!/usr/bin/python3
"""Writes strict JSON Schemas (draft 7) for the Kubernetes kinds that
deploy/k8s/ uses, from the models of Debian 12's python3-kubernetes 22.6.0
(the official Kubernetes Python client, itself generated from the Kubernetes
1.22 OpenAPI spec).

Each schema is self-contained (its own "definitions"), rejects unknown fields
(additionalProperties: false), checks types and requires the fields the
client's setters refuse to leave empty. The client carries no enums; the few
that matter here are added from the Kubernetes API reference (ENUMS below).
IntOrString and other free-form values accept anything: cross-reference checks
in deploy/validate.py resolve named ports.

    apt-get install python3-kubernetes
    deploy/k8s/schemas/generate.py          # rewrites the *.json beside it

deploy/validate.sh does not need python3-kubernetes: it validates against the
files written here.
"""
import importlib.metadata
import inspect
import json
import os
import re
import sys

import kubernetes.client as k8s

# (file, apiVersion, kind, model)
KINDS = [
    ("configmap-v1.json", "v1", "ConfigMap", "V1ConfigMap"),
    ("secret-v1.json", "v1", "Secret", "V1Secret"),
    ("service-v1.json", "v1", "Service", "V1Service"),
    ("serviceaccount-v1.json", "v1", "ServiceAccount", "V1ServiceAccount"),
    ("namespace-v1.json", "v1", "Namespace", "V1Namespace"),
    ("deployment-apps-v1.json", "apps/v1", "Deployment", "V1Deployment"),
    ("daemonset-apps-v1.json", "apps/v1", "DaemonSet", "V1DaemonSet"),
    ("statefulset-apps-v1.json", "apps/v1", "StatefulSet", "V1StatefulSet"),
    ("poddisruptionbudget-policy-v1.json", "policy/v1", "PodDisruptionBudget",
     "V1PodDisruptionBudget"),
]

# model.attribute -> allowed values (Kubernetes API reference, v1.22).
ENUMS = {
    "V1ContainerPort.protocol": ["TCP", "UDP", "SCTP"],
    "V1ServicePort.protocol": ["TCP", "UDP", "SCTP"],
    "V1ServiceSpec.session_affinity": ["ClientIP", "None"],
    "V1ServiceSpec.type": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
    "V1ServiceSpec.external_traffic_policy": ["Cluster", "Local"],
    "V1SeccompProfile.type": ["RuntimeDefault", "Localhost", "Unconfined"],
    "V1Container.image_pull_policy": ["Always", "IfNotPresent", "Never"],
    "V1PodSpec.restart_policy": ["Always", "OnFailure", "Never"],
    "V1PodSpec.dns_policy": ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    "V1DeploymentStrategy.type": ["Recreate", "RollingUpdate"],
    "V1DaemonSetUpdateStrategy.type": ["OnDelete", "RollingUpdate"],
    "V1StatefulSetUpdateStrategy.type": ["OnDelete", "RollingUpdate"],
    "V1StatefulSetSpec.pod_management_policy": ["OrderedReady", "Parallel"],
    "V1HostPathVolumeSource.type": ["", "DirectoryOrCreate", "Directory", "FileOrCreate",
                                    "File", "Socket", "CharDevice", "BlockDevice"],
    "V1HTTPGetAction.scheme": ["HTTP", "HTTPS"],
    "V1Secret.type": ["Opaque", "kubernetes.io/tls", "kubernetes.io/service-account-token",
                      "kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson",
                      "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth",
                      "bootstrap.kubernetes.io/token"],
}

SCALARS = {"str": "string", "int": "integer", "bool": "boolean", "float": "number",
           "datetime": "string", "date": "string"}


def required_attrs(cls):
    """Attributes whose setter refuses None (the client's "required")."""
    out = []
    for attr in cls.openapi_types:
        prop = getattr(cls, attr, None)
        if isinstance(prop, property) and prop.fset is not None:
            if "must not be `None`" in inspect.getsource(prop.fset):
                out.append(attr)
    return out


class Builder:
    def __init__(self):
        self.definitions = {}

    def type_schema(self, t):
        m = re.fullmatch(r"list\[(.+)\]", t)
        if m:
            return {"type": "array", "items": self.type_schema(m.group(1))}
        m = re.fullmatch(r"dict\((\w+), (.+)\)", t)
        if m:
            return {"type": "object", "additionalProperties": self.type_schema(m.group(2))}
        if t in SCALARS:
            return {"type": SCALARS[t]}
        if t == "object":
            return {}
        self.model(t)
        return {"$ref": "#/definitions/" + t}

    def model(self, name):
        if name in self.definitions:
            return
        cls = getattr(k8s, name)
        self.definitions[name] = None  # placeholder: recursion stops here
        props = {}
        for attr, t in cls.openapi_types.items():
            s = self.type_schema(t)
            enum = ENUMS.get(f"{name}.{attr}")
            if enum:
                s = dict(s, enum=enum)
            props[cls.attribute_map[attr]] = s
        schema = {"type": "object", "properties": props, "additionalProperties": False}
        req = [cls.attribute_map[a] for a in required_attrs(cls)]
        if req:
            schema["required"] = req
        self.definitions[name] = schema


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    version = importlib.metadata.version("kubernetes")
    for fname, api_version, kind, model in KINDS:
        b = Builder()
        b.model(model)
        top = dict(b.definitions[model])
        top["properties"] = dict(top["properties"],
                                 apiVersion={"type": "string", "enum": [api_version]},
                                 kind={"type": "string", "enum": [kind]})
        top["required"] = sorted(set(top.get("required", [])) | {"apiVersion", "kind",
                                                                   "metadata"})
        defs = {k: v for k, v in b.definitions.items() if k != model}
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$comment": (f"{api_version} {kind}: generated by deploy/k8s/schemas/generate.py from "
                         f"python3-kubernetes {version} (Debian 12), Kubernetes API 1.22"),
            **top,
            "definitions": dict(sorted(defs.items())),
        }
        with open(os.path.join(here, fname), "w") as f:
            json.dump(schema, f, indent=1, sort_keys=False)
            f.write("\n")
        print(f"{fname}: {len(defs) + 1} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
