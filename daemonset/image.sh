#!/usr/bin/env bash
# Builds the agent image with the local Docker engine and no registry: no base image is pulled.
# A release build of `runnel` on this machine, laid out by daemonset/rootfs.sh (the binary, the
# libraries ldd names, the CA bundle, passwd/group) and wrapped by the run stage of
# daemonset/Dockerfile, `FROM scratch`. The host's glibc is the one the binary was linked
# against, so the libraries copied are the ones it runs with.
#
#   daemonset/image.sh [TAG]        (default: runnel:<workspace version>)
#
# Prints the image id last. RUNNEL_IMAGE_SKIP_BUILD=1 uses target/release/runnel as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tag=${1:-runnel:${version:?no version in Cargo.toml}}

fail() {
  echo "daemonset/image.sh: FAIL: $*" >&2
  exit 1
}
docker info >/dev/null 2>&1 || fail "\`docker info\` fails: this needs the docker CLI and a running engine"

if [ "${RUNNEL_IMAGE_SKIP_BUILD:-0}" != 1 ]; then
  echo "daemonset/image.sh: cargo build --release --locked -p runnel-agent --bin runnel"
  cargo build --release --locked -p runnel-agent --bin runnel
fi
bin=target/release/runnel
[ -x "$bin" ] || fail "$bin is missing"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
daemonset/rootfs.sh "$bin" "$ctx/rootfs"

# The run stage of the multi-stage Dockerfile, with the tree from the context instead of the
# build stage: one definition of the runtime image.
sed -n '/^# --- run ---/,$p' daemonset/Dockerfile \
  | sed -e 's|^COPY --from=build /rootfs/ /$|COPY rootfs/ /|' \
    -e 's|^COPY --from=build --chown=65532:0 /rootfs-data/ /var/lib/$|COPY --chown=65532:0 rootfs-data/ /var/lib/|' \
    >"$ctx/Dockerfile"
grep -qx 'COPY rootfs/ /' "$ctx/Dockerfile" \
  || fail "daemonset/Dockerfile's run stage has no 'COPY --from=build /rootfs/ /' line to reuse"
grep -qx 'COPY --chown=65532:0 rootfs-data/ /var/lib/' "$ctx/Dockerfile" \
  || fail "daemonset/Dockerfile's run stage has no 'COPY --from=build --chown=65532:0 /rootfs-data/ /var/lib/' line to reuse"
! grep -q -- '--from=build' "$ctx/Dockerfile" \
  || fail "daemonset/Dockerfile's run stage copies from the build stage in a way image.sh does not know"
grep -q '^FROM scratch$' "$ctx/Dockerfile" || fail "daemonset/Dockerfile's run stage is not FROM scratch"

echo "daemonset/image.sh: docker build -t $tag (FROM scratch, $(du -sh "$ctx/rootfs" | cut -f1))"
docker build -q --label "org.opencontainers.image.version=$version" -t "$tag" "$ctx"
docker image inspect -f '{{.Id}} {{.Size}}' "$tag"
