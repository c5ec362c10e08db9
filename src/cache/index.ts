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
import { createQuota, type Quota, type QuotaObserver, type StoreBounds } from "./quota.ts";
import { createUsage, type Usage } from "../store/usage.ts";
import type { Store, StoreStats, TagRecord } from "../store/types.ts";
import type { Target } from "../oci/reference.ts";
import { matchesAny, type ImagePattern } from "../oci/pattern.ts";
import { recordName } from "../store/record.ts";
import { createReferrers, type Referrers } from "./referrers.ts";
import { createReplicas } from "./replicas.ts";
import { STALE_AFTER_MS, sweepStaleState } from "./state-sweep.ts";
import { createFlightLeases } from "./flight-leases.ts";
import { createTags, type Tags } from "./tags.ts";

export type { BlobSource, Blobs } from "./blobs.ts";
export type { ArchiveSource, CacheObserver, CacheOptions, CacheLogger, CacheStatus, PeerLink, Served } from "./context.ts";
export { CacheError, type CacheFailure, type CacheSubject } from "./errors.ts";
export type { ManifestResult, Manifests } from "./manifests.ts";
export type { Referrers } from "./referrers.ts";
export type { TagList, Tags } from "./tags.ts";
export type { PlatformChoice, PullImage, PullResult } from "./pull.ts";
export type { EvictionReport } from "./evict.ts";
export type { Quota, QuotaObserver, StoreBounds, EvictionReason } from "./quota.ts";

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
  /** The store as the cache uses it: every commit admitted by the bounds and counted. Use this one. */
  store: Store;
  /** What the store holds (see store/usage.ts). */
  usage: Usage;
  /** The store's bounds: eviction, pass-through. */
  quota: Quota;
  /** New store bounds and pinned patterns (a config reload). */
  rebound(bounds: StoreBounds, pinned: ImagePattern[]): void;
  /** Pins or unpins a recorded image; false when it is not in the store. */
  setPinned(target: Target, tag: string, pinned: boolean): Promise<boolean>;
  /**
   * Keeps the figures and bounds up to date in a long-running process: reads the size snapshot,
   * walks the store in the background (now and every 10 minutes), checks the bounds every 30 s
   * and saves the snapshot. Returns a stop function that saves it one last time.
   */
  maintain(): () => Promise<void>;
}

/** A manifest no record reaches goes in an eviction run once this old (a pull stores its manifest a moment before its record). */
const ORPHAN_GRACE_MS = 60_000;
const RECONCILE_EVERY_MS = 10 * 60_000;
const CHECK_EVERY_MS = 30_000;
/** Record digests remembered for a running eviction (a run takes them; none runs for a while: dropped). */
const MAX_RECORDED = 100_000;
/** A shared store (S3 replicas) is counted again this often: each replica's figures miss what the others store … */
const SHARED_RECOUNT_MS = 30_000;
/** … and whenever this replica has stored this share of maxSize since its last count. */
const SHARED_RECOUNT_SHARE = 0.1;
/** At stop, a running eviction gets this long to end (and release its lease) before the snapshot is saved. */
const STOP_WAIT_MS = 10_000;

/**
 * Manifests kept in memory: the few thousand most recently pulled (a typical one is under 2 KiB);
 * the rest are read from the store, a file the page cache holds. 16 MiB cost ~10 MiB of RSS
 * after 10,000 distinct tags and made no difference to a warm pull by tag.
 */
const DEFAULT_MANIFEST_MEMORY = 4 * 1024 * 1024;
/** Blobs of images passed through whole, remembered so their blobs pass through too (about 150 bytes each). */
const PASSING_THROUGH = 10_000;
/**
 * Blob sizes remembered from manifests (~430 bytes each), for the downloads a client asks for
 * right after a manifest: the most recent ones suffice, and a committed blob's entry is dropped.
 */
const DECLARED_SIZES = 10_000;

export function createCache(opts: CacheOptions & {
  bounds?: StoreBounds;
  /** Images never evicted (config `pinned`), besides records pinned themselves. */
  pinned?: ImagePattern[];
  /** Told whenever the store's figures change (metrics). */
  onUsage?: (figures: StoreStats) => void;
  observeQuota?: QuotaObserver;
}): Cache {
  const listedBudget = createByteBudget(MANIFEST_BUDGET_BYTES);
  const clientNamedBudget = createByteBudget(MANIFEST_BUDGET_BYTES / 2);
  const now = opts.now ?? Date.now;
  const replicas = opts.store.shared ? createReplicas(opts.store, now, (m) => opts.log.warn(m)) : null;
  const recount = () => usage.reconcile({ contentOnly: true });
  /** Digests of the records written lately: an eviction run keeps what they reach (bounded; a run takes them). */
  let recorded: string[] = [];
  const usage = createUsage(opts.store, {
    admit: (bytes, kind) => quota.admit(bytes, kind),
    bounded: () => quota.bounded,
    recorded(digest) {
      if (recorded.length >= MAX_RECORDED) recorded = [];
      recorded.push(digest);
      // A new record may be an image a run can evict: a full store is worth a run again.
      quota.changed();
    },
    changed(figures) {
      opts.onUsage?.(figures);
      const max = replicas && quota.snapshot().maxBytes;
      if (max && usage.storedSinceWalk > max * SHARED_RECOUNT_SHARE) void recount().then(() => quota.check(), () => {});
    },
  });
  let pins = opts.pinned ?? [];
  const pinKind = (r: TagRecord) => (r.pinned === true ? "record" as const : matchesAny(pins, recordName(r)) ? "pattern" as const : false);
  const isPinned = (r: TagRecord) => pinKind(r) !== false;

  const quota: Quota = createQuota({
    bounds: opts.bounds ?? {}, usage, store: opts.store, log: opts.log, now,
    evict: {
      pinned: pinKind,
      recorded: () => {
        const out = recorded;
        recorded = [];
        return out;
      },
      // On a shared store, what the other replicas are downloading too (their files in state/replicas/).
      busy: replicas ? async () => new Set([...stored.blobs.downloading(), ...(await replicas.busyElsewhere())]) : () => stored.blobs.downloading(),
      onRecordRemoved: (r) => forgetRecord(r),
      onManifestRemoved: (d) => ctx.memory.delete(d),
      orphanGraceMs: ORPHAN_GRACE_MS,
    },
    beforeRun: () => ctx.records.flush(),
    observe: opts.observeQuota,
    shared: replicas ? { lease: () => replicas.acquire(), waitFree: (ms) => replicas.waitFree(ms), recount } : undefined,
  });
  const ctx: CacheContext = {
    ...opts,
    store: usage.store,
    quota,
    now,
    observe: opts.observe ?? {},
    tagPolicies: opts.tagPolicies ?? [],
    declaredSizes: new BoundedMap(DECLARED_SIZES),
    passingThrough: new BoundedMap(PASSING_THROUGH),
    memory: new ManifestMemory(opts.manifestMemoryBytes ?? DEFAULT_MANIFEST_MEMORY),
    records: createTagBook(usage.store, now, (m) => opts.log.warn(m)),
    manifestBudget: (upstream) => (opts.upstreams.listed(upstream) ? listedBudget : clientNamedBudget),
    leases: replicas && opts.peers ? createFlightLeases(opts.store, { self: opts.peers.self, now, warn: (m) => opts.log.warn(m) }) : undefined,
  };
  const stored = { manifests: createManifests(ctx), blobs: createBlobs(ctx) };
  /** A record evicted or pruned: the tag book and the covered map forget it. */
  function forgetRecord(r: TagRecord) {
    ctx.records.forget(r);
    stored.manifests.uncover({ upstream: r.upstream, repository: r.repository }, r.digest);
  }
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
    store: usage.store,
    usage,
    quota,
    async setPinned(target, tag, pinned) {
      const found = await ctx.records.setPinned(target, tag, pinned);
      if (found && !pinned) quota.changed();
      return found;
    },
    rebound(bounds, pinned) {
      pins = pinned;
      quota.setBounds(bounds);
      quota.changed();
    },
    maintain() {
      const log = opts.log;
      let stopped = false;
      const reconcile = async () => {
        const r = await usage.reconcile().catch((err) => void log.warn(`cannot walk the store to count it: ${(err as Error).message}`));
        if (r && r.before.bytes !== r.after.bytes && !stopped) log.info(`store size corrected by a walk: ${r.before.bytes} bytes recorded, ${r.after.bytes} held`);
        quota.check();
      };
      const ready = usage.load().then(reconcile);
      const walks = setInterval(() => void reconcile(), RECONCILE_EVERY_MS);
      // Replicas on a shared store: counted more often, and downloads published for the others.
      const recounts = replicas ? setInterval(() => void recount().then(() => quota.check(), () => {}), SHARED_RECOUNT_MS) : undefined;
      recounts?.unref?.();
      const unpublish = replicas?.publish(() => stored.blobs.downloading());
      // What dead replicas left in state/ (leases, downloads files) is swept now and then.
      const sweep = () => void sweepStaleState(opts.store, now()).then(
        (n) => n && log.info(`removed ${n} state files of replicas gone for over ${STALE_AFTER_MS / 60_000} minutes`),
        (err) => log.warn(`cannot sweep the replicas' stale state files: ${(err as Error).message}`),
      );
      const sweeps = replicas ? setInterval(sweep, STALE_AFTER_MS) : undefined;
      sweeps?.unref?.();
      if (replicas) sweep();
      let savedAt = -1;
      const checks = setInterval(async () => {
        // Another process's load, prune or verify wrote its figures: walk now rather than in 10 minutes.
        if (await usage.changedElsewhere().catch(() => false)) await reconcile();
        else quota.check();
        if (savedAt !== usage.figures.bytes) (savedAt = usage.figures.bytes), void usage.save().catch(() => {});
      }, CHECK_EVERY_MS);
      walks.unref?.();
      checks.unref?.();
      return async () => {
        stopped = true;
        clearInterval(walks);
        clearInterval(checks);
        clearInterval(recounts);
        clearInterval(sweeps);
        await Promise.race([quota.idle(), Bun.sleep(STOP_WAIT_MS)]);
        await unpublish?.();
        await ready.catch(() => {});
        await usage.save().catch(() => {});
      };
    },
    async prune(opts: PruneOptions) {
      await ctx.records.flush();
      return pruneStore(usage.store, { pinned: isPinned, ...opts }, (r) => {
        if (!opts.dryRun) forgetRecord(r);
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
