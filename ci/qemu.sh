#!/usr/bin/env bash
# Builds QEMU with the `nitro-enclave` machine (boots an EIF, emulates the NSM) and prints the
# path of its qemu-system-x86_64 on stdout; everything else goes to stderr.
#
# Debian's own qemu-system-x86 is built without libcbor, so it lacks that machine. We build
# the same upstream release Debian ships in bookworm-backports from Debian's own
# `.orig.tar.xz` (fetched with apt, checked against the SHA-256 below), configured for that
# one target, with our patches (ci/patches/qemu-*.patch: the virtio-nsm device waiting for the
# response buffer instead of breaking). Idempotent: the result is cached under the user cache
# directory, keyed by this file (which holds every pin), the patches, the Debian release and the
# compiler, so a second run returns at once and a fresh machine builds it (about 3 minutes on
# 2 cores).
set -euo pipefail

QEMU_SOURCE_PACKAGE=qemu
QEMU_SOURCE_VERSION='1:10.0.2+ds-2+deb13u1~bpo12+1'
QEMU_SOURCE_SUITE=bookworm-backports
QEMU_ORIG=qemu_10.0.2+ds.orig.tar.xz
QEMU_ORIG_SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
MESON_VERSION=1.5.0
PYCOTAP_VERSION=1.3.1
BUILD_PACKAGES=(libcbor-dev libgnutls28-dev libglib2.0-dev libfdt-dev libpixman-1-dev
  libslirp-dev ninja-build pkg-config flex bison python3-venv xz-utils gcc make
  qemu-system-data curl patch)

log() { echo "qemu: $*" >&2; }
die() { echo "qemu: error: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/enclave-https
# Our patches to QEMU, applied in file-name order; their content is part of the cache key.
patches=("$here"/patches/qemu-*.patch)
key=$( { cat "${BASH_SOURCE[0]}" "${patches[@]}"; cat /etc/debian_version; gcc --version 2>/dev/null | head -1; } \
  | sha256sum | cut -c1-16)
prefix=$cache/qemu/$key
binary=$prefix/bin/qemu-system-x86_64

if [[ -x $binary ]] && "$binary" -machine help 2>/dev/null | grep -q '^nitro-enclave'; then
  log "cached $binary"
  echo "$binary"
  exit 0
fi

# shellcheck source=ci/lib.sh
source "$here/lib.sh"
install_packages "${BUILD_PACKAGES[@]}"

downloads=$cache/downloads
mkdir -p "$downloads"
orig=$downloads/$QEMU_ORIG
if [[ ! -f $orig ]] || [[ $(sha256sum "$orig" | cut -d' ' -f1) != "$QEMU_ORIG_SHA256" ]]; then
  log "fetching the $QEMU_SOURCE_PACKAGE source ($QEMU_SOURCE_VERSION) from $QEMU_SOURCE_SUITE"
  apt_source_download "$QEMU_SOURCE_SUITE" "$QEMU_SOURCE_PACKAGE=$QEMU_SOURCE_VERSION" "$downloads"
  if [[ ! -f $orig ]]; then
    # The backport moved on (its .dsc is gone): the same upstream tarball stays in the pool as
    # long as any Debian revision of this release uses it; the SHA-256 below still decides.
    pool_url=$(debian_archive_uri)/pool/main/q/$QEMU_SOURCE_PACKAGE/$QEMU_ORIG
    log "apt-get source did not deliver $QEMU_ORIG; fetching $pool_url"
    curl -fsSL --retry 3 -o "$orig.partial" "$pool_url" && mv "$orig.partial" "$orig"
  fi
  [[ -f $orig ]] || die "neither apt-get source nor the archive's pool delivered $QEMU_ORIG"
fi
got=$(sha256sum "$orig" | cut -d' ' -f1)
[[ $got == "$QEMU_ORIG_SHA256" ]] ||
  die "$QEMU_ORIG has SHA-256 $got, expected $QEMU_ORIG_SHA256; refusing to build it"

# meson and pycotap at pinned versions, in a venv of our own (Debian's tarball strips the
# wheels QEMU bundles; bookworm's meson is too old).
venv=$cache/venv-meson-$MESON_VERSION
if [[ ! -x $venv/bin/meson ]]; then
  log "creating $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q "meson==$MESON_VERSION" "pycotap==$PYCOTAP_VERSION" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qemu-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "unpacking into $work"
tar -xJf "$orig" -C "$work" --strip-components=1
cd "$work"
for p in "${patches[@]}"; do
  log "applying $(basename "$p")"
  patch -p1 --forward --quiet <"$p" || die "$(basename "$p") does not apply"
done
# The edk2 firmware blobs were stripped from Debian's tarball; never try to unpack them.
sed -i 's/^\( *\)unpack_edk2_blobs = bzip2.found()/\1unpack_edk2_blobs = false/' meson.build
grep -q 'unpack_edk2_blobs = bzip2.found()' meson.build && die "could not turn off unpack_edk2_blobs"

log "configuring"
mkdir build && cd build
../configure --python="$venv/bin/python3" --prefix="$prefix" \
  --target-list=x86_64-softmmu --enable-libcbor --enable-gnutls --enable-fdt=system \
  --disable-docs --disable-tools --disable-install-blobs --disable-gtk --disable-sdl \
  --disable-vnc --disable-opengl --disable-spice --disable-curses --disable-werror \
  >configure.log 2>&1 || { tail -40 configure.log >&2; die "configure failed"; }
grep -q 'CONFIG_NITRO_ENCLAVE 1' x86_64-softmmu-config-devices.h ||
  die "configured without the nitro-enclave machine (libcbor or gnutls missing?)"

log "building qemu-system-x86_64 with $(nproc) jobs (about 3 minutes on 2 cores)"
start=$SECONDS
ninja -j"$(nproc)" qemu-system-x86_64 >build.log 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 15
  kill -0 "$pid" 2>/dev/null && log "$((SECONDS - start))s: $(tail -1 build.log | cut -c1-100)"
done
wait "$pid" || { tail -40 build.log >&2; die "build failed"; }

mkdir -p "$prefix.partial/bin"
cp qemu-system-x86_64 "$prefix.partial/bin/"
rm -rf "$prefix"
mv "$prefix.partial" "$prefix"
"$binary" -machine help | grep -q '^nitro-enclave' || die "built QEMU has no nitro-enclave machine"
log "built $binary in $((SECONDS - start))s"
echo "$binary"
