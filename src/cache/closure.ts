// What a set of manifests needs: the manifests themselves, an index's platform manifests, and
// every config and layer blob they reference (prune keeps it, export writes it); and whether an
// image is complete in the store. References that are not digests are reported, never followed.
import { childrenOf } from "../oci/walk.ts";
import type { Store } from "../store/types.ts";
import { mapBounded } from "./bounded.ts";

export interface Closure {
  manifests: Set<string>;
  blobs: Set<string>;
  /** `<manifest digest>: <reference as written>` for every child reference that is not a digest. */
  invalid: string[];
}

/** Platform manifests of one index checked at once. */
const CHECK_CONCURRENCY = 8;

/** Follows manifests from `roots`; manifests that are not stored are listed but not followed. */
export async function closureOf(store: Store, roots: Iterable<string>): Promise<Closure> {
  const out: Closure = { manifests: new Set(), blobs: new Set(), invalid: [] };
  const queue = [...roots];
  while (queue.length) {
    const digest = queue.pop()!;
    if (out.manifests.has(digest)) continue;
    out.manifests.add(digest);
    const bytes = await store.readManifest(digest);
    if (!bytes) continue;
    const c = childrenOf(bytes);
    for (const m of c.manifests) queue.push(m.digest);
    for (const b of c.blobs) out.blobs.add(b.digest);
    for (const i of c.invalid) out.invalid.push(`${digest}: ${JSON.stringify(i)}`);
  }
  return out;
}

/** What an image lacks, in words for a report; `manifestAbsent` when its own manifest is not stored. */
export type Missing = string[] & { readonly manifestAbsent?: true };

/**
 * What an image lacks to be pulled from the store: its manifest, an image manifest's config or
 * layers, or (for an index) every platform manifest. Platforms nobody pulled are not missing as
 * long as one platform is complete. Empty when the image is complete.
 */
export async function missingContent(store: Store, digest: string, memo = new Map<string, Promise<Missing>>()): Promise<Missing> {
  let p = memo.get(digest);
  if (!p) {
    p = (async (): Promise<Missing> => {
      const bytes = await store.readManifest(digest);
      if (!bytes) return Object.assign([`manifest ${digest}`], { manifestAbsent: true as const });
      const c = childrenOf(bytes);
      const missing: string[] = [];
      if (c.manifests.length) {
        // A few at a time: the index may list thousands (and the store may be remote).
        const platforms = await mapBounded(c.manifests, CHECK_CONCURRENCY, (m) => missingContent(store, m.digest, memo));
        const pulled = platforms.filter((m) => !m.manifestAbsent);
        if (pulled.length === 0) missing.push(`every platform manifest of ${digest}`);
        else if (!pulled.some((m) => m.length === 0)) missing.push(...pulled.flat());
      }
      for (const b of c.blobs) if (!(await store.contentInfo("blobs", b.digest))) missing.push(`blob ${b.digest}`);
      return missing;
    })();
    memo.set(digest, p);
  }
  return p;
}
