// Removing images nobody uses: tag records older than a cutoff (by last pull or by creation), then
// the manifests and blobs only they needed, and content no record reaches at all (left by a
// crash or an interrupted prune) once it is older than a safety age. Content any kept record
// needs is never removed. Order matters for a serve running on the same store: records first,
// then (with the kept set read again) manifests, then blobs, so no record ever points at missing
// content. A malformed record or reference is reported and skipped, never fatal.
import type { ContentKind, Store, TagRecord } from "../store/types.ts";
import { recordName, summaryOf } from "../store/record.ts";
import { closureOfRecords } from "./closure.ts";

export interface PruneOptions {
  olderThanMs: number;
  by: "lastPulled" | "created";
  pattern?: RegExp;
  /** Only records this accepts (e.g. one image for the admin API's DELETE); pinned images too then. */
  select?: (r: TagRecord) => boolean;
  /** Images pinned by the config's patterns (records pinned themselves are known without it): kept unless `select` names them. */
  pinned?: (r: TagRecord) => boolean;
  dryRun: boolean;
  /** At most this many images per run (all when undefined). */
  limit?: number;
  now?: number;
  /** Content no record reaches is removed once it is this old (default 1 hour). */
  unreferencedAfterMs?: number;
}

export interface PruneReport {
  images: string[];
  manifests: number;
  blobs: number;
  bytes: number;
  /** Of those, manifests and blobs no record reached. */
  unreferenced: number;
  /** Malformed references met on the way, skipped. */
  skipped: string[];
  dryRun: boolean;
}

export const UNREFERENCED_GRACE_MS = 60 * 60_000;

/** `sha256-<hex>` (a referrers index) and cosign's `.sig`/`.att`/`.sbom` hang on the digest they name. */
const ATTACHED_RE = /^(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})(\.(sig|att|sbom))?$/;

function subjectOf(tag: string): string | null {
  const m = ATTACHED_RE.exec(tag);
  return m ? `${m[1]}:${m[2]}` : null;
}

async function allRecords(store: Store, damaged?: string[]): Promise<TagRecord[]> {
  const out: TagRecord[] = [];
  for await (const r of store.allTags((where) => damaged?.push(`unreadable tag record ${where}`))) out.push(r);
  return out;
}

export async function pruneStore(store: Store, opts: PruneOptions, onRemoved?: (r: TagRecord) => void): Promise<PruneReport> {
  const now = opts.now ?? Date.now();
  const grace = opts.unreferencedAfterMs ?? UNREFERENCED_GRACE_MS;
  const remove: TagRecord[] = [];
  const damaged: string[] = [];
  const records = await allRecords(store, damaged);
  const attached = records.filter((r) => subjectOf(r.tag));
  for (const r of records) {
    if (subjectOf(r.tag)) continue; // referrers and cosign tags go with their subject, below
    const when = Date.parse(opts.by === "created" ? r.created : r.lastPulled);
    const old = !Number.isNaN(when) && now - when > opts.olderThanMs;
    if (!old || (opts.pattern && !opts.pattern.test(recordName(r))) || (opts.select && !opts.select(r))) continue;
    // Pins outlive age: the air-gap set loaded with --pin is kept however long nobody pulls it.
    if (!opts.select && (r.pinned || opts.pinned?.(r))) continue;
    if (opts.limit === undefined || remove.length < opts.limit) remove.push(r);
  }
  if (attached.length) {
    // A referrer stays while a record of its own upstream and repository reaches its subject:
    // another upstream holding the same digest keeps nothing of this one alive, nor removes it.
    const going = new Set(remove.map(recordName));
    const repoOf = (r: TagRecord) => `${r.upstream}/${r.repository}`;
    const withReferrers = new Set(attached.map(repoOf));
    const roots = new Map<string, TagRecord[]>();
    for (const r of records) {
      if (subjectOf(r.tag) || going.has(recordName(r)) || !withReferrers.has(repoOf(r))) continue;
      const list = roots.get(repoOf(r)) ?? [];
      list.push(r);
      roots.set(repoOf(r), list);
    }
    const reached = new Map<string, Set<string>>();
    for (const [repo, kept] of roots) reached.set(repo, (await closureOfRecords(store, kept)).manifests);
    for (const a of attached) if (!reached.get(repoOf(a))?.has(subjectOf(a.tag)!)) remove.push(a);
  }
  const gone: TagRecord[] = [];
  for (const r of remove) {
    // By age, a record goes only if unchanged since read: one another process (a replica) pulled
    // or pinned meanwhile stays. One named by `select` (the admin API's DELETE) goes as it is.
    if (!opts.dryRun && opts.select) await store.removeTag(r.upstream, r.repository, r.tag);
    else if (!opts.dryRun && !(await store.removeTagIf(r))) continue;
    gone.push(r);
    onRemoved?.(r);
  }
  const report: PruneReport = { images: gone.map(recordName).sort(), manifests: 0, blobs: 0, bytes: 0, unreferenced: 0, skipped: [], dryRun: opts.dryRun };
  // Read the records again after removing: another process may have cached an image meanwhile.
  const removed = new Set(gone.map(recordName));
  const kept = (opts.dryRun || !gone.length ? records : await allRecords(store)).filter((r) => !removed.has(recordName(r)));
  // Records with a summary are not walked: a large store's manifests are not read again.
  const needed = await closureOfRecords(store, kept);
  const freed = await closureOfRecords(store, gone);
  report.skipped = [...damaged, ...new Set([...needed.invalid, ...freed.invalid].map((i) => `invalid reference in manifest ${i}`))];

  // Sizes the removed records' summaries declare: what they free is counted without asking the
  // store about each file (a stat, or an S3 request); only the rest is asked its size and age.
  // One map per kind, keyed by the digest as it is (no key string built per blob: 100,000s of them).
  const declared: Record<ContentKind, Map<string, number>> = { manifests: new Map(), blobs: new Map() };
  for (const r of remove) {
    const image = summaryOf(r);
    if (!image) continue;
    declared.manifests.set(r.digest, r.size);
    for (let i = 0; i < image.blobs.length; i++) declared.blobs.set(image.blobs[i]!, image.sizes[i]!);
  }
  for (const kind of ["manifests", "blobs"] as ContentKind[]) {
    const keep = needed[kind];
    const candidates = freed[kind];
    for await (const digest of store.listContent(kind)) {
      if (keep.has(digest)) continue;
      const orphan = !candidates.has(digest);
      let size = orphan ? undefined : declared[kind].get(digest);
      if (size === undefined) {
        const info = await store.contentInfo(kind, digest);
        if (!info || (orphan && now - info.modified < grace)) continue;
        size = info.size;
      }
      report[kind]++;
      report.bytes += size;
      if (orphan) report.unreferenced++;
      // An open download keeps its file: unlinking does not cut a response being sent.
      if (!opts.dryRun) await store.removeContent(kind, digest);
    }
  }
  return report;
}
