# Helpers shared by the ci/ install scripts (sourced, not run).

# install_packages PKG...: installs the Debian packages that are missing (as root), or says
# which to install (otherwise). Refreshes the package lists once if an install fails.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "ci: installing missing Debian packages: ${missing[*]}" >&2
  if [[ $(id -u) != 0 ]]; then
    echo "ci: error: not root; run: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# apt_source_download SUITE PKG=VERSION DIR: downloads a source package's files into DIR
# through a private apt configuration (a deb-src entry for SUITE on the same archive the
# machine already uses), leaving the system's apt sources untouched. Debian's mirror may
# lack the .dsc and Debian diff of a backport while the upstream .orig tarball is there, so
# a partial download is not an error here; the caller checks for the file it needs.
# debian_archive_uri: the Debian archive the machine's apt uses (e.g. http://deb.debian.org/debian).
debian_archive_uri() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || { echo "ci: error: cannot find the Debian archive apt uses" >&2; return 1; }
  echo "${uri%/}"
}

apt_source_download() {
  local suite=$1 spec=$2 dir=$3 state uri
  state=${XDG_CACHE_HOME:-$HOME/.cache}/enclave-https/apt-src
  uri=$(debian_archive_uri) || return 1
  mkdir -p "$state/parts" "$state/lists/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" "$suite" >"$state/parts/src.sources"
  local opts=(-q -o "Dir::Etc::SourceList=$state/none.list" -o "Dir::Etc::SourceParts=$state/parts"
    -o "Dir::State::Lists=$state/lists")
  : >"$state/none.list"
  apt-get "${opts[@]}" update >&2
  (cd "$dir" && apt-get "${opts[@]}" source --download-only "$spec" >&2) || true
}
