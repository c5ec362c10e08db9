// The pull-through cache: one object the registry handlers and the CLI commands share.
import { BoundedMap } from "../oci/bounded-map.ts";
import { createBlobs } from "./blobs.ts";
import { tagKey, type CacheContext, type CacheOptions } from "./context.ts";
import { createManifests } from "./manifests.ts";
import { ManifestMemory } from "./memory.ts";
import { pruneStore, type PruneOptions } from "./prune.ts";
import { createPuller } from "./pull.ts";
import { createReferrers } from "./referrers.ts";
import { createTags } from "./tags.ts";

export type { BlobSource } from "./blobs.ts";
export type { CacheOptions, CacheLogger } from "./context.ts";
export type { ManifestResult } from "./manifests.ts";
export type { TagList } from "./tags.ts";
export { hostPlatform, parsePlatform, type PlatformChoice, type PullResult } from "./pull.ts";

export type Cache = ReturnType<typeof createCache>;

const DEFAULT_MANIFEST_MEMORY = 64 * 1024 * 1024;
/** Blob sizes remembered from manifests (about 150 bytes each). */
const DECLARED_SIZES = 100_000;

export function createCache(opts: CacheOptions) {
  const ctx: CacheContext = {
    ...opts,
    now: opts.now ?? Date.now,
    tagPolicies: opts.tagPolicies ?? [],
    declaredSizes: new BoundedMap(DECLARED_SIZES),
    memory: new ManifestMemory(opts.manifestMemoryBytes ?? DEFAULT_MANIFEST_MEMORY),
    tags: new Map(),
    dirty: new Set(),
  };
  const manifests = createManifests(ctx);
  const blobs = createBlobs(ctx);
  const tags = createTags(ctx);
  const referrers = createReferrers(ctx);
  const pullImage = createPuller(manifests, blobs);

  return {
    manifests,
    blobs,
    tags,
    referrers,
    pullImage,
    /**
     * Writes tag records whose last-pulled or checked time changed; batched off the hot path.
     * Another process (prune, load) may have changed the store meanwhile: a record removed on disk
     * is forgotten rather than written back, and one that moved to another digest keeps the new
     * digest, gaining only the later times.
     */
    async flush(): Promise<number> {
      const keys = [...ctx.dirty];
      ctx.dirty.clear();
      let written = 0;
      for (const key of keys) {
        const rec = ctx.tags.get(key);
        if (!rec) continue;
        try {
          const disk = await ctx.store.readTag(rec.upstream, rec.repository, rec.tag);
          if (!disk) {
            ctx.tags.delete(key);
            continue;
          }
          const later = (a: string, b: string) => (a > b ? a : b);
          const merged = disk.digest === rec.digest
            ? { ...disk, lastPulled: later(disk.lastPulled, rec.lastPulled), checked: later(disk.checked, rec.checked) }
            : { ...disk, lastPulled: later(disk.lastPulled, rec.lastPulled) };
          await ctx.store.writeTag(merged);
          ctx.tags.set(key, merged);
          written++;
        } catch (err) {
          ctx.log.warn(`cannot record access to ${key}: ${(err as Error).message}`);
          ctx.dirty.add(key);
        }
      }
      return written;
    },
    /** Prunes the store this cache serves: pending access times are written first, pruned tags forgotten. */
    async prune(opts: PruneOptions) {
      await this.flush();
      return pruneStore(ctx.store, opts, (r) => {
        if (!opts.dryRun) ctx.tags.delete(tagKey(r.upstream, r.repository, r.tag));
      });
    },
    /** Lets running downloads finish for up to `ms`, then aborts the rest; resolves when none is left. */
    async drain(ms: number): Promise<void> {
      const active = await blobs.active();
      if (!active.length) return;
      const all = Promise.all(active.map((d) => d.settled()));
      const timer = setTimeout(() => active.forEach((d) => d.abort("shutting down")), ms);
      await all;
      clearTimeout(timer);
    },
  };
}

