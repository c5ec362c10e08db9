#!/usr/bin/env bash
# Installs the real peers the e2e tests run against (Debian packages): the CNCF distribution
# registry, skopeo, containerd, podman, openssl, htpasswd. Needs root; skips what is present.
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v containerd >/dev/null || need+=(containerd)
command -v podman >/dev/null || need+=(podman)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run as root (or install them) for the e2e tests" >&2
  exit 1
fi
echo "install-test-deps: installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
