// Ten small images of the same size and a bound that holds three and a half of them: the setting
// of the bounded-store review tests (accounting, eviction), and what the store holds on disk.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { makeImage, type Image } from "./images.ts";

export const KB = 1024;
export const images = Array.from({ length: 10 }, () => makeImage({ content: 100 * KB, uncompressed: true }));
export const imageBytes = (img: Image) => img.manifest.byteLength + img.blobs.reduce((n, b) => n + b.bytes.byteLength, 0);
export const MAX = Math.floor(imageBytes(images[0]!) * 3.5);

/** Bytes of the blobs and manifests under a directory store's root. */
export function onDisk(root: string): number {
  let n = 0;
  for (const kind of ["blobs", "manifests"]) for (const f of readdirSync(join(root, kind, "sha256"))) n += statSync(join(root, kind, "sha256", f)).size;
  return n;
}
