// The store's bounds (maxSize, minFreeSpace) kept: a blob or manifest is committed only when it
// fits, eviction runs (one at a time, off the request path) bring the store back under a low-water
// mark, and when nothing can be evicted (everything left is pinned or in use, or the filesystem
// itself is short) the cache says so and serves cold content without storing it (pass-through).
// Replicas on one shared store (S3) run one eviction at a time among them, each counting the store
// again before it evicts (its own figures miss what the others stored and evicted).
import { StoreError, type ContentKind, type Store } from "../store/types.ts";
import type { Usage } from "../store/usage.ts";
import type { CacheLogger } from "./context.ts";
import { evictImages, type EvictionReport, type EvictOptions } from "./evict.ts";

export type SizeBound = { bytes: number } | { percent: number };

export interface StoreBounds {
  maxSize?: SizeBound;
  minFreeSpace?: SizeBound;
}

export interface QuotaStatus {
  bytes: number;
  maxBytes: number | null;
  freeBytes: number | null;
  minFreeBytes: number | null;
  full: boolean;
}

export type EvictionReason = "max-size" | "min-free-space";

export interface QuotaObserver {
  evicted?(report: EvictionReport, reason: EvictionReason): void;
  full?(full: boolean): void;
}

/** An eviction run frees down to this share of maxSize … */
export const LOW_WATER = 0.9;
/** … and up to this multiple of minFreeSpace. */
const FREE_TARGET = 1.1;
/** The filesystem's free space is read at most this often (statfs). */
const SPACE_TTL_MS = 1000;
/** A run that could not free enough is not retried sooner than this (nothing to gain by spinning) … */
const RETRY_SHORT_MS = 1000;
/** … nor, while nothing was removed, unpinned or recorded since, sooner than this. */
const RETRY_HOPELESS_MS = 5 * 60_000;
/** How long a replica waits for another's eviction run before it counts again (twice at most). */
const LEASE_WAIT_MS = 15_000;
const LEASE_TRIES = 2;
/** Share of maxSize the images pinned by config patterns may hold together before the least recently pulled of them can go. */
const PATTERN_PIN_SHARE = 0.5;
/** A blob larger than this share of maxSize is passed through, never stored (it would push out half the cache). */
const LARGEST_SHARE = 0.5;
/** Eviction runs one commit waits for (one joined, then its own) before it is refused. */
const ADMIT_RUNS = 3;
/** The pass-through warning, at most once per this. */
const WARN_EVERY_MS = 60_000;

export interface Quota {
  /** Whether any bound is set. */
  readonly bounded: boolean;
  /** Takes new bounds (a config reload); an eviction run starts when the store is now past them. */
  setBounds(bounds: StoreBounds): void;
  /** Before a commit of `bytes`: resolves with a settle function when they fit (after evicting if needed); StoreError("full") when not. */
  admit(bytes: number, kind: ContentKind): Promise<() => void>;
  /** Before a download of `bytes` (0 when unknown): whether it may be stored; false means pass it through. */
  room(bytes: number): Promise<boolean>;
  /**
   * Before an image manifest is stored: whether the image (`total` bytes, its largest blob
   * `largest`) can be stored whole, evicting first if it must. False: pass the image through, so
   * the store never holds a recorded image whose layers it had no room for.
   */
  canHold(total: number, largest: number): Promise<boolean>;
  /** Starts an eviction run in the background when a bound is passed. */
  check(): void;
  /** Something that can make room other than a removal happened (an unpin, new bounds): the next run is worth it. */
  changed(): void;
  /** Runs an eviction now (or joins the running one). */
  evict(extraBytes?: number): Promise<EvictionReport | null>;
  /** Resolves when no eviction runs (at stop: a run ends and lets its lease go). */
  idle(): Promise<void>;
  /** Told that something was served without being stored: warns at most once a minute. */
  passedThrough(what: string): void;
  status(): Promise<QuotaStatus>;
  /** The same from what was read last (no statfs): for status pages. */
  snapshot(): QuotaStatus;
}

export interface QuotaOptions {
  bounds: StoreBounds;
  usage: Usage;
  store: Store;
  log: CacheLogger;
  now: () => number;
  /** Pinned records, busy digests, and what to forget (records, manifests) as content goes. */
  evict: Pick<EvictOptions, "pinned" | "busy" | "onRecordRemoved" | "onManifestRemoved" | "orphanGraceMs" | "recorded">;
  /** Pending last-pulled times are written before a run, so it sees the real order. */
  beforeRun?: () => Promise<unknown>;
  /** Replicas sharing the store: a run takes their lease (cache/replicas.ts) and counts the store first. */
  shared?: SharedQuota;
  observe?: QuotaObserver;
}

export interface SharedQuota {
  /** The eviction lease; null while another replica holds it. */
  lease(): Promise<{ release(): Promise<void> } | null>;
  /** Resolves once no other replica holds the lease (or after `ms`). */
  waitFree(ms: number): Promise<void>;
  /** Counts the store again (a walk). */
  recount(): Promise<unknown>;
}

export function createQuota(o: QuotaOptions): Quota {
  const { usage } = o;
  let bounds = o.bounds;
  let bounded = bounds.maxSize !== undefined || bounds.minFreeSpace !== undefined;
  let space: { total: number; free: number } | null = null;
  let spaceAt = -Infinity;
  let spaceRead: Promise<void> | null = null;
  /** Bytes admitted and being committed. */
  let committing = 0;
  let full = false;
  let running: Promise<EvictionReport | null> | null = null;
  let lastShortAt = -Infinity;
  /** What the last short run saw: until something that can free room happens, running again is no use. */
  let short: { bytes: number; generation: number; free: number } | null = null;
  let generation = 0;
  let warnedAt = -Infinity;
  /** The last run was left to another replica (it held the lease): the store is not known to be full. */
  let leftToReplica = false;

  /** Reads the filesystem's space, at most once a second, but at every call while the store is full (room may just have come back). */
  async function readSpace() {
    if (o.now() - spaceAt < SPACE_TTL_MS && !full) return;
    spaceRead ??= o.store.space().then((s) => {
      space = s;
      spaceAt = o.now();
    }, () => {}).finally(() => (spaceRead = null));
    await spaceRead;
  }
  const boundOf = (b: SizeBound | undefined) =>
    b === undefined ? null : "bytes" in b ? b.bytes : space ? Math.floor((space.total * b.percent) / 100) : null;
  const maxBytes = () => boundOf(bounds.maxSize);
  const minFree = () => boundOf(bounds.minFreeSpace);

  function setFull(v: boolean) {
    if (full === v) return;
    full = v;
    o.observe?.full?.(v);
  }

  /**
   * Bytes to free for `extra` more verified bytes to fit: down to the low-water mark, at least what
   * makes them fit, and why (null when nothing must go). Downloads in flight do not count: an
   * upstream's announced size is only its word until the bytes are verified.
   */
  function need(extra: number): { bytes: number; least: number; reason: EvictionReason } | null {
    const max = maxBytes();
    const overMax = max === null ? 0 : usage.figures.bytes + committing + extra - max;
    const min = minFree();
    const short = min === null || !space ? 0 : min - (space.free - extra);
    if (overMax <= 0 && short <= 0) return null;
    const toMax = max === null || overMax <= 0 ? 0 : usage.figures.bytes + committing + extra - Math.floor(max * LOW_WATER);
    const toFree = min === null || short <= 0 || !space ? 0 : Math.ceil(min * FREE_TARGET) - (space.free - extra);
    const least = Math.max(overMax, short, 0);
    return toMax >= toFree ? { bytes: toMax, least, reason: "max-size" } : { bytes: toFree, least, reason: "min-free-space" };
  }

  /**
   * On a shared store: the eviction lease, taken after counting the store again (null when the
   * count shows nothing must go); "elsewhere" when another replica kept it through every wait.
   */
  async function takeLease(shared: SharedQuota, extra: number) {
    for (let i = 0; i < LEASE_TRIES; i++) {
      const lease = await shared.lease();
      if (lease) {
        await shared.recount().catch((err) => o.log.warn(`cannot count the store before evicting: ${(err as Error).message}`));
        if (need(extra)) return lease;
        await lease.release();
        return null;
      }
      // Another replica is evicting: its removals are not in our figures until we count again.
      await shared.waitFree(LEASE_WAIT_MS);
      await shared.recount().catch(() => {});
      if (!need(extra)) return null;
    }
    return "elsewhere" as const;
  }

  /**
   * Whether a run now would only repeat the last one that came up short: nothing was removed,
   * unpinned or recorded since, and the filesystem has no more room (it walks every record and
   * manifest for nothing). Tried again now and then anyway.
   */
  const hopeless = () =>
    short !== null && short.generation === generation && usage.figures.bytes >= short.bytes && (space?.free ?? 0) <= short.free
    && o.now() - lastShortAt < RETRY_HOPELESS_MS;

  async function run(extra: number): Promise<EvictionReport | null> {
    await readSpace();
    leftToReplica = false;
    if (!need(extra)) {
      setFull(false);
      return null;
    }
    const lease = o.shared ? await takeLease(o.shared, extra) : undefined;
    if (lease === "elsewhere") {
      leftToReplica = true;
      o.log.debug("another replica holds the eviction lease: this replica's run is skipped");
      return null;
    }
    try {
      const n = lease === null ? null : need(extra);
      if (!n) {
        setFull(false);
        return null;
      }
      return await evictNow(n);
    } finally {
      await lease?.release().catch((err) => o.log.warn(`cannot release the eviction lease: ${(err as Error).message}`));
    }
  }

  async function evictNow(n: { bytes: number; least: number; reason: EvictionReason }): Promise<EvictionReport> {
    await o.beforeRun?.().catch(() => {});
    const max = maxBytes();
    const report = await evictImages(usage.store, {
      ...o.evict, needBytes: n.bytes, leastBytes: n.least, now: o.now(),
      // Clients choose what a wildcard pattern matches: pattern pins hold at most half the bound.
      patternPinBytes: max === null ? undefined : Math.floor(max * PATTERN_PIN_SHARE),
    });
    spaceAt = -Infinity; // what was removed shows in statfs now
    if (report.short) lastShortAt = o.now();
    short = report.short ? { bytes: usage.figures.bytes, generation, free: space?.free ?? 0 } : null;
    setFull(report.short);
    if (report.images.length || report.bytes) {
      const max = maxBytes();
      o.log.info(`evicted ${report.images.length} image(s), ${report.bytes} bytes in ${report.ms} ms (reason: ${n.reason === "max-size" ? "maxSize" : "minFreeSpace"}; store ${usage.figures.bytes}${max === null ? "" : ` of ${max}`} bytes)`);
    }
    if (report.short) o.log.warn(`the store is full: ${n.bytes - report.bytes} more bytes are needed and everything left is pinned or in use; cold pulls are passed through without being stored`);
    o.observe?.evicted?.(report, n.reason);
    return report;
  }

  const quota: Quota = {
    get bounded() {
      return bounded;
    },
    setBounds(next) {
      bounds = next;
      bounded = bounds.maxSize !== undefined || bounds.minFreeSpace !== undefined;
      // A bound lifted may end a pass-through; a bound lowered starts a run.
      lastShortAt = -Infinity;
      if (!bounded) setFull(false);
      quota.check();
    },
    evict(extra = 0) {
      running ??= run(extra).finally(() => (running = null));
      return running;
    },
    async idle() {
      await running?.catch(() => {});
    },
    changed() {
      generation++;
    },
    async canHold(total, largest) {
      if (!bounded) return true;
      await readSpace();
      const max = maxBytes();
      if (max !== null && (largest > max * LARGEST_SHARE || total > max * LOW_WATER)) return false;
      if (!need(total)) {
        setFull(false);
        return true;
      }
      if (o.now() - lastShortAt < RETRY_SHORT_MS || hopeless()) return false;
      await (running ?? quota.evict(total)).catch((err) => o.log.warn(`eviction failed: ${(err as Error).message}`));
      await readSpace();
      return !need(total);
    },
    check() {
      if (!bounded || running || o.now() - lastShortAt < RETRY_SHORT_MS || hopeless()) return;
      void readSpace().then(() => {
        if (need(0)) void quota.evict().catch((err) => o.log.warn(`eviction failed: ${(err as Error).message}`));
        else setFull(false);
      });
    },
    async admit(bytes, kind) {
      if (!bounded) return () => {};
      const fits = () => {
        const max = maxBytes();
        if (max !== null && usage.figures.bytes + committing + bytes > max) return false;
        // A blob's bytes are on the disk already (its temp file); a manifest's are not yet.
        const min = minFree();
        return kind === "blobs" || min === null || !space || space.free - bytes >= min;
      };
      await readSpace();
      // Room came back (space freed by someone, another process removed content): not full any more.
      if (full && !need(bytes)) setFull(false);
      // While the store is full, a manifest is not stored either: its image could not be completed.
      const stuck = () => !fits() || (full && kind === "manifests");
      if (stuck()) {
        // A run already under way was sized before this commit's bytes were known (another commit
        // started it): once it ends, this commit asks for a run of its own. A run that just came
        // up short is not repeated for every commit: nothing changed since.
        for (let attempt = 0; attempt < ADMIT_RUNS && stuck(); attempt++) {
          if (o.now() - lastShortAt < RETRY_SHORT_MS || hopeless()) break;
          const own = !running;
          const report = await (running ?? quota.evict(bytes)).catch((err) => void o.log.warn(`eviction failed: ${(err as Error).message}`));
          await readSpace();
          if (own && !report?.images.length && !report?.bytes) break; // its own run freed nothing
        }
        if (stuck()) {
          if (!leftToReplica) setFull(true);
          throw new StoreError("full", `the store has no room for ${bytes} more bytes (maxSize ${maxBytes() ?? "unset"}, store ${usage.figures.bytes} bytes) and nothing more can be evicted`);
        }
      }
      committing += bytes;
      let settled = false;
      return () => {
        if (!settled) (settled = true), (committing -= bytes);
      };
    },
    async room(bytes) {
      await readSpace();
      const min = minFree() ?? 0;
      // Not even its temp file fits: the filesystem is short, whatever the bounds say. Each blob
      // is judged alone: what an upstream announces for another one is only its word.
      const diskShort = space !== null && space.free - bytes < min;
      const max = maxBytes();
      // Without bounds nothing is evicted: only a short disk passes a download through.
      if (!bounded) setFull(diskShort);
      else if (full && !diskShort && !need(bytes)) setFull(false);
      if (diskShort || full) quota.check();
      if (diskShort || (max !== null && bytes > max * LARGEST_SHARE) || full) {
        if (diskShort) setFull(true);
        return false;
      }
      return true;
    },
    passedThrough(what) {
      if (o.now() - warnedAt < WARN_EVERY_MS) return;
      warnedAt = o.now();
      o.log.warn(`store full: serving ${what} without storing it (pass-through); evict or unpin images, raise maxSize or free the disk`);
    },
    async status() {
      await readSpace();
      return quota.snapshot();
    },
    snapshot() {
      return { bytes: usage.figures.bytes, maxBytes: maxBytes(), freeBytes: space?.free ?? null, minFreeBytes: minFree(), full };
    },
  };
  return quota;
}
