#!/usr/bin/env bash
# What building the shipped `runnel` needs beyond Rust and gcc, installed from Debian when
# missing: libisal-dev, ISA-L's igzip, the sink's gzip (sinks/build.rs; a build without it
# gzips with zlib-rs at about half the speed, and the sink's tests fail saying so). Run by
# .ci/run before clippy and sourced by scripts/test.sh, which also uses its apt_install.
set -euo pipefail

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

if [ ! -f /usr/include/isa-l/igzip_lib.h ]; then
  echo "build-deps.sh: installing libisal-dev from Debian (ISA-L's igzip, the sink's gzip)" >&2
  apt_install libisal-dev
fi
