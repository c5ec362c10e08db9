// The store's bounds (maxSize, minFreeSpace) kept: a blob or manifest is committed only when it
// fits, eviction runs (one at a time, off the request path) bring the store back under a low-water
// mark, and when nothing can be evicted (everything left is pinned or in use, or the filesystem
// itself is short) the cache says so and serves cold content without storing it (pass-through).
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
/** A run that could not free enough is not retried sooner than this (nothing to gain by spinning). */
const RETRY_SHORT_MS = 5000;
/** The pass-through warning, at most once per this. */
const WARN_EVERY_MS = 60_000;

export interface Quota {
  /** Whether any bound is set. */
  readonly bounded: boolean;
  /** Takes new bounds (a config reload); an eviction run starts when the store is now past them. */
  setBounds(bounds: StoreBounds): void;
  /** Before a commit of `bytes`: resolves with a settle function when they fit (after evicting if needed); StoreError("full") when not. */
  admit(bytes: number, kind: ContentKind): Promise<() => void>;
  /** Before a download of `bytes` (0 when unknown): whether it may be stored; false means pass it through. Reserves the bytes until `done`. */
  room(bytes: number): Promise<{ store: boolean; done: () => void }>;
  /** Starts an eviction run in the background when a bound is passed. */
  check(): void;
  /** Runs an eviction now (or joins the running one). */
  evict(extraBytes?: number): Promise<EvictionReport | null>;
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
  evict: Pick<EvictOptions, "pinned" | "busy" | "onRecordRemoved" | "onManifestRemoved" | "orphanGraceMs">;
  /** Pending last-pulled times are written before a run, so it sees the real order. */
  beforeRun?: () => Promise<unknown>;
  observe?: QuotaObserver;
}

export function createQuota(o: QuotaOptions): Quota {
  const { usage } = o;
  let bounds = o.bounds;
  let bounded = bounds.maxSize !== undefined || bounds.minFreeSpace !== undefined;
  let space: { total: number; free: number } | null = null;
  let spaceAt = -Infinity;
  let spaceRead: Promise<void> | null = null;
  /** Bytes admitted and being committed; bytes of downloads being written. */
  let committing = 0;
  let reserved = 0;
  let full = false;
  let running: Promise<EvictionReport | null> | null = null;
  let lastShortAt = -Infinity;
  let warnedAt = -Infinity;

  async function readSpace() {
    if (o.now() - spaceAt < SPACE_TTL_MS) return;
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

  /** Bytes to free for `extra` more bytes to fit, and why (null when nothing must go). */
  function need(extra: number): { bytes: number; reason: EvictionReason } | null {
    const max = maxBytes();
    const overMax = max === null ? 0 : usage.figures.bytes + committing + reserved + extra - max;
    const min = minFree();
    const short = min === null || !space ? 0 : min - (space.free - extra);
    if (overMax <= 0 && short <= 0) return null;
    const toMax = max === null || overMax <= 0 ? 0 : usage.figures.bytes + committing + reserved + extra - Math.floor(max * LOW_WATER);
    const toFree = min === null || short <= 0 || !space ? 0 : Math.ceil(min * FREE_TARGET) - (space.free - extra);
    return toMax >= toFree ? { bytes: toMax, reason: "max-size" } : { bytes: toFree, reason: "min-free-space" };
  }

  async function run(extra: number): Promise<EvictionReport | null> {
    await readSpace();
    const n = need(extra);
    if (!n) {
      setFull(false);
      return null;
    }
    await o.beforeRun?.().catch(() => {});
    const report = await evictImages(usage.store, { ...o.evict, needBytes: n.bytes, now: o.now() });
    spaceAt = -Infinity; // what was removed shows in statfs now
    if (report.short) lastShortAt = o.now();
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
    check() {
      if (!bounded || running || o.now() - lastShortAt < RETRY_SHORT_MS) return;
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
      // While the store is full, a manifest is not stored either: its image could not be completed.
      if (!fits() || (full && kind === "manifests")) {
        // A run that just came up short is not repeated for every commit: nothing changed since.
        if (o.now() - lastShortAt >= RETRY_SHORT_MS) {
          // The run frees down to the low-water mark; this commit's bytes are not counted yet.
          await (running ?? quota.evict(bytes)).catch((err) => o.log.warn(`eviction failed: ${(err as Error).message}`));
          await readSpace();
        }
        if (!fits() || (full && kind === "manifests")) {
          setFull(true);
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
      // Not even the temp file fits: the filesystem is short, whatever the bounds say.
      const diskShort = space !== null && space.free - reserved - bytes < min;
      const max = maxBytes();
      const overMax = max !== null && usage.figures.bytes + committing + reserved + bytes > max;
      // Without bounds nothing is evicted: only a short disk passes a download through.
      if (!bounded) setFull(diskShort);
      if (diskShort || overMax || full) quota.check();
      if (diskShort || (max !== null && bytes > max) || full) {
        if (diskShort) setFull(true);
        return { store: false, done: () => {} };
      }
      reserved += bytes;
      let done = false;
      return { store: true, done: () => void (!done && ((done = true), (reserved -= bytes))) };
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
