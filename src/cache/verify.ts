// Re-hashes every blob and manifest in the store, checks that every tag record points at an image
// that is complete in the store, and finds malformed references and content no record reaches.
// With `repair`, removes what is corrupt, dangling or unreadable so the next pull fetches it again.
import pLimit from "p-limit";
import { createDigester, parseDigest } from "../oci/digest.ts";
import { recordName } from "../store/record.ts";
import type { ContentKind, Store } from "../store/types.ts";
import { closureOf, missingContent, type Missing } from "./closure.ts";

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
  /** `blobs sha256:…` / `manifests sha256:…` no record reaches (the next prune removes them once old). */
  unreferenced: string[];
  repaired: boolean;
}

async function hashMatches(file: Blob, digest: string): Promise<boolean> {
  const d = parseDigest(digest);
  if (!d) return false;
  const h = createDigester(d.algorithm);
  for await (const chunk of file.stream()) h.update(chunk);
  return h.digest() === digest;
}

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
    blobs: 0, manifests: 0, tags: 0, corrupt: [], dangling: [], incomplete: [], invalid: [], damaged: [], unreferenced: [], repaired: opts.repair,
  };
  const limit = pLimit(opts.concurrency ?? 4);
  const present: Record<ContentKind, string[]> = { blobs: [], manifests: [] };

  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    const jobs: Promise<void>[] = [];
    for await (const digest of store.listContent(kind)) {
      report[kind]++;
      jobs.push(limit(async () => {
        const file = kind === "blobs" ? (await store.statBlob(digest))?.file : await store.readManifest(digest).then((b) => (b ? new Blob([b as Uint8Array<ArrayBuffer>]) : undefined));
        if (file && (await hashMatches(file, digest))) {
          present[kind].push(digest);
          return;
        }
        report.corrupt.push(`${kind} ${digest}`);
        if (opts.repair) await store.removeContent(kind, digest);
      }));
    }
    await Promise.all(jobs);
  }

  const digests: string[] = [];
  const memo = new Map<string, Promise<Missing>>();
  for await (const rec of store.allTags()) {
    report.tags++;
    const name = recordName(rec);
    const missing = await missingContent(store, rec.digest, memo);
    if (missing.manifestAbsent) {
      report.dangling.push(`${name} -> ${rec.digest}`);
      if (opts.repair) await store.removeTag(rec.upstream, rec.repository, rec.tag);
      continue;
    }
    digests.push(rec.digest);
    if (missing.length) report.incomplete.push(`${name}: missing ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ` and ${missing.length - 3} more` : ""}`);
  }
  for await (const d of store.damagedTags()) {
    report.damaged.push(d.where);
    if (opts.repair) await d.remove();
  }
  const reached = await closureOf(store, digests);
  report.invalid = reached.invalid;
  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    for (const d of present[kind]) if (!reached[kind].has(d)) report.unreferenced.push(`${kind} ${d}`);
  }
  for (const list of [report.corrupt, report.unreferenced, report.incomplete]) list.sort();
  return report;
}
