#!/usr/bin/env python3
"""Check the DaemonSet manifests: every YAML file parses, the objects are the expected ones,
and the security-relevant settings are the ones README.md explains. With a `runnel` binary as
the first argument, the ConfigMap's runnel.yaml is also validated by `runnel check-config`.

    python3 daemonset/validate.py [path/to/runnel]
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent


def fail(msg):
    print(f"daemonset/validate.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def load_all():
    objs = {}
    for path in sorted(HERE.glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{path.name}: {e}")
        for d in docs:
            objs.setdefault(d.get("kind"), []).append((path.name, d))
    return objs


def main():
    objs = load_all()
    for kind in ("Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "Kustomization"):
        if kind not in objs:
            fail(f"no {kind} in daemonset/*.yaml")
    if "ClusterRole" in objs or "ClusterRoleBinding" in objs:
        fail("a ClusterRole is present but the agent does not use the API server")

    _, ds = objs["DaemonSet"][0]
    pod = ds["spec"]["template"]["spec"]
    if not pod.get("hostPID"):
        fail("hostPID must be true (cgroup.procs → /proc mapping)")
    if {"operator": "Exists"} not in pod.get("tolerations", []):
        fail("the DaemonSet must tolerate every taint")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    caps = sc["capabilities"]
    if caps.get("drop") != ["ALL"] or sorted(caps.get("add", [])) != ["DAC_READ_SEARCH", "SYS_PTRACE"]:
        fail(f"capabilities must be drop ALL + DAC_READ_SEARCH, SYS_PTRACE: {caps}")
    if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
        fail("the container must not be privileged nor allow privilege escalation")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/var/log", "/var/lib/docker/containers", "/host/sys/fs/cgroup", "/host/proc", "/etc/runnel"):
        if not mounts.get(path, {}).get("readOnly"):
            fail(f"{path} must be mounted read-only")
    if mounts.get("/var/lib/runnel", {}).get("readOnly"):
        fail("/var/lib/runnel (data_dir) must be writable")
    if any("subPath" in m for m in c["volumeMounts"]):
        fail("no subPath mounts: a ConfigMap behind subPath never updates")
    env = {e["name"]: e for e in c.get("env", [])}
    if env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "spec.nodeName":
        fail("NODE_NAME must come from the downward API (spec.nodeName)")
    if c["livenessProbe"]["httpGet"]["path"] != "/healthz" or c["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail("probes must be /healthz (liveness) and /readyz (readiness)")
    if "memory" not in c["resources"].get("limits", {}):
        fail("a memory limit is required")
    ann = ds["spec"]["template"]["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true":
        fail("prometheus scrape annotations missing")

    _, cm = objs["ConfigMap"][0]
    text = cm["data"]["runnel.yaml"]
    conf = yaml.safe_load(text)
    if conf.get("node_name") != "${NODE_NAME}":
        fail("node_name must be ${NODE_NAME}")
    for key in ("data_dir", "inputs", "index", "http", "metrics", "sinks"):
        if key not in conf:
            fail(f"runnel.yaml lacks {key}")

    if len(sys.argv) > 1:
        with tempfile.TemporaryDirectory() as d:
            cfg = pathlib.Path(d) / "runnel.yaml"
            cfg.write_text(text)
            env = dict(os.environ, NODE_NAME="validate-node")
            r = subprocess.run([sys.argv[1], "check-config", str(cfg)], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"runnel check-config rejected the ConfigMap's runnel.yaml:\n{r.stdout}{r.stderr}")
    print(f"daemonset/validate.py: OK ({sum(len(v) for v in objs.values())} objects)")


if __name__ == "__main__":
    main()
