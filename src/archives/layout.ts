// An OCI image-layout archive (a tar of `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, as
// skopeo, buildah and podman write `oci-archive:`), indexed: where each blob's bytes lie in the
// file and which images index.json names. Only index.json and oci-layout are read whole (both
// bounded); blobs are located, never read.
import { open, type FileHandle } from "node:fs/promises";
import { parseDigest } from "../oci/digest.ts";
import { MAX_MANIFEST_BYTES } from "../oci/mediatypes.ts";
import { DEFAULT_TAR_LIMITS, indexOpen, TarError, type TarEntry, type TarLimits } from "./tar.ts";

/** An image index.json names: a manifest or an index, served whole. */
export interface ArchiveImage {
  digest: string;
  mediaType: string;
  size: number;
  /** Its `org.opencontainers.image.ref.name` annotation. */
  refName: string | null;
}

export interface BlobLocation {
  offset: number;
  size: number;
}

export interface ArchiveIndex {
  /** The file version indexed: device, inode, size and modification time. */
  stamp: string;
  /** The path the file was indexed at (its real path, when the source indexed it): blobs are read there. */
  path: string;
  size: number;
  /** Every `blobs/<alg>/<hex>` entry (manifests included), by digest. */
  blobs: Map<string, BlobLocation>;
  images: ArchiveImage[];
}

/** A file that cannot be served as an OCI archive; the message says why. */
export class ArchiveError extends Error {
  override name = "ArchiveError";
}

export const REF_NAME = "org.opencontainers.image.ref.name";
const BLOB_RE = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/;

export function stampOf(st: { dev: number | bigint; ino: number | bigint; size: number | bigint; mtimeMs: number | bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

async function readAt(fh: FileHandle, entry: TarEntry, max: number, what: string): Promise<Uint8Array> {
  if (entry.size > max) throw new ArchiveError(`${what} is larger than ${max} bytes`);
  const buf = new Uint8Array(entry.size);
  let got = 0;
  while (got < entry.size) {
    const { bytesRead } = await fh.read(buf, got, entry.size - got, entry.offset + got);
    if (bytesRead === 0) throw new ArchiveError(`${what} is cut short`);
    got += bytesRead;
  }
  return buf;
}

function json(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ArchiveError(`${what} is not a JSON object`);
}

/** What kind of file this is, from its first bytes: compressed archives are refused by name. */
function compression(head: Uint8Array): string | null {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return null;
}

/** Indexes the archive at `path`; throws ArchiveError saying what is wrong with it. */
export async function readArchive(path: string, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<ArchiveIndex> {
  const fh = await open(path, "r");
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ArchiveError("is not a regular file");
    const head = new Uint8Array(4);
    await fh.read(head, 0, 4, 0);
    const compressed = compression(head);
    if (compressed) {
      throw new ArchiveError(`is ${compressed}-compressed (a .tar.${compressed === "gzip" ? "gz" : "zst"}); only uncompressed OCI archives are served, as skopeo, buildah and podman write them: decompress it (${compressed === "gzip" ? "gunzip" : "unzstd"})`);
    }
    let entries: TarEntry[];
    try {
      entries = await indexOpen(fh, st.size, limits);
    } catch (err) {
      if (err instanceof TarError) throw new ArchiveError(`is not a readable tar: ${err.message}`);
      throw err;
    }
    const blobs = new Map<string, BlobLocation>();
    let indexEntry: TarEntry | undefined;
    let layoutEntry: TarEntry | undefined;
    for (const e of entries) {
      const m = BLOB_RE.exec(e.name);
      const digest = m ? `${m[1]}:${m[2]}` : null;
      if (digest && parseDigest(digest)) blobs.set(digest, { offset: e.offset, size: e.size });
      else if (e.name === "index.json") indexEntry = e;
      else if (e.name === "oci-layout") layoutEntry = e;
    }
    if (!indexEntry) throw new ArchiveError("has no index.json: not an OCI image-layout archive");
    if (layoutEntry) {
      const layout = json(await readAt(fh, layoutEntry, 64 * 1024, "oci-layout"), "oci-layout");
      const v = layout.imageLayoutVersion;
      if (typeof v !== "string" || !v.startsWith("1.")) throw new ArchiveError(`oci-layout gives imageLayoutVersion ${JSON.stringify(v)}; only 1.x is understood`);
    }
    const index = json(await readAt(fh, indexEntry, MAX_MANIFEST_BYTES, "index.json"), "index.json");
    const list = Array.isArray(index.manifests) ? index.manifests : [];
    const images = list.map((d, i): ArchiveImage => {
      const x = (d ?? {}) as { digest?: unknown; size?: unknown; mediaType?: unknown; annotations?: Record<string, unknown> };
      const digest = typeof x.digest === "string" && parseDigest(x.digest) ? x.digest : null;
      if (!digest) throw new ArchiveError(`index.json manifests[${i}] has no valid digest`);
      const at = blobs.get(digest);
      if (!at) throw new ArchiveError(`index.json names ${digest}, which the archive does not hold`);
      if (x.size !== at.size) throw new ArchiveError(`index.json gives ${digest} ${JSON.stringify(x.size)} bytes, the archive holds ${at.size}`);
      const ref = x.annotations?.[REF_NAME];
      return { digest, size: at.size, mediaType: typeof x.mediaType === "string" ? x.mediaType : "", refName: typeof ref === "string" ? ref : null };
    });
    return { stamp: stampOf(st), path, size: st.size, blobs, images };
  } finally {
    await fh.close();
  }
}
