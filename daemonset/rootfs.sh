#!/bin/sh
# Lays out the agent image's whole filesystem in OUT from a built `runnel` binary: the image is
# `FROM scratch` plus this tree, so it holds only what the agent needs at run time.
#   /usr/local/bin/runnel                  the binary, stripped
#   the shared libraries `ldd` names       at the paths ldd prints, the loader included
#   /etc/ssl/certs/ca-certificates.crt     the CA bundle, for sinks.elasticsearch.tls.ca_file
#   /etc/passwd, /etc/group                root, and `runnel` (65532) for non-root uses
#   /etc/nsswitch.conf                     hosts from /etc/hosts, then DNS (Elasticsearch names)
#   /etc/runnel, /tmp                      mount points of the DaemonSet's volumes
# and in OUT-data/ the data dir, `runnel/` (mode 0770), which the Dockerfile's run stage copies
# to /var/lib/ with `--chown=65532:0`: owned by the `runnel` user, and writable by UID 0
# through group root (the DaemonSet's UID 0 has no CAP_DAC_OVERRIDE). Everything else is
# root's and read-only to other users: a non-root agent must not be able to replace its own
# binary or libraries.
# Used by daemonset/image.sh (on the host) and by the build stage of daemonset/Dockerfile, so
# both images have the same layout.
#
#   daemonset/rootfs.sh BINARY OUT          (writes OUT/ and OUT-data/)
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUT" >&2
  exit 2
fi
bin=$1
out=$2
fail() {
  echo "daemonset/rootfs.sh: $*" >&2
  exit 1
}
[ -x "$bin" ] || fail "$bin is not an executable"
[ ! -e "$out" ] || fail "$out exists; give a new directory"
[ ! -e "$out-data" ] || fail "$out-data exists; give a new directory"
CA=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA" ] || fail "$CA is missing (Debian: apt-get install ca-certificates)"

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/etc/runnel" "$out/var/lib" "$out/tmp" \
  "$out-data/runnel"
chmod 1777 "$out/tmp"
chmod 0770 "$out-data/runnel"
cp "$bin" "$out/usr/local/bin/runnel"
strip "$out/usr/local/bin/runnel"

# ldd's lines: "name => /path (0x...)", "/path/ld-linux.so (0x...)", "linux-vdso.so.1 (0x...)"
# (in the kernel, not a file) and "name => not found".
deps=$(ldd "$bin") || fail "ldd $bin failed (a static binary needs no libraries: build it dynamic or drop this step)"
if echo "$deps" | grep -q 'not found'; then
  fail "ldd cannot resolve every library of $bin:
$deps"
fi
libs=$(echo "$deps" | sed -n -e 's|.*=> \(/[^ ]*\) .*|\1|p' -e 's|^[[:space:]]*\(/[^ ]*\) .*|\1|p')
[ -n "$libs" ] || fail "ldd named no library for $bin:
$deps"
for lib in $libs; do
  mkdir -p "$out$(dirname "$lib")"
  # -L: the file itself, under the name the binary (or the loader path) asks for.
  cp -L "$lib" "$out$lib"
done

cp -L "$CA" "$out$CA"
cat >"$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
runnel:x:65532:65532:runnel:/nonexistent:/sbin/nologin
PASSWD
cat >"$out/etc/group" <<'GROUP'
root:x:0:
runnel:x:65532:
GROUP
echo 'hosts: files dns' >"$out/etc/nsswitch.conf"
echo "daemonset/rootfs.sh: $out: runnel, $(echo "$libs" | wc -w) libraries ($(echo $libs)), CA bundle, passwd/group; $out-data: the data dir"
