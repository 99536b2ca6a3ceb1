#!/bin/sh
# make-image.sh SERVER DIR: builds an OCI image layout at DIR (tag "app") holding the static
# executable SERVER, with Debian's umoci and no daemon, in two layers:
#
#   1. /opt/app/server (SERVER), /opt/app/server.hardlink (a hard link to it),
#      /etc/app/app.toml (mode 0640) and /var/cache/app/build.log;
#   2. a whiteout of /var/cache/app/build.log and the symbolic link
#      /usr/local/bin/app -> ../../../opt/app/server.
#
# The image's Entrypoint is /usr/local/bin/app, through the link. `eif-builder image` turns it
# into an enclave image with examples/oci/enclave.toml; `cargo xtask test` builds, boots and
# attests it, and compares the import with `umoci unpack`. Any image made for
# `nitro-cli build-enclave` works the same way (`docker save` or `skopeo copy ... oci-archive:`).
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 SERVER DIR" >&2
    exit 2
fi
server=$1
out=$2
command -v umoci >/dev/null || { echo "make-image.sh: umoci is missing (apt-get install umoci)" >&2; exit 1; }
[ -f "$server" ] || { echo "make-image.sh: $server: no such file" >&2; exit 1; }
[ ! -e "$out" ] || { echo "make-image.sh: $out exists; remove it first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$out"
umoci new --image "$out:app"

umoci unpack --rootless --image "$out:app" "$work/one"
root=$work/one/rootfs
mkdir -p "$root/opt/app" "$root/etc/app" "$root/var/cache/app"
cp "$server" "$root/opt/app/server"
chmod 0755 "$root/opt/app/server"
ln "$root/opt/app/server" "$root/opt/app/server.hardlink"
printf 'greeting = "hello from an OCI image"\n' >"$root/etc/app/app.toml"
chmod 0640 "$root/etc/app/app.toml"
printf 'left over from the build\n' >"$root/var/cache/app/build.log"
umoci repack --image "$out:app" "$work/one"

umoci unpack --rootless --image "$out:app" "$work/two"
root=$work/two/rootfs
rm "$root/var/cache/app/build.log"
mkdir -p "$root/usr/local/bin"
ln -s ../../../opt/app/server "$root/usr/local/bin/app"
umoci repack --image "$out:app" "$work/two"

umoci config --image "$out:app" --config.entrypoint /usr/local/bin/app \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin
umoci gc --layout "$out"
