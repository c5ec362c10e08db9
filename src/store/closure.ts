// What a set of manifests needs: the manifests themselves, an index's platform manifests, and
// every config and layer blob they reference. Used by prune (what to keep) and export (what to write).
import { parseManifest } from "../oci/mediatypes.ts";
import type { Store } from "./types.ts";

export interface Closure {
  manifests: Set<string>;
  blobs: Set<string>;
}

/** Follows manifests from `roots`; manifests that are not stored are listed but not followed. */
export async function closureOf(store: Store, roots: Iterable<string>): Promise<Closure> {
  const out: Closure = { manifests: new Set(), blobs: new Set() };
  const queue = [...roots];
  while (queue.length) {
    const digest = queue.pop()!;
    if (out.manifests.has(digest)) continue;
    out.manifests.add(digest);
    const bytes = await store.readManifest(digest);
    const m = bytes ? parseManifest(bytes) : null;
    if (!m) continue;
    for (const child of m.manifests ?? []) if (typeof child?.digest === "string") queue.push(child.digest);
    if (typeof m.config?.digest === "string") out.blobs.add(m.config.digest);
    for (const l of m.layers ?? []) if (typeof l?.digest === "string") out.blobs.add(l.digest);
  }
  return out;
}
