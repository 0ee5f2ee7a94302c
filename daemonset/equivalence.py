#!/usr/bin/env python3
"""Check that the Helm chart's default render equals the kustomize manifests in substance:
the same objects, and for each the fields that decide what runs — the DaemonSet's whole pod
spec (security context, mounts, volumes, probes, env, resources, tolerations, priority),
update strategy and pod annotations; the parsed runnel.yaml; the Service's and the
NetworkPolicy's specs. Names of labels may differ (the chart adds app.kubernetes.io/instance
and chart labels), so selectors are compared on the kustomize labels only.

    python3 daemonset/equivalence.py KUSTOMIZE_RENDER.yaml HELM_RENDER.yaml
"""
import sys

import yaml


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def diff(a, b, path=""):
    """The paths where two parsed YAML values differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: {a.get(k, '<absent>')!r} vs {b.get(k, '<absent>')!r}")
            else:
                out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def covers(selector_k, selector_h, what):
    """The chart's selector must hold every kustomize label (it may add its own)."""
    return [f"{what}: {k}={v!r} missing in the chart" for k, v in selector_k.items() if selector_h.get(k) != v]


def strip_selectors(spec, *keys):
    spec = dict(spec)
    for k in keys:
        spec.pop(k, None)
    return spec


def compare(k, h):
    problems = []
    wanted = {key for key in k if key[0] != "Namespace"}
    for key in sorted(wanted - set(h)):
        problems.append(f"{key[0]}/{key[1]}: in the kustomize manifests, not in the chart")
    for key in sorted(set(h) - set(k)):
        problems.append(f"{key[0]}/{key[1]}: in the chart, not in the kustomize manifests")
    fields = []

    def one(kind, name, pairs):
        if (kind, name) in k and (kind, name) in h:
            for label, fk, fh in pairs(k[(kind, name)], h[(kind, name)]):
                fields.append(f"{kind}.{label}")
                problems.extend(f"{kind}/{name}{d}" for d in diff(fk, fh, f" {label}"))

    def daemonset(a, b):
        ta, tb = a["spec"]["template"], b["spec"]["template"]
        problems.extend(covers(a["spec"]["selector"]["matchLabels"], b["spec"]["selector"]["matchLabels"],
                               "DaemonSet selector"))
        yield "spec.updateStrategy", a["spec"].get("updateStrategy"), b["spec"].get("updateStrategy")
        yield "template.metadata.annotations", ta["metadata"].get("annotations"), tb["metadata"].get("annotations")
        yield "template.spec", ta["spec"], tb["spec"]

    def configmap(a, b):
        yield "data[runnel.yaml] (parsed)", yaml.safe_load(a["data"]["runnel.yaml"]), yaml.safe_load(b["data"]["runnel.yaml"])
        yield "data keys", sorted(a["data"]), sorted(b["data"])

    def service(a, b):
        problems.extend(covers(a["spec"]["selector"], b["spec"]["selector"], "Service selector"))
        yield "spec", strip_selectors(a["spec"], "selector"), strip_selectors(b["spec"], "selector")

    def networkpolicy(a, b):
        problems.extend(covers(a["spec"]["podSelector"]["matchLabels"], b["spec"]["podSelector"]["matchLabels"],
                               "NetworkPolicy podSelector"))
        yield "spec", strip_selectors(a["spec"], "podSelector"), strip_selectors(b["spec"], "podSelector")

    def serviceaccount(a, b):
        yield "automountServiceAccountToken", a.get("automountServiceAccountToken"), b.get("automountServiceAccountToken")

    one("DaemonSet", "runnel", daemonset)
    one("ConfigMap", "runnel-config", configmap)
    one("Service", "runnel", service)
    one("NetworkPolicy", "runnel", networkpolicy)
    one("ServiceAccount", "runnel", serviceaccount)
    return problems, fields


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        k, h = load(sys.argv[1]), load(sys.argv[2])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        sys.exit(f"daemonset/equivalence.py: FAIL: cannot read the renders: {e}")
    problems, fields = compare(k, h)
    if problems:
        print("daemonset/equivalence.py: FAIL: the chart's render differs from the kustomize manifests:",
              file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print(f"daemonset/equivalence.py: OK: {len(h)} objects equal in substance ({', '.join(fields)})")


if __name__ == "__main__":
    main()
