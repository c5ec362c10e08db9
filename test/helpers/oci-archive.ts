// OCI image layouts and `.oci` archives of fixture images, built without any tool: a directory
// (for skopeo to read as `oci:DIR:REF`) or a ustar archive in memory, as `oci-archive:` writes.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { allBlobs, tarHeader, type Image } from "./images.ts";

export interface LayoutImage {
  image: Image;
  /** Its org.opencontainers.image.ref.name annotation; none when absent. */
  ref?: string;
}

export { tarHeader };

/** A ustar archive of these files, with its end marker. */
export function tarFiles(files: Array<{ name: string; bytes: Uint8Array }>): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(tarHeader(f.name, f.bytes.byteLength), f.bytes, new Uint8Array((512 - (f.bytes.byteLength % 512)) % 512));
  }
  parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** The files of an OCI layout holding these images (blobs, index.json, oci-layout). */
export function layoutFiles(images: LayoutImage[]): Array<{ name: string; bytes: Uint8Array }> {
  const blobs = new Map<string, Uint8Array>();
  const walk = (img: Image) => {
    blobs.set(img.digest, img.manifest);
    for (const c of img.children) walk(c);
  };
  for (const { image } of images) {
    walk(image);
    for (const b of allBlobs(image)) blobs.set(b.digest, b.bytes);
  }
  const index = {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: images.map(({ image, ref }) => ({
      mediaType: image.mediaType, digest: image.digest, size: image.manifest.byteLength,
      ...(ref ? { annotations: { "org.opencontainers.image.ref.name": ref } } : {}),
    })),
  };
  const enc = new TextEncoder();
  return [
    ...[...blobs].map(([d, bytes]) => ({ name: `blobs/sha256/${d.slice(7)}`, bytes })),
    { name: "index.json", bytes: enc.encode(JSON.stringify(index)) },
    { name: "oci-layout", bytes: enc.encode('{"imageLayoutVersion":"1.0.0"}') },
  ];
}

/** An `.oci` archive (uncompressed tar of an OCI layout) of these images. */
export function ociArchive(images: LayoutImage[]): Uint8Array<ArrayBuffer> {
  return tarFiles(layoutFiles(images));
}

/** Writes an OCI layout directory (what `skopeo copy oci:DIR:REF` reads). */
export function writeLayout(dir: string, images: LayoutImage[]) {
  for (const f of layoutFiles(images)) {
    mkdirSync(join(dir, f.name, ".."), { recursive: true });
    writeFileSync(join(dir, f.name), f.bytes);
  }
}
