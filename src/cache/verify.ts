// Re-hashes every blob and manifest in the store, checks that every tag record points at an image
// that is complete in the store, and finds malformed references and content no record reaches.
// With `repair`, removes what is corrupt, dangling or unreadable so the next pull fetches it again,
// and writes the image summary of records that lack one or carry a wrong one. Each manifest is
// read once, to hash it: what it names is kept from then on, so the record pass reads none again.
import pLimit from "p-limit";
import { createDigester, parseDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/mediatypes.ts";
import { childrenOf, type Children } from "../oci/walk.ts";
import { recordName } from "../store/record.ts";
import type { ContentKind, ImageSummary, Store, TagRecord } from "../store/types.ts";
import { addChildren, closureOf, missingContent, sameSummary, summarizeImage, type Closure, type ContentView, type Missing } from "./closure.ts";

export interface VerifyReport {
  blobs: number;
  manifests: number;
  tags: number;
  /** `blobs sha256:…` / `manifests sha256:…` whose bytes do not match their name. */
  corrupt: string[];
  /** `upstream/repository:tag -> digest` whose manifest is not stored. */
  dangling: string[];
  /** `upstream/repository:tag: what is missing` for images whose manifest is stored but not all they need. */
  incomplete: string[];
  /** Manifest references that are not digests: `<manifest digest>: "<reference>"`. */
  invalid: string[];
  /** Tag record files that cannot be read. */
  damaged: string[];
  /** Records whose image summary is missing (written before summaries) or wrong; `repair` writes it. */
  unsummarized: number;
  /** `blobs sha256:…` / `manifests sha256:…` no record reaches (the next prune removes them once old). */
  unreferenced: string[];
  repaired: boolean;
}

async function hashMatches(content: Blob | Uint8Array, digest: string): Promise<boolean> {
  const d = parseDigest(digest);
  if (!d) return false;
  const h = createDigester(d.algorithm);
  if (content instanceof Uint8Array) h.update(content);
  else for await (const chunk of content.stream()) h.update(chunk);
  return h.digest() === digest;
}

/** What a stored manifest names, and the summary its records should carry. */
interface KnownManifest {
  children: Children;
  image: ImageSummary | undefined;
  /**
   * What an image manifest lacks, found while hashing it (every blob is hashed before any
   * manifest, and its children are then at hand, not looked up again per record); undefined for
   * an index, which the record pass walks.
   */
  lacks: Missing | undefined;
  /** A record names this image manifest: what it reaches is taken in one sweep after the record pass. */
  named?: true;
}

/** The `lacks` of every complete image: one array, never written to. */
const COMPLETE: Missing = Object.freeze([]) as unknown as Missing;

/**
 * Damage that makes `verify` fail. Incomplete images (a pull that was interrupted, a manifest
 * only inspected) and unreferenced content are reported but are not damage: the next pull
 * completes the one, the next prune removes the other.
 */
export function problemCount(r: VerifyReport): number {
  return r.corrupt.length + r.dangling.length + r.invalid.length + r.damaged.length;
}

export async function verifyStore(store: Store, opts: { repair: boolean; concurrency?: number }): Promise<VerifyReport> {
  const report: VerifyReport = {
    blobs: 0, manifests: 0, tags: 0, corrupt: [], dangling: [], incomplete: [], invalid: [], damaged: [], unsummarized: 0, unreferenced: [],
    repaired: opts.repair,
  };
  const limit = pLimit(opts.concurrency ?? 4);
  const present: Record<ContentKind, string[]> = { blobs: [], manifests: [] };
  /** What the store holds after this pass (corrupt content too, unless removed): the record pass asks this, not the store. */
  const storedBlobs = new Set<string>();
  const storedManifests = new Map<string, KnownManifest>();

  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    const jobs: Promise<void>[] = [];
    for await (const digest of store.listContent(kind)) {
      report[kind]++;
      jobs.push(limit(async () => {
        const content = kind === "blobs" ? (await store.statBlob(digest))?.file : await store.readManifest(digest);
        const intact = content !== undefined && content !== null && (await hashMatches(content, digest));
        if (intact) present[kind].push(digest);
        else report.corrupt.push(`${kind} ${digest}`);
        if (!intact && opts.repair) return await store.removeContent(kind, digest);
        if (kind === "blobs" && content) storedBlobs.add(digest);
        if (content instanceof Uint8Array) {
          const shape = parseManifest(content);
          const children = childrenOf(shape);
          const lacks = children.manifests.length ? undefined : children.blobs.filter((b) => !storedBlobs.has(b.digest)).map((b) => `blob ${b.digest}`);
          storedManifests.set(digest, { children, image: summarizeImage(digest, content, shape), lacks: lacks?.length === 0 ? COMPLETE : lacks });
        }
      }));
    }
    await Promise.all(jobs);
  }
  // Answers at once, not in a promise: the record pass asks it 100,000s of times.
  const view: ContentView = {
    children: (digest) => storedManifests.get(digest)?.children ?? null,
    hasBlob: (digest) => storedBlobs.has(digest),
  };
  /** Records' manifests that are not image manifests known here (indexes): walked after the pass. */
  const walk: string[] = [];
  const memo = new Map<string, Promise<Missing>>();
  const unsummarized: TagRecord[] = [];
  let damaged = 0;
  for await (const rec of store.allTags(() => damaged++)) {
    report.tags++;
    const name = recordName(rec);
    const known = storedManifests.get(rec.digest);
    // An image manifest's lacks are known at once (no promise per record); an index or an absent manifest is walked.
    const missing = known?.lacks ?? (await missingContent(view, rec.digest, memo));
    if (missing.manifestAbsent) {
      report.dangling.push(`${name} -> ${rec.digest}`);
      if (opts.repair) await store.removeTag(rec.upstream, rec.repository, rec.tag);
      continue;
    }
    if (known?.lacks) known.named = true;
    else walk.push(rec.digest);
    if (!sameSummary(rec.image, known?.image)) unsummarized.push(rec);
    if (missing.length) report.incomplete.push(`${name}: missing ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ` and ${missing.length - 3} more` : ""}`);
  }
  // Read every record again only when the pass above met a damaged one.
  if (damaged) {
    for await (const d of store.damagedTags()) {
      report.damaged.push(d.where);
      if (opts.repair) await d.remove();
    }
  }
  report.unsummarized = unsummarized.length;
  if (opts.repair) for (const rec of unsummarized) await writeSummary(store, rec, storedManifests.get(rec.digest)?.image);
  // The named image manifests in the order they were learnt (about the order they lie in memory:
  // far fewer cache misses than a walk in record order), then the indexes' walk, which skips them.
  const reached: Closure = { manifests: new Set(), blobs: new Set(), invalid: [] };
  for (const [digest, known] of storedManifests) {
    if (!known.named) continue;
    reached.manifests.add(digest);
    addChildren(reached, digest, known.children);
  }
  await closureOf(view, walk, reached);
  report.invalid = reached.invalid;
  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    for (const d of present[kind]) if (!reached[kind].has(d)) report.unreferenced.push(`${kind} ${d}`);
  }
  for (const list of [report.corrupt, report.unreferenced, report.incomplete]) list.sort();
  return report;
}

/** Writes the summary of a record's image, unless the record changed meanwhile (a serve on the same store moved the tag). */
async function writeSummary(store: Store, rec: TagRecord, image: ImageSummary | undefined): Promise<void> {
  const now = await store.readTag(rec.upstream, rec.repository, rec.tag);
  if (!now || now.digest !== rec.digest) return;
  const { image: _, ...fields } = now;
  await store.writeTag(image ? { ...fields, image } : fields);
}
