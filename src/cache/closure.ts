// What a set of manifests needs: the manifests themselves, an index's platform manifests, and
// every config and layer blob they reference (prune keeps it, export writes it); and whether an
// image is complete in the store. References that are not digests are reported, never followed.
// An image manifest's needs never change for its digest: they are kept with its tag record (the
// record's `image` summary) so that listing and pruning a large store need not read it again.
import { parseManifest } from "../oci/mediatypes.ts";
import { childrenOf, type Children } from "../oci/walk.ts";
import { summaryOf } from "../store/record.ts";
import type { ImageSummary, Store, TagRecord } from "../store/types.ts";
import { mapBounded } from "./bounded.ts";

export interface Closure {
  manifests: Set<string>;
  blobs: Set<string>;
  /** `<manifest digest>: <reference as written>` for every child reference that is not a digest. */
  invalid: string[];
}

/**
 * Where the walks learn what is stored: the store itself, or what `verify` learnt while hashing
 * every manifest (so its record pass reads none again).
 */
export interface ContentView {
  /** The children a stored manifest names; null when it is not stored. Known at once or in a promise. */
  children(digest: string): Children | null | Promise<Children | null>;
  hasBlob(digest: string): boolean | Promise<boolean>;
}

type Source = Pick<Store, "readManifest" | "contentInfo"> | ContentView;

function viewOf(source: Source): ContentView {
  if ("children" in source) return source;
  return {
    children: async (digest) => {
      const bytes = await source.readManifest(digest);
      return bytes ? childrenOf(bytes) : null;
    },
    hasBlob: async (digest) => (await source.contentInfo("blobs", digest)) !== null,
  };
}

/** Platform manifests of one index checked at once. */
const CHECK_CONCURRENCY = 8;

/**
 * The summary a tag record keeps of an image manifest: undefined for an index (its needs grow as
 * platforms are pulled), for bytes that are not a manifest, and when a reference is not a digest
 * or a size is not declared (readers then walk the manifest and report it).
 */
export function summarizeImage(digest: string, bytes: Uint8Array, shape = parseManifest(bytes)): ImageSummary | undefined {
  if (!shape || shape.manifests !== undefined) return undefined;
  const c = childrenOf(shape);
  if (c.invalid.length || c.manifests.length) return undefined;
  let size = bytes.byteLength;
  for (const b of c.blobs) {
    if (b.size === null) return undefined;
    size += b.size;
  }
  return { manifest: digest, size, blobs: c.blobs.map((b) => b.digest), sizes: c.blobs.map((b) => b.size!) };
}

/** Whether two summaries say the same (absent equals absent). */
export function sameSummary(a: ImageSummary | undefined, b: ImageSummary | undefined): boolean {
  if (!a || !b) return a === b;
  return a.manifest === b.manifest && a.size === b.size && a.blobs.length === b.blobs.length &&
    a.blobs.every((d, i) => d === b.blobs[i] && a.sizes[i] === b.sizes[i]);
}

/** Adds what one stored manifest names to a closure (the manifest itself is the caller's to add). */
export function addChildren(out: Closure, digest: string, c: Children): void {
  for (const b of c.blobs) out.blobs.add(b.digest);
  for (const i of c.invalid) out.invalid.push(`${digest}: ${JSON.stringify(i)}`);
}

/** Follows manifests from `roots`; manifests that are not stored are listed but not followed. */
export async function closureOf(source: Source, roots: Iterable<string>, into?: Closure): Promise<Closure> {
  const view = viewOf(source);
  const out: Closure = into ?? { manifests: new Set(), blobs: new Set(), invalid: [] };
  const queue = [...roots];
  while (queue.length) {
    const digest = queue.pop()!;
    if (out.manifests.has(digest)) continue;
    out.manifests.add(digest);
    // Awaited only when it is a promise: verify's walk of 100,000 manifests it already knows pays no tick each.
    const got = view.children(digest);
    const c = got instanceof Promise ? await got : got;
    if (!c) continue;
    for (const m of c.manifests) queue.push(m.digest);
    addChildren(out, digest, c);
  }
  return out;
}

/**
 * What a set of tag records needs: a record's summary stands for its manifest (read from no
 * store), the others are walked. A summarized manifest that is gone meanwhile still keeps its
 * blobs here: holding on to more is the safe side for prune.
 */
export async function closureOfRecords(source: Source, records: Iterable<Pick<TagRecord, "digest" | "image">>): Promise<Closure> {
  const out: Closure = { manifests: new Set(), blobs: new Set(), invalid: [] };
  const walk: string[] = [];
  for (const r of records) {
    const image = summaryOf(r);
    if (!image) {
      walk.push(r.digest);
      continue;
    }
    out.manifests.add(r.digest);
    for (const b of image.blobs) out.blobs.add(b);
  }
  return closureOf(source, walk, out);
}

/** What an image lacks, in words for a report; `manifestAbsent` when its own manifest is not stored. */
export type Missing = string[] & { readonly manifestAbsent?: true };

/**
 * What an image lacks to be pulled from the store: its manifest, an image manifest's config or
 * layers, or (for an index) every platform manifest. Platforms nobody pulled are not missing as
 * long as one platform is complete. Empty when the image is complete.
 */
export async function missingContent(source: Source, digest: string, memo = new Map<string, Promise<Missing>>()): Promise<Missing> {
  const view = viewOf(source);
  let p = memo.get(digest);
  if (!p) {
    p = (async (): Promise<Missing> => {
      const c = await view.children(digest);
      if (!c) return Object.assign([`manifest ${digest}`], { manifestAbsent: true as const });
      const missing: string[] = [];
      if (c.manifests.length) {
        // A few at a time: the index may list thousands (and the store may be remote).
        const platforms = await mapBounded(c.manifests, CHECK_CONCURRENCY, (m) => missingContent(view, m.digest, memo));
        const pulled = platforms.filter((m) => !m.manifestAbsent);
        if (pulled.length === 0) missing.push(`every platform manifest of ${digest}`);
        else if (!pulled.some((m) => m.length === 0)) missing.push(...pulled.flat());
      }
      for (const b of c.blobs) if (!(await view.hasBlob(b.digest))) missing.push(`blob ${b.digest}`);
      return missing;
    })();
    memo.set(digest, p);
  }
  return p;
}
