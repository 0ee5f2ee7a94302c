#!/usr/bin/env bash
# Checks the Kubernetes manifests and the Helm chart with the real tools (installed by
# daemonset/tools.sh into ./.venv):
#   1. helm lint --strict on the chart;
#   2. helm template (default values) and kubectl kustomize daemonset;
#   3. kubernetes-validate --strict against Kubernetes 1.34.0 on both renders, and on a chart
#      render with every option turned on;
#   4. validate.py on both renders (the documented security settings, no Docker socket), with
#      `runnel check-config` on each ConfigMap's runnel.yaml, and on the sources: the
#      Dockerfile COPYs every workspace member (a Dockerfile without one must fail);
#   5. equivalence.py: the chart's default render equals the kustomize manifests in substance,
#      and a render with a changed value is caught (so the comparison can fail).
#
#   daemonset/check.sh [RUNNEL_BIN]     (default: target/debug/runnel)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNNEL_BIN=${1:-target/debug/runnel}
K8S_VERSION=1.34.0
BIN=.venv/bin
for tool in helm kubectl kubernetes-validate python; do
  if [ ! -x "$BIN/$tool" ]; then
    echo "daemonset/check.sh: FAIL: $BIN/$tool is missing; run daemonset/tools.sh first" >&2
    exit 1
  fi
done
if [ ! -x "$RUNNEL_BIN" ]; then
  echo "daemonset/check.sh: FAIL: $RUNNEL_BIN is missing; build it first (cargo build -p runnel-agent)" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Helm's caches and settings in the temporary directory, not in $HOME.
export HELM_CACHE_HOME=$out/helm/cache HELM_CONFIG_HOME=$out/helm/config HELM_DATA_HOME=$out/helm/data

step() { echo "== daemonset/check.sh: $*"; }

step "helm lint --strict daemonset/chart"
"$BIN/helm" lint --strict daemonset/chart

step "helm template runnel daemonset/chart --namespace runnel"
"$BIN/helm" template runnel daemonset/chart --namespace runnel >"$out/chart.yaml"
step "kubectl kustomize daemonset"
"$BIN/kubectl" kustomize daemonset >"$out/kustomize.yaml"
# Every option on: the ServiceMonitor, extra env, volumes and mounts, another listen port.
"$BIN/helm" template runnel daemonset/chart --namespace runnel \
  --set serviceMonitor.enabled=true --set config.http.listen=0.0.0.0:2021 \
  --set-json 'extraEnv=[{"name":"RUNNEL_EXTRA","value":"1"}]' \
  --set-json 'extraVolumes=[{"name":"es-ca","secret":{"secretName":"es-ca"}}]' \
  --set-json 'extraVolumeMounts=[{"name":"es-ca","mountPath":"/etc/runnel-es-ca","readOnly":true}]' \
  >"$out/chart-all.yaml"
grep -q 'containerPort: 2021' "$out/chart-all.yaml" \
  || { echo "daemonset/check.sh: FAIL: containerPort does not follow config.http.listen" >&2; exit 1; }

for f in kustomize chart chart-all; do
  step "kubernetes-validate --strict -k $K8S_VERSION ($f render)"
  "$BIN/kubernetes-validate" --strict -k "$K8S_VERSION" "$out/$f.yaml"
done

step "validate.py --runnel $RUNNEL_BIN (sources; kustomize, chart and chart-all renders)"
"$BIN/python" daemonset/validate.py --runnel "$RUNNEL_BIN"
"$BIN/python" daemonset/validate.py --runnel "$RUNNEL_BIN" "$out/kustomize.yaml" "$out/chart.yaml"

"$BIN/python" daemonset/validate.py --runnel "$RUNNEL_BIN" "$out/chart-all.yaml"
# The Dockerfile check can fail: a build stage without one workspace member is caught.
grep -v '^COPY tests/chaos ' daemonset/Dockerfile >"$out/Dockerfile.missing"
if "$BIN/python" daemonset/validate.py --dockerfile "$out/Dockerfile.missing" 2>"$out/dockerfile.err" >/dev/null; then
  echo "daemonset/check.sh: FAIL: validate.py did not notice a Dockerfile without tests/chaos" >&2
  exit 1
fi
grep -q "tests/chaos" "$out/dockerfile.err" \
  || { echo "daemonset/check.sh: FAIL: validate.py failed without naming tests/chaos:" >&2; cat "$out/dockerfile.err" >&2; exit 1; }
echo "daemonset/check.sh: validate.py catches a missing workspace member: $(cat "$out/dockerfile.err")"

# The socket check can fail: a render that mounts the Docker socket is refused.
"$BIN/helm" template runnel daemonset/chart --namespace runnel \
  --set-json 'extraVolumes=[{"name":"sock","hostPath":{"path":"/var/run/docker.sock"}}]' \
  --set-json 'extraVolumeMounts=[{"name":"sock","mountPath":"/var/run/docker.sock","readOnly":true}]' \
  >"$out/chart-sock.yaml"
if "$BIN/python" daemonset/validate.py "$out/chart-sock.yaml" 2>"$out/sock.err" >/dev/null; then
  echo "daemonset/check.sh: FAIL: validate.py did not notice a hostPath mount of docker.sock" >&2
  exit 1
fi
grep -q "docker.sock" "$out/sock.err" \
  || { echo "daemonset/check.sh: FAIL: validate.py failed without naming docker.sock:" >&2; cat "$out/sock.err" >&2; exit 1; }
echo "daemonset/check.sh: validate.py catches a Docker socket mount: $(cat "$out/sock.err")"

step "equivalence.py (chart default render vs kustomize)"
"$BIN/python" daemonset/equivalence.py "$out/kustomize.yaml" "$out/chart.yaml"
"$BIN/helm" template runnel daemonset/chart --namespace runnel \
  --set updateStrategy.rollingUpdate.maxUnavailable=1 >"$out/chart-changed.yaml"
if "$BIN/python" daemonset/equivalence.py "$out/kustomize.yaml" "$out/chart-changed.yaml" 2>"$out/changed.err"; then
  echo "daemonset/check.sh: FAIL: equivalence.py did not notice a changed maxUnavailable" >&2
  exit 1
fi
grep -q maxUnavailable "$out/changed.err" \
  || { echo "daemonset/check.sh: FAIL: equivalence.py failed without naming maxUnavailable:" >&2; cat "$out/changed.err" >&2; exit 1; }
echo "daemonset/check.sh: equivalence.py catches a changed value: $(grep maxUnavailable "$out/changed.err" | sed 's/^ *//')"

echo "daemonset/check.sh: OK"
