// Pulls a list of images into the store (load and serve --preload-images), several at a time;
// every failure is collected, every success kept.
import pLimit from "p-limit";
import { formatReference, type ImageReference } from "../oci/reference.ts";
import type { PlatformChoice, PullOptions, PullResult } from "./pull.ts";

export interface PullProgress {
  total: number;
  done: number;
  failed: number;
  bytes: number;
}

export interface PullOutcome {
  pulled: Array<{ ref: string; result: PullResult }>;
  failed: Array<{ ref: string; error: string }>;
  bytes: number;
}

type PullImage = (t: { upstream: string; repository: string }, reference: string, p: PlatformChoice, o?: PullOptions) => Promise<PullResult>;

export async function pullImages(
  pullImage: PullImage,
  refs: ImageReference[],
  opts: { platforms: PlatformChoice; concurrency: number; withReferrers?: boolean; pinned?: boolean; onProgress?: (p: PullProgress) => void; onImage?: (ref: string, r: PullResult | Error) => void },
): Promise<PullOutcome> {
  const limit = pLimit(opts.concurrency);
  const progress: PullProgress = { total: refs.length, done: 0, failed: 0, bytes: 0 };
  const outcome: PullOutcome = { pulled: [], failed: [], bytes: 0 };
  // The same reference twice in a list is pulled once.
  const unique = [...new Map(refs.map((r) => [formatReference(r), r])).entries()];
  progress.total = unique.length;
  await Promise.all(unique.map(([name, ref]) => limit(async () => {
    try {
      const result = await pullImage({ upstream: ref.upstream, repository: ref.repository }, ref.reference, opts.platforms, {
        withReferrers: opts.withReferrers, pinned: opts.pinned,
        onBytes: (n) => {
          progress.bytes += n;
          opts.onProgress?.(progress);
        },
      });
      outcome.pulled.push({ ref: name, result });
      progress.done++;
      opts.onImage?.(name, result);
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      outcome.failed.push({ ref: name, error: message });
      progress.failed++;
      opts.onImage?.(name, err instanceof Error ? err : new Error(message));
    }
    opts.onProgress?.(progress);
  })));
  outcome.bytes = progress.bytes;
  outcome.pulled.sort((a, b) => a.ref.localeCompare(b.ref));
  outcome.failed.sort((a, b) => a.ref.localeCompare(b.ref));
  return outcome;
}
