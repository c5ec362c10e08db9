#!/usr/bin/env bash
# Builds the cache's own container image without a network or a Docker daemon: the compiled
# binary, the shared libraries it links (found with ldd on this machine), CA certificates and a
# non-root user 65532, written as an OCI image layout (OUT/image, tags `latest` and the
# package.json version) and an oci-archive of it (OUT/ociregistry.oci.tar, one image, named
# docker.io/library/ociregistry:VERSION for `podman load` / `ctr images import`).
# Same binary in, same digests out: files are sorted, owned by 0 (the store and home by
# 65532) and dated 1970 (or SOURCE_DATE_EPOCH).
#
#   scripts/build-image.sh [--out DIR] [--binary PATH]     (defaults: dist, dist/ociregistry)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=dist
BIN=dist/ociregistry
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --binary) BIN=$2; shift 2 ;;
    *) echo "build-image: unknown argument $1 (use --out DIR, --binary PATH)" >&2; exit 2 ;;
  esac
done
for tool in tar gzip sha256sum jq ldd; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done
if [ ! -x "$BIN" ]; then
  [ "$BIN" = dist/ociregistry ] || { echo "build-image: $BIN is not an executable" >&2; exit 1; }
  echo "build-image: $BIN is missing; building it (bun run build)"
  bun run build
fi
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -r "$CA_BUNDLE" ] || { echo "build-image: $CA_BUNDLE is missing (apt-get install ca-certificates)" >&2; exit 1; }

VERSION=$(jq -r .version package.json)
case "$(uname -m)" in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  *) echo "build-image: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
CREATED=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
STORE=/var/lib/ociregistry
UID_GID=65532

umask 022
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{etc/ssl/certs,home/nonroot,usr/local/bin,tmp,"${STORE#/}"}
install -m 0755 "$BIN" "$root/usr/local/bin/ociregistry"
# Every library ldd resolves (`libc.so.6 => /lib/.../libc.so.6`) and the loader (a bare path),
# copied to the same path with symlinks followed.
libs=$(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "build-image: ldd found no libraries in $BIN" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  chmod 0755 "$root$lib"
done
install -m 0644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' $UID_GID $UID_GID >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' $UID_GID >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/{passwd,group,nsswitch.conf}
chmod 1777 "$root/tmp"
chmod 0755 "$root/home/nonroot" "$root$STORE"

# One layer: everything owned by root, then the store and home appended owned by 65532.
tar_common=(--format=gnu --sort=name --mtime=@0 --numeric-owner)
# shellcheck disable=SC2046 # top-level names are plain directory names
tar --create --file "$work/layer.tar" "${tar_common[@]}" --owner=0 --group=0 \
  --exclude=home/nonroot --exclude="${STORE#/}" -C "$root" $(cd "$root" && LC_ALL=C ls)
tar --append --file "$work/layer.tar" "${tar_common[@]}" --owner=$UID_GID --group=$UID_GID \
  -C "$root" home/nonroot "${STORE#/}"
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"

layout=$work/image
mkdir -p "$layout/blobs/sha256"
# Moves a file into the layout's blobs; prints `sha256:<hex> <size>`.
put_blob() {
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}
DIFF_ID="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
read -r LAYER_DIGEST LAYER_SIZE < <(put_blob "$work/layer.tar.gz")

jq -cjn --arg created "$CREATED" --arg arch "$ARCH" --arg diff "$DIFF_ID" --arg version "$VERSION" \
  --arg user "$UID_GID:$UID_GID" --arg store "$STORE" '{
  created: $created, architecture: $arch, os: "linux",
  config: {
    User: $user,
    Entrypoint: ["/usr/local/bin/ociregistry", "serve"],
    ExposedPorts: {"8080/tcp": {}},
    Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
    Volumes: {($store): {}},
    WorkingDir: "/",
    Labels: {
      "org.opencontainers.image.title": "ociregistry",
      "org.opencontainers.image.description": "Pull-through OCI registry cache",
      "org.opencontainers.image.version": $version
    }
  },
  rootfs: {type: "layers", diff_ids: [$diff]},
  history: [{created: $created, created_by: "scripts/build-image.sh"}]
}' >"$work/config.json"
read -r CONFIG_DIGEST CONFIG_SIZE < <(put_blob "$work/config.json")

jq -cjn --arg cd "$CONFIG_DIGEST" --argjson cs "$CONFIG_SIZE" --arg ld "$LAYER_DIGEST" --argjson ls "$LAYER_SIZE" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
}' >"$work/manifest.json"
read -r MANIFEST_DIGEST MANIFEST_SIZE < <(put_blob "$work/manifest.json")

printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
# index.json listing the manifest once per name; $names is a JSON array of annotation objects.
write_index() {
  jq -cjn --arg d "$MANIFEST_DIGEST" --argjson s "$MANIFEST_SIZE" --arg arch "$ARCH" --argjson names "$2" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [$names[] | {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
      platform: {architecture: $arch, os: "linux"}, annotations: .}]
  }' >"$1"
}
write_index "$layout/index.json" "$(jq -cn --arg v "$VERSION" \
  '[{"org.opencontainers.image.ref.name": "latest"}, {"org.opencontainers.image.ref.name": $v}]')"

# The archive holds one image (skopeo and podman read an unnamed oci-archive only then).
archive=$work/archive
mkdir -p "$archive"
cp -al "$layout/blobs" "$archive/blobs"
cp "$layout/oci-layout" "$archive/oci-layout"
write_index "$archive/index.json" "$(jq -cn --arg v "$VERSION" \
  '[{"org.opencontainers.image.ref.name": $v, "io.containerd.image.name": "docker.io/library/ociregistry:\($v)"}]')"

mkdir -p "$OUT"
rm -rf "$OUT/image" "$OUT/ociregistry.oci.tar"
tar --create --file "$OUT/ociregistry.oci.tar" "${tar_common[@]}" --owner=0 --group=0 -C "$archive" blobs index.json oci-layout
mv "$layout" "$OUT/image"
echo "build-image: $OUT/image (latest, $VERSION) and $OUT/ociregistry.oci.tar"
echo "build-image: manifest $MANIFEST_DIGEST, layer $LAYER_SIZE bytes compressed, $(stat -c %s "$work/layer.tar") uncompressed"
