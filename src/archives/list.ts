// The images of one archive as `list` prints them: a name and tag a client can pull, the digest,
// the bytes the image uses inside the archive, and the file.
import { stat } from "node:fs/promises";
import { MAX_MANIFEST_BYTES } from "../oci/mediatypes.ts";
import { childrenOf } from "../oci/walk.ts";
import { annotationTag } from "./candidates.ts";
import type { ArchiveIndex } from "./layout.ts";

export interface ArchiveListedImage {
  /** The name the file gives: `<name>` of `<name>.oci` or `<name>:<reference>.oci`. */
  image: string;
  /** The ref.name annotation's tag, else the reference in the file name, else `<any>` (one image) or `<none>`. */
  tag: string;
  digest: string;
  mediaType: string;
  /** Bytes of the manifests, configs and layers the image uses, as held in the archive. */
  size: number;
  /** The file's modification time. */
  created: string;
  /** The archive file. */
  archive: string;
}

/** The size of an image inside an archive: its manifest(s) and the blobs they name that the archive holds. */
async function sizeOf(idx: ArchiveIndex, digest: string, seen: Set<string>): Promise<number> {
  const at = idx.blobs.get(digest);
  if (!at || seen.has(digest)) return 0;
  seen.add(digest);
  let size = at.size;
  if (at.size > MAX_MANIFEST_BYTES) return size;
  const c = childrenOf(await Bun.file(idx.path).slice(at.offset, at.offset + at.size).bytes());
  for (const m of c.manifests) size += await sizeOf(idx, m.digest, seen);
  for (const b of c.blobs) {
    const held = idx.blobs.get(b.digest);
    if (held && !seen.has(b.digest)) {
      seen.add(b.digest);
      size += held.size;
    }
  }
  return size;
}

export async function archiveImages(rel: string, abs: string, idx: ArchiveIndex): Promise<ArchiveListedImage[]> {
  const stem = rel.slice(0, -".oci".length);
  const slash = stem.lastIndexOf("/");
  const colon = stem.indexOf(":", slash + 1);
  const image = colon < 0 ? stem : stem.slice(0, colon);
  const fileRef = colon < 0 ? null : stem.slice(colon + 1);
  const created = new Date((await stat(abs)).mtimeMs).toISOString();
  const rows: ArchiveListedImage[] = [];
  for (const img of idx.images) {
    const tag = img.refName !== null ? annotationTag(img.refName) : idx.images.length === 1 ? fileRef ?? "<any>" : "<none>";
    rows.push({
      image, tag, digest: img.digest, mediaType: img.mediaType,
      size: await sizeOf(idx, img.digest, new Set()), created, archive: abs,
    });
  }
  return rows;
}
