#!/usr/bin/env bash
# Installs the real peers the e2e tests run against (Debian packages): the CNCF distribution
# registry, skopeo, containerd, podman, Docker Engine (docker.io), buildah, openssl, htpasswd,
# jq (image build), systemd-analyze (unit check), unzip, chromium (the status page), Ceph's radosgw
# with a mon and an OSD (a real S3 service, test/helpers/rgw.ts, which also uses python3-rados); then builds crane
# (scripts/build-crane.sh) and installs helm (scripts/get-helm.sh). Needs root; skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v containerd >/dev/null || need+=(containerd)
command -v podman >/dev/null || need+=(podman)
# Debian's dockerd and CLI by path: a newer docker CLI elsewhere on PATH does not count.
{ [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]; } || need+=(docker.io)
[ -x /usr/bin/buildah ] || need+=(buildah)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v jq >/dev/null || need+=(jq)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v unzip >/dev/null || need+=(unzip)
command -v chromium >/dev/null || need+=(chromium)
command -v radosgw >/dev/null || need+=(radosgw)
command -v ceph-mon >/dev/null || need+=(ceph-mon)
command -v ceph-osd >/dev/null || need+=(ceph-osd)
command -v radosgw-admin >/dev/null || need+=(ceph-common)
/usr/bin/python3 -c "import rados" 2>/dev/null || need+=(python3-rados)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: missing ${need[*]}; run as root (or install them) for the e2e tests" >&2
    exit 1
  fi
  echo "install-test-deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/build-crane.sh
bash scripts/get-helm.sh
