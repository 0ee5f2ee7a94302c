#!/usr/bin/env python3
"""Check rendered Runnel manifests keep the settings README.md explains: the objects are the
expected ones, the pod's security context, host accesses, mounts, probes and env are the
documented ones. With --runnel, each ConfigMap's runnel.yaml must also pass
`runnel check-config`.

    python3 daemonset/validate.py [--runnel path/to/runnel] [--dockerfile FILE] [RENDER.yaml ...]

Without RENDER files it checks the kustomize sources in daemonset/*.yaml, and that the
multi-stage Dockerfile's build stage COPYs every workspace member of Cargo.toml (cargo cannot
load the workspace without each member's manifest; the Dockerfile is not built here: that
needs a registry). daemonset/check.sh passes it the `kubectl kustomize` and `helm template`
renders.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import tomllib

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
READ_ONLY = ("/etc/runnel", "/etc/runnel/tokens", "/var/log", "/var/lib/docker/containers",
             "/host/sys/fs/cgroup", "/host/proc")


class Invalid(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Invalid(msg)


def load(paths):
    """Objects by kind, from multi-document YAML files."""
    objs = {}
    for path in paths:
        try:
            docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            raise Invalid(f"{path}: {e}")
        for d in docs:
            check(isinstance(d, dict) and "kind" in d, f"{path}: a document without a kind")
            objs.setdefault(d["kind"], []).append(d)
    return objs


def check_pod(ds):
    strategy = ds["spec"].get("updateStrategy", {})
    check(strategy.get("rollingUpdate", {}).get("maxUnavailable") == "10%",
          f"the rollout must take at most 10% of the nodes at a time: {strategy}")
    pod = ds["spec"]["template"]["spec"]
    check(pod.get("hostPID") is True, "hostPID must be true (cgroup.procs → /proc mapping)")
    check({"operator": "Exists"} in pod.get("tolerations", []), "the DaemonSet must tolerate every taint")
    check(pod.get("priorityClassName") == "system-node-critical", "priorityClassName must be system-node-critical")
    check(pod.get("automountServiceAccountToken") is False, "the ServiceAccount token must not be mounted")
    check(not pod.get("hostNetwork"), "no hostNetwork: the NetworkPolicy must apply to the agent")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    caps = sc["capabilities"]
    check(caps.get("drop") == ["ALL"] and sorted(caps.get("add", [])) == ["DAC_READ_SEARCH", "SYS_PTRACE"],
          f"capabilities must be drop ALL + DAC_READ_SEARCH, SYS_PTRACE: {caps}")
    check(not sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False,
          "the container must not be privileged nor allow privilege escalation")
    check(sc.get("readOnlyRootFilesystem") is True, "the root filesystem must be read-only")
    check(sc.get("runAsUser") == 0,
          "runAsUser must be 0: added capabilities reach the effective set only for UID 0")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp must be RuntimeDefault")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in READ_ONLY:
        check(mounts.get(path, {}).get("readOnly") is True, f"{path} must be mounted read-only")
    check("/var/lib/runnel" in mounts and not mounts["/var/lib/runnel"].get("readOnly"),
          "/var/lib/runnel (data_dir) must be mounted writable")
    check(not any("subPath" in m for m in c["volumeMounts"]),
          "no subPath mounts: a ConfigMap or Secret behind subPath never updates")
    volumes = {v["name"]: v for v in pod["volumes"]}
    for v in pod["volumes"]:
        host = v.get("hostPath", {}).get("path", "")
        check("docker.sock" not in host and host.rstrip("/") not in ("/var/run", "/run", "/"),
              f"volume {v['name']} mounts {host}: the Docker socket is root-equivalent and the "
              "DaemonSet must not mount it (inputs.docker.api is for plain Docker hosts)")
    tokens = volumes[mounts["/etc/runnel/tokens"]["name"]].get("secret", {})
    check(tokens.get("optional") is True, "the tokens Secret must be optional: the agent runs without it")
    env = {e["name"]: e for e in c.get("env", [])}
    check(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
          "NODE_NAME must come from the downward API (spec.nodeName)")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
          "probes must be /healthz (liveness) and /readyz (readiness)")
    check("memory" in c["resources"].get("limits", {}), "a memory limit is required")
    check("cpu" not in c["resources"].get("limits", {}), "no CPU limit: it throttles catch-up after a burst")
    ann = ds["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true", "prometheus scrape annotations missing")
    port = next(pt["containerPort"] for pt in c["ports"] if pt["name"] == "http")
    check(ann.get("prometheus.io/port") == str(port),
          f"prometheus.io/port {ann.get('prometheus.io/port')!r} is not the http port {port}")


def check_config(cm, runnel):
    text = cm["data"]["runnel.yaml"]
    conf = yaml.safe_load(text)
    check(isinstance(conf, dict), "runnel.yaml is not a mapping")
    check(conf.get("node_name") == "${NODE_NAME}", "node_name must be ${NODE_NAME}")
    for key in ("data_dir", "inputs", "index", "http", "metrics", "sinks"):
        check(key in conf, f"runnel.yaml lacks {key}")
    if runnel:
        with tempfile.TemporaryDirectory() as d:
            cfg = pathlib.Path(d) / "runnel.yaml"
            cfg.write_text(text)
            env = dict(os.environ, NODE_NAME="validate-node")
            r = subprocess.run([runnel, "check-config", str(cfg)], env=env, capture_output=True, text=True)
            check(r.returncode == 0, f"runnel check-config rejected the ConfigMap's runnel.yaml:\n{r.stdout}{r.stderr}")


def validate(objs, runnel, sources):
    want = ["ServiceAccount", "ConfigMap", "DaemonSet", "Service", "NetworkPolicy"]
    if sources:
        want += ["Namespace", "Kustomization"]
    for kind in want:
        check(kind in objs, f"no {kind}")
    check("ClusterRole" not in objs and "ClusterRoleBinding" not in objs,
          "a ClusterRole is present but the agent does not use the API server")
    (ds,) = objs["DaemonSet"]
    check_pod(ds)
    (cm,) = objs["ConfigMap"]
    check_config(cm, runnel)
    (np,) = objs["NetworkPolicy"]
    check(np["spec"].get("policyTypes") == ["Ingress"] and np["spec"].get("ingress"),
          "the NetworkPolicy must restrict ingress and admit the scraper and the API clients")
    (svc,) = objs["Service"]
    check(svc["spec"].get("clusterIP") == "None", "the Service must be headless (one target per agent)")
    # kubernetes-validate has no schema for this CRD: check what makes it scrape the agents.
    for sm in objs.get("ServiceMonitor", []):
        selector = sm["spec"]["selector"]["matchLabels"]
        labels = svc["metadata"].get("labels", {})
        check(all(labels.get(k) == v for k, v in selector.items()),
              f"the ServiceMonitor's selector {selector} does not select the Service (labels {labels})")
        check(sm["spec"].get("namespaceSelector", {}).get("matchNames") == [svc["metadata"]["namespace"]],
              "the ServiceMonitor must look in the Service's namespace")
        ports = {pt["name"] for pt in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            check(ep.get("port") in ports and ep.get("path") == "/metrics",
                  f"a ServiceMonitor endpoint must scrape /metrics on a Service port {sorted(ports)}: {ep}")


def check_dockerfile(dockerfile):
    """Every workspace member (root Cargo.toml) is COPYed into the build stage at its path."""
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    text = pathlib.Path(dockerfile).read_text()
    build = text.split("# --- run ---")[0]
    copied = set()
    for line in build.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        srcs = [w for w in words[1:-1] if not w.startswith("--")]
        dest = words[-1].removeprefix("./").rstrip("/")
        if srcs == ["."]:
            copied.update(members)
        for src in srcs:
            src = src.removeprefix("./").rstrip("/")
            # `COPY member ./member`: the directory lands at its own path.
            if dest in (src, f"/src/{src}"):
                copied.add(src)
    run = text.split("# --- run ---")[-1]
    check("COPY --from=build --chown=65532:0 /rootfs-data/ /var/lib/" in run,
          f"{dockerfile}: the run stage must copy the data dir owned by runnel (65532) and group root "
          "(COPY --from=build --chown=65532:0 /rootfs-data/ /var/lib/)")
    missing = [m for m in members if m not in copied]
    check(not missing, f"{dockerfile}: the build stage does not COPY the workspace member(s) "
          f"{missing} of Cargo.toml (`COPY <member> ./<member>`): cargo cannot load the workspace")
    return members


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runnel", help="a runnel binary: run `check-config` on each ConfigMap's runnel.yaml")
    ap.add_argument("--dockerfile", default=str(HERE / "Dockerfile"),
                    help="the multi-stage Dockerfile to check (sources mode only)")
    ap.add_argument("renders", nargs="*", help="rendered manifests (default: daemonset/*.yaml)")
    args = ap.parse_args()
    sets = [(r, [r]) for r in args.renders] or [("daemonset/*.yaml", sorted(HERE.glob("*.yaml")))]
    for name, paths in sets:
        try:
            objs = load(paths)
            validate(objs, args.runnel, sources=not args.renders)
        except Invalid as e:
            print(f"daemonset/validate.py: FAIL: {name}: {e}", file=sys.stderr)
            sys.exit(1)
        checked = " (runnel check-config passed)" if args.runnel else ""
        print(f"daemonset/validate.py: OK: {name}: {sum(len(v) for v in objs.values())} objects{checked}")
    if not args.renders:
        try:
            members = check_dockerfile(args.dockerfile)
        except Invalid as e:
            print(f"daemonset/validate.py: FAIL: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"daemonset/validate.py: OK: {args.dockerfile} COPYs every workspace member {members}")


if __name__ == "__main__":
    main()
