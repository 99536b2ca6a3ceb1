#!/usr/bin/env bash
# Builds vhost-device-vsock, the user-space vsock device QEMU's nitro-enclave machine talks to,
# and prints the path of the binary on stdout; everything else goes to stderr.
#
# It runs in "hybrid vsock" mode: the host side is Unix sockets (connect to the socket, send
# `CONNECT <port>\n`; guest connections to port P land on `<socket>_P`). Our patches
# (ci/patches/vhost-device-vsock-*.patch, applied in file-name order) make it treat CID 3, a
# Nitro enclave's parent, as the host, and keep a host connection made while the queues start
# up from killing the device. Idempotent; cached in the user cache directory keyed by this file
# (which holds the pins), the patches and the Rust compiler.
set -euo pipefail

CRATE=vhost-device-vsock
CRATE_VERSION=0.3.0
CRATE_SHA256=52ce95d81af89ad693d067c650e42df0f217addfbc96cc4820f7c62eb4a28b13

log() { echo "vhost-device-vsock: $*" >&2; }
die() { echo "vhost-device-vsock: error: $*" >&2; exit 1; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/enclave-https
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patches=("$here"/patches/vhost-device-vsock-*.patch)
[[ -f ${patches[0]} ]] || die "no patches in $here/patches"
key=$( { cat "${BASH_SOURCE[0]}" "${patches[@]}"; rustc --version; } | sha256sum | cut -c1-16)
prefix=$cache/$CRATE/$key
binary=$prefix/bin/$CRATE
if [[ -x $binary ]]; then
  log "cached $binary"
  echo "$binary"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vhost-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
# Let cargo fetch the crate (it checks it against the registry index), then check our pin.
mkdir fetch && cd fetch
printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = "=%s"\n' \
  "$CRATE" "$CRATE_VERSION" >Cargo.toml
mkdir src && echo 'fn main() {}' >src/main.rs
log "fetching $CRATE $CRATE_VERSION"
cargo fetch -q >&2
home=${CARGO_HOME:-$HOME/.cargo}
crate_file=$(ls "$home"/registry/cache/*/"$CRATE-$CRATE_VERSION.crate" | head -1)
[[ -f $crate_file ]] || die "cargo fetch did not deliver $CRATE-$CRATE_VERSION.crate"
got=$(sha256sum "$crate_file" | cut -d' ' -f1)
[[ $got == "$CRATE_SHA256" ]] || die "$crate_file has SHA-256 $got, expected $CRATE_SHA256"
cd "$work"
tar -xzf "$crate_file"
cd "$CRATE-$CRATE_VERSION"
command -v patch >/dev/null || die "patch is not installed (Debian package patch)"
for p in "${patches[@]}"; do
  log "applying $(basename "$p")"
  patch -p1 --forward --quiet <"$p" >&2 || die "$(basename "$p") does not apply"
done
log "building (under a minute)"
cargo install -q --locked --path . --root "$prefix.partial" >&2
rm -rf "$prefix"
mv "$prefix.partial" "$prefix"
rm -f "$prefix/.crates.toml" "$prefix/.crates2.json"
log "built $binary"
echo "$binary"
