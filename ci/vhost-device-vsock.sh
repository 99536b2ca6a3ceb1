#!/usr/bin/env bash
# Builds vhost-device-vsock, the user-space vsock device QEMU's nitro-enclave machine talks to,
# and prints the path of the binary on stdout; everything else goes to stderr.
#
# It runs in "hybrid vsock" mode: the host side is Unix sockets (connect to the socket, send
# `CONNECT <port>\n`; guest connections to port P land on `<socket>_P`). Version 0.3.0
# forwards only packets addressed to CID 2, while a Nitro enclave's parent is CID 3 (the boot
# heartbeat and every enclave-to-parent connection go there), so we change that one condition
# to accept CID 3 too before building. Idempotent; cached in the user cache directory keyed
# by this file (which holds the pins) and the Rust compiler.
set -euo pipefail

CRATE=vhost-device-vsock
CRATE_VERSION=0.3.0
CRATE_SHA256=52ce95d81af89ad693d067c650e42df0f217addfbc96cc4820f7c62eb4a28b13
PATCH_FILE=src/thread_backend.rs
PATCH_FROM='if dst_cid != VSOCK_HOST_CID {'
PATCH_TO='if dst_cid != VSOCK_HOST_CID \&\& dst_cid != 3 {'

log() { echo "vhost-device-vsock: $*" >&2; }
die() { echo "vhost-device-vsock: error: $*" >&2; exit 1; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/enclave-https
key=$( { cat "${BASH_SOURCE[0]}"; rustc --version; } | sha256sum | cut -c1-16)
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
grep -qF "$PATCH_FROM" "$PATCH_FILE" || die "the line to change is not in $PATCH_FILE"
sed -i "s/$PATCH_FROM/$PATCH_TO/" "$PATCH_FILE"
grep -qF 'dst_cid != 3' "$PATCH_FILE" || die "patching $PATCH_FILE failed"
log "building (under a minute)"
cargo install -q --locked --path . --root "$prefix.partial" >&2
rm -rf "$prefix"
mv "$prefix.partial" "$prefix"
rm -f "$prefix/.crates.toml" "$prefix/.crates2.json"
log "built $binary"
echo "$binary"
