// Re-hashes every blob and manifest in the store and checks that every tag record points at a
// stored manifest. With `repair`, removes what is corrupt or dangling so the next pull fetches
// it again.
import pLimit from "p-limit";
import { createDigester, parseDigest } from "../oci/digest.ts";
import type { ContentKind, Store } from "../store/types.ts";

export interface VerifyReport {
  blobs: number;
  manifests: number;
  tags: number;
  /** `blobs sha256:…` / `manifests sha256:…` whose bytes do not match their name. */
  corrupt: string[];
  /** `upstream/repository:tag -> digest` whose manifest is not stored. */
  dangling: string[];
  /** Tag record files that cannot be read. */
  damaged: string[];
  repaired: boolean;
}

async function hashMatches(file: Blob, digest: string): Promise<boolean> {
  const d = parseDigest(digest);
  if (!d) return false;
  const h = createDigester(d.algorithm);
  for await (const chunk of file.stream()) h.update(chunk);
  return h.digest() === digest;
}

export async function verifyStore(store: Store, opts: { repair: boolean; concurrency?: number }): Promise<VerifyReport> {
  const report: VerifyReport = { blobs: 0, manifests: 0, tags: 0, corrupt: [], dangling: [], damaged: [], repaired: opts.repair };
  const limit = pLimit(opts.concurrency ?? 4);

  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    const jobs: Promise<void>[] = [];
    for await (const digest of store.listContent(kind)) {
      report[kind]++;
      jobs.push(limit(async () => {
        const file = await store.openContent(kind, digest);
        if (file && (await hashMatches(file, digest))) return;
        report.corrupt.push(`${kind} ${digest}`);
        if (opts.repair) await store.removeContent(kind, digest);
      }));
    }
    await Promise.all(jobs);
  }

  for await (const rec of store.allTags()) {
    report.tags++;
    if (await store.readManifest(rec.digest)) continue;
    report.dangling.push(`${rec.upstream}/${rec.repository}:${rec.tag} -> ${rec.digest}`);
    if (opts.repair) await store.removeTag(rec.upstream, rec.repository, rec.tag);
  }
  for await (const path of store.damagedTags()) {
    report.damaged.push(path);
    if (opts.repair) await store.removeDamagedTag(path);
  }
  report.corrupt.sort();
  return report;
}
