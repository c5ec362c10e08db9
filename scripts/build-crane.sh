#!/usr/bin/env bash
# Builds crane (go-containerregistry's CLI) offline from Debian's packaged Go sources and installs
# it as $CRANE (default /usr/local/bin/crane). Does nothing when it is already there.
# On bookworm the sources come from bookworm-backports, which is added to apt's sources with the
# same mirror and key as the main suite when it is missing. Needs root for the install steps.
set -euo pipefail
dest=${CRANE:-/usr/local/bin/crane}
[ -x "$dest" ] && exit 0
pkg=golang-github-google-go-containerregistry-dev
src=/usr/share/gocode/src/github.com/google/go-containerregistry/cmd/crane

if [ ! -d "$src" ] || ! command -v go >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "build-crane: $pkg and golang-go are missing; run as root (or install them)" >&2
    exit 1
  fi
  . /etc/os-release
  target=()
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    suite=bookworm-backports
    if ! grep -rqs "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      # The main suite's mirror and key: deb822 stanzas (*.sources) first, then sources.list.
      read -r uri key < <(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'BEGIN { RS = "" } {
        u = ""; k = ""; s = 0; f = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /:$/) f = $i
          else if (f == "URIs:" && u == "") u = $i
          else if (f == "Signed-By:" && k == "") k = $i
          else if (f == "Suites:" && $i == "bookworm") s = 1
        }
        if (s) { print u, k; exit }
      }') || true
      if [ -z "${uri:-}" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^[a-z]+:\/\// && $(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
      fi
      # An inline key (or none) in the main stanza: use Debian's archive keyring.
      case "${key:-}" in /*) ;; *) key=/usr/share/keyrings/debian-archive-keyring.gpg ;; esac
      uri=${uri:-http://deb.debian.org/debian}
      printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$uri" "$suite" "$key" \
        > /etc/apt/sources.list.d/bookworm-backports.sources
      echo "build-crane: added $suite ($uri) to apt's sources"
    fi
    target=("$pkg/$suite")
  else
    target=("$pkg")
  fi
  echo "build-crane: installing golang-go ${target[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go "${target[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "build-crane: building crane into $dest"
GO111MODULE=off GOPATH="$tmp:/usr/share/gocode" GOCACHE="$tmp/cache" GOFLAGS= \
  go build -o "$tmp/crane" github.com/google/go-containerregistry/cmd/crane
install -m 0755 "$tmp/crane" "$dest"
