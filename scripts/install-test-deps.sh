#!/usr/bin/env bash
# Installs the real peers the e2e tests run against (Debian packages): the CNCF distribution
# registry, skopeo, containerd, podman, openssl, htpasswd, jq (image build), systemd-analyze (unit
# check), unzip; then helm (scripts/get-helm.sh). Needs root; skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v containerd >/dev/null || need+=(containerd)
command -v podman >/dev/null || need+=(podman)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v jq >/dev/null || need+=(jq)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v unzip >/dev/null || need+=(unzip)
if [ ${#need[@]} -eq 0 ] && command -v helm >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]} $(command -v helm >/dev/null || echo helm); run as root (or install them) for the e2e tests" >&2
  exit 1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/get-helm.sh
