// The pull-through cache: one object the registry handlers and the server share.
import { BoundedMap } from "../lib/bounded-map.ts";
import { archivesFirst } from "./archives-first.ts";
import { createBlobs, type Blobs } from "./blobs.ts";
import type { CacheContext, CacheOptions } from "./context.ts";
import { createByteBudget } from "./bounded.ts";
import { createManifests, MANIFEST_BUDGET_BYTES, type Manifests } from "./manifests.ts";
import { ManifestMemory } from "./memory.ts";
import { pruneStore, type PruneOptions, type PruneReport } from "./prune.ts";
import { createPuller, type PullImage } from "./pull.ts";
import { createTagBook } from "./records.ts";
import { createReferrers, type Referrers } from "./referrers.ts";
import { createTags, type Tags } from "./tags.ts";

export type { BlobSource, Blobs } from "./blobs.ts";
export type { ArchiveSource, CacheObserver, CacheOptions, CacheLogger } from "./context.ts";
export { CacheError, type CacheFailure, type CacheSubject } from "./errors.ts";
export type { ManifestResult, Manifests } from "./manifests.ts";
export type { Referrers } from "./referrers.ts";
export type { TagList, Tags } from "./tags.ts";
export type { PlatformChoice, PullImage, PullResult } from "./pull.ts";

/** The pull-through cache the registry handlers, the server and the commands share. */
export interface Cache {
  /** What clients pull: the archives first when there are any, then the store and the upstreams. */
  manifests: Manifests;
  blobs: Blobs;
  tags: Tags;
  referrers: Referrers;
  /** Pulls whole images into the store (load, preload); never served from the archives. */
  pullImage: PullImage;
  /** Writes batched last-pulled times (see TagBook.flush). */
  flush(): Promise<number>;
  /** Prunes the store this cache serves: pending access times are written first, pruned tags forgotten. */
  prune(opts: PruneOptions): Promise<PruneReport>;
  /** Lets running downloads finish for up to `ms`, then aborts the rest; resolves when none is left. */
  drain(ms: number): Promise<void>;
}

/** Manifests kept in memory: a few thousand typical manifests, and RSS stays small. */
const DEFAULT_MANIFEST_MEMORY = 16 * 1024 * 1024;
/** Blob sizes remembered from manifests (about 150 bytes each). */
const DECLARED_SIZES = 50_000;

export function createCache(opts: CacheOptions): Cache {
  const listedBudget = createByteBudget(MANIFEST_BUDGET_BYTES);
  const clientNamedBudget = createByteBudget(MANIFEST_BUDGET_BYTES / 2);
  const now = opts.now ?? Date.now;
  const ctx: CacheContext = {
    ...opts,
    now,
    observe: opts.observe ?? {},
    tagPolicies: opts.tagPolicies ?? [],
    declaredSizes: new BoundedMap(DECLARED_SIZES),
    memory: new ManifestMemory(opts.manifestMemoryBytes ?? DEFAULT_MANIFEST_MEMORY),
    records: createTagBook(opts.store, now, (m) => opts.log.warn(m)),
    manifestBudget: (upstream) => (opts.upstreams.listed(upstream) ? listedBudget : clientNamedBudget),
  };
  const stored = { manifests: createManifests(ctx), blobs: createBlobs(ctx) };
  // Clients see the archives first; load and preload pull into the store only.
  const { manifests, blobs } = opts.archives ? archivesFirst(opts.archives, stored.manifests, stored.blobs, ctx.observe) : stored;
  const tags = createTags(ctx);
  const referrers = createReferrers(ctx, stored.manifests);
  const pullImage = createPuller(stored.manifests, stored.blobs, ctx.records, referrers);

  return {
    manifests,
    blobs,
    tags,
    referrers,
    pullImage,
    flush: () => ctx.records.flush(),
    async prune(opts: PruneOptions) {
      await ctx.records.flush();
      return pruneStore(ctx.store, opts, (r) => {
        if (!opts.dryRun) ctx.records.forget(r);
      });
    },
    async drain(ms: number): Promise<void> {
      const active = await stored.blobs.active();
      if (!active.length) return;
      const all = Promise.all(active.map((d) => d.settled()));
      const timer = setTimeout(() => active.forEach((d) => d.abort("shutting down")), ms);
      await all;
      clearTimeout(timer);
    },
  };
}
