// Benchmark images: uncompressed random layers of exact sizes, which several images may share.
import { randomBytes } from "node:crypto";
import { digestOf } from "../../src/oci/digest.ts";
import { tarOf, type Blob, type Image } from "../../test/helpers/images.ts";

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;

/** A one-file tar of exactly `bytes` bytes (header and end blocks included) of random content. */
export function randomLayer(bytes: number, name = "layer.bin"): Blob {
  const tar = tarOf(name, new Uint8Array(randomBytes(bytes - 1536)));
  return { digest: digestOf(tar), bytes: tar, mediaType: "application/vnd.oci.image.layer.v1.tar" };
}

/** An OCI image of these layers (uncompressed, so a layer's digest is its diff_id). */
export function imageOf(layers: Blob[], label = ""): Image {
  const configBytes = json({ architecture: "amd64", os: "linux", config: { Labels: { bench: label } }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) } });
  const config: Blob = { digest: digestOf(configBytes), bytes: configBytes, mediaType: "application/vnd.oci.image.config.v1+json" };
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = json({
    schemaVersion: 2, mediaType,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.byteLength },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.byteLength })),
  });
  return { mediaType, manifest, digest: digestOf(manifest), blobs: [config, ...layers], children: [] };
}
