// The one walk over a manifest's children: an index's platform manifests, an image's config and
// layers. Whatever does not name a valid digest is reported, never followed: a manifest's bytes
// come from an upstream and may say anything.
import { isDigest } from "./digest.ts";
import { parseManifest, type ManifestShape, type Platform } from "./mediatypes.ts";

export interface ChildRef {
  digest: string;
  /** Declared size, or null when it is not a whole number of bytes. */
  size: number | null;
  platform?: Platform;
}

export interface Children {
  /** Platform manifests of an index. */
  manifests: ChildRef[];
  /** Config and layers of an image manifest. */
  blobs: ChildRef[];
  /** References that are not valid digests, as written (cut to 100 characters). */
  invalid: string[];
}

function refOf(d: unknown, invalid: string[]): ChildRef | null {
  const x = d as { digest?: unknown; size?: unknown; platform?: unknown } | null;
  const digest = x?.digest;
  if (typeof digest !== "string" || !isDigest(digest)) {
    invalid.push(String(typeof digest === "string" ? digest : JSON.stringify(digest ?? null)).slice(0, 100));
    return null;
  }
  const size = typeof x!.size === "number" && Number.isSafeInteger(x!.size) && x!.size >= 0 ? x!.size : null;
  const p = x!.platform as Platform | undefined;
  const platform = p && typeof p.os === "string" && typeof p.architecture === "string" ? p : undefined;
  return { digest, size, ...(platform ? { platform } : {}) };
}

/** The children a manifest (bytes or parsed) names; an unreadable manifest has none. */
export function childrenOf(manifest: Uint8Array | ManifestShape | null): Children {
  const m = manifest instanceof Uint8Array ? parseManifest(manifest) : manifest;
  const out: Children = { manifests: [], blobs: [], invalid: [] };
  if (!m) return out;
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  for (const c of list(m.manifests)) {
    const r = refOf(c, out.invalid);
    if (r) out.manifests.push(r);
  }
  if (m.config !== undefined && m.config !== null) {
    const r = refOf(m.config, out.invalid);
    if (r) out.blobs.push(r);
  }
  for (const l of list(m.layers)) {
    const r = refOf(l, out.invalid);
    if (r) out.blobs.push(r);
  }
  return out;
}
