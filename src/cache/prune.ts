// Removing images nobody uses: tag records older than a cutoff (by last pull or by creation), then
// the manifests and blobs only they needed. Content any kept record needs is never removed.
// Order matters for a serve running on the same store: records first, then manifests, then blobs.
import { closureOf } from "../store/closure.ts";
import type { Store, TagRecord } from "../store/types.ts";
import { recordName } from "../store/archive.ts";

export interface PruneOptions {
  olderThanMs: number;
  by: "lastPulled" | "created";
  pattern?: RegExp;
  dryRun: boolean;
  /** At most this many images per run (all when undefined). */
  limit?: number;
  now?: number;
}

export interface PruneReport {
  images: string[];
  manifests: number;
  blobs: number;
  bytes: number;
  dryRun: boolean;
}

export async function pruneStore(store: Store, opts: PruneOptions, onRemoved?: (r: TagRecord) => void): Promise<PruneReport> {
  const now = opts.now ?? Date.now();
  const remove: TagRecord[] = [];
  const keep: TagRecord[] = [];
  for await (const r of store.allTags()) {
    const when = Date.parse(opts.by === "created" ? r.created : r.lastPulled);
    const old = !Number.isNaN(when) && now - when > opts.olderThanMs;
    const chosen = old && (!opts.pattern || opts.pattern.test(recordName(r))) && (opts.limit === undefined || remove.length < opts.limit);
    (chosen ? remove : keep).push(r);
  }
  const report: PruneReport = { images: remove.map(recordName).sort(), manifests: 0, blobs: 0, bytes: 0, dryRun: opts.dryRun };
  if (!remove.length) return report;
  const needed = await closureOf(store, keep.map((r) => r.digest));
  const candidates = await closureOf(store, remove.map((r) => r.digest));
  const manifests = [...candidates.manifests].filter((d) => !needed.manifests.has(d));
  const blobs = [...candidates.blobs].filter((d) => !needed.blobs.has(d));

  for (const r of remove) {
    if (!opts.dryRun) await store.removeTag(r.upstream, r.repository, r.tag);
    onRemoved?.(r);
  }
  for (const d of manifests) {
    const bytes = await store.readManifest(d);
    if (!bytes) continue;
    report.manifests++;
    report.bytes += bytes.byteLength;
    if (!opts.dryRun) await store.removeContent("manifests", d);
  }
  for (const d of blobs) {
    const b = await store.statBlob(d);
    if (!b) continue;
    report.blobs++;
    report.bytes += b.size;
    // An open download keeps its file: unlinking does not cut a response being sent.
    if (!opts.dryRun) await store.removeContent("blobs", d);
  }
  return report;
}
