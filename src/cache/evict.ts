// One eviction run: the tag records least recently pulled go first, with the manifests and blobs
// no kept record reaches, until `needBytes` are freed. Pinned records and records whose image
// has a blob being downloaded stay (pattern pins within their share). Content no record reaches at
// all (a crash, an interrupted prune, blobs fetched without their manifest) goes before any image.
// Nothing is removed unless the plan makes the room asked for. As in prune, records go first,
// then (with the records read again, so what was cached meanwhile is kept) manifests, then blobs:
// no record ever points at missing content. On the directory store a client in the middle of a
// blob keeps reading it: removing a file does not cut an open read.
import { childrenOf } from "../oci/walk.ts";
import { mapBounded } from "./bounded.ts";
import { recordName, summaryOf } from "../store/record.ts";
import type { ContentKind, Store, TagRecord } from "../store/types.ts";

export interface EvictOptions {
  /** Bytes to free (content no kept record reaches counts). */
  needBytes: number;
  /**
   * Nothing is removed unless the plan frees at least this much (what a commit needs to fit): a
   * run that cannot make room would empty the cache for nothing.
   */
  leastBytes?: number;
  /**
   * Whether a record is pinned: by itself (`load --pin`, the admin API) it never goes; by a
   * config pattern it stays while the pattern-pinned images together hold at most
   * `patternPinBytes` (clients choose what matches a wildcard), the least recently pulled beyond that
   * going like any other.
   */
  pinned(r: TagRecord): false | "record" | "pattern";
  /** What pattern-pinned images may hold together (undefined: no limit). */
  patternPinBytes?: number;
  /** Digests of the records written since the last call: a run keeps what they reach. */
  recorded?(): string[];
  /**
   * Digests being downloaded or otherwise in use now: records reaching them stay, and so do they.
   * Asked at the start and again just before anything is removed (a promise on a shared store,
   * whose other replicas' downloads are read from the store).
   */
  busy(): ReadonlySet<string> | Promise<ReadonlySet<string>>;
  now: number;
  /** A manifest no record reaches goes once it is this old (a pull in progress stores its manifest just before its record); blobs go at any age. */
  orphanGraceMs: number;
  /** Told of each record removed (the tag book forgets it). */
  onRecordRemoved?(r: TagRecord): void;
  /** Told of each manifest removed (memory forgets it). */
  onManifestRemoved?(digest: string): void;
}

export interface EvictionReport {
  /** Names of the records removed, least recently pulled first. */
  images: string[];
  manifests: number;
  blobs: number;
  bytes: number;
  /** Fewer bytes than asked could be freed (everything left is pinned or in use). */
  short: boolean;
  ms: number;
}

/** Manifests read, and files removed, at once during a run. */
const READ_CONCURRENCY = 16;

interface Reach {
  manifests: string[];
  blobs: string[];
}

/**
 * What each stored manifest reaches (itself, its platform manifests, their blobs), read once per
 * run; an image manifest whose record carries its summary is not read at all.
 */
function reacher(store: Store, records: readonly TagRecord[]) {
  const memo = new Map<string, Promise<Reach>>();
  for (const r of records) {
    const image = summaryOf(r);
    if (image) memo.set(r.digest, Promise.resolve({ manifests: [r.digest], blobs: image.blobs }));
  }
  const reach = (digest: string): Promise<Reach> => {
    let p = memo.get(digest);
    if (!p) {
      p = (async () => {
        const out: Reach = { manifests: [digest], blobs: [] };
        const bytes = await store.readManifest(digest).catch(() => null);
        if (!bytes) return out;
        const c = childrenOf(bytes);
        for (const b of c.blobs) out.blobs.push(b.digest);
        for (const m of c.manifests) {
          if (m.digest === digest) continue;
          const child = await reach(m.digest);
          out.manifests.push(...child.manifests);
          out.blobs.push(...child.blobs);
        }
        return out;
      })();
      memo.set(digest, p);
    }
    return p;
  };
  return reach;
}

async function allRecords(store: Store): Promise<TagRecord[]> {
  const out: TagRecord[] = [];
  for await (const r of store.allTags()) out.push(r);
  return out;
}

const keyOf = (kind: ContentKind, digest: string) => (kind === "blobs" ? `b ${digest}` : `m ${digest}`);

export async function evictImages(store: Store, o: EvictOptions): Promise<EvictionReport> {
  const t0 = performance.now();
  const report: EvictionReport = { images: [], manifests: 0, blobs: 0, bytes: 0, short: false, ms: 0 };
  const sizes = new Map<string, number>();
  for (const kind of ["manifests", "blobs"] as ContentKind[]) {
    for await (const c of store.listContentSizes(kind)) sizes.set(keyOf(kind, c.digest), c.size);
  }
  const records = await allRecords(store);
  const reach = reacher(store, records);
  const keysOf = async (digest: string) => {
    const x = await reach(digest);
    return [...x.manifests.map((d) => keyOf("manifests", d)), ...x.blobs.map((d) => keyOf("blobs", d))];
  };
  // Manifests read a few at a time (an S3 store answers each in milliseconds, not microseconds).
  await mapBounded([...new Set(records.map((r) => r.digest))], READ_CONCURRENCY, reach);
  const busy = await o.busy();
  const users = new Map<string, number>();
  const kept = new Set<string>();
  const evictable: Array<{ r: TagRecord; keys: string[] }> = [];
  const byPattern: Array<{ r: TagRecord; keys: string[] }> = [];
  const older = (a: { r: TagRecord }, b: { r: TagRecord }) => (a.r.lastPulled < b.r.lastPulled ? -1 : a.r.lastPulled > b.r.lastPulled ? 1 : 0);
  o.recorded?.(); // what was recorded before this run is in `records` already
  for (const r of records) {
    const keys = await keysOf(r.digest);
    for (const k of keys) users.set(k, (users.get(k) ?? 0) + 1);
    const pin = o.pinned(r);
    if (pin === "record" || keys.some((k) => busy.has(k.slice(2)))) for (const k of keys) kept.add(k);
    else if (pin === "pattern") byPattern.push({ r, keys });
    else evictable.push({ r, keys });
  }
  // Pattern pins, most recently pulled first, while they hold at most their share.
  let pinnedBytes = 0;
  for (const e of byPattern.sort((a, b) => older(b, a))) {
    const added = e.keys.filter((k) => !kept.has(k)).reduce((n, k) => n + (sizes.get(k) ?? 0), 0);
    if (o.patternPinBytes !== undefined && pinnedBytes + added > o.patternPinBytes) evictable.push(e);
    else {
      pinnedBytes += added;
      for (const k of e.keys) kept.add(k);
    }
  }

  /** Everything some record reaches, before the plan (what stays when nothing goes). */
  const reached = new Set(users.keys());
  // Content nobody reaches goes first: it serves no one (a manifest once past its grace age).
  const candidates = new Set<string>();
  let freed = 0;
  for (const [k, size] of sizes) {
    if (users.has(k) || busy.has(k.slice(2))) continue;
    if (k.startsWith("m")) {
      const info = await store.contentInfo("manifests", k.slice(2)).catch(() => null);
      if (!info || o.now - info.modified < o.orphanGraceMs) continue;
    }
    candidates.add(k);
    freed += size;
  }
  // Then images, least recently pulled first.
  evictable.sort(older);
  const going: TagRecord[] = [];
  for (const { r, keys } of evictable) {
    if (freed >= o.needBytes) break;
    going.push(r);
    for (const k of new Set(keys)) {
      const left = users.get(k)! - 1;
      users.set(k, left);
      if (left === 0 && !kept.has(k)) {
        candidates.add(k);
        freed += sizes.get(k) ?? 0;
      }
    }
  }
  report.short = freed < o.needBytes;
  // A plan that cannot make the room asked for removes nothing but what nobody reaches.
  if (freed < (o.leastBytes ?? 0)) {
    going.length = 0;
    for (const k of candidates) if (reached.has(k)) candidates.delete(k);
  }

  // Only if unchanged since read: a record another replica pulled or pinned meanwhile stays
  // (what it reaches is kept below, as the records are read again). A few at a time: one by one,
  // 6,000 removals of a lock, a read and an unlink each took most of a 10,000-image run.
  const removed = await mapBounded(going, READ_CONCURRENCY, async (r) => {
    if (!(await store.removeTagIf(r))) return false;
    o.onRecordRemoved?.(r);
    return true;
  });
  for (const [i, r] of going.entries()) if (removed[i]) report.images.push(recordName(r));
  // What is needed now: records written meanwhile (a pull, another process) keep their content.
  const needed = new Set<string>();
  if (going.length) for (const r of await allRecords(store)) for (const k of await keysOf(r.digest)) needed.add(k);
  else for (const k of reached) needed.add(k);
  const busyNow = await o.busy();
  const keep = async (digest: string) => {
    for (const k of await keysOf(digest)) needed.add(k);
  };
  /** Records this process wrote since: what they reach stays (a pull of another tag of the same image during the run). */
  const keepRecorded = async () => {
    for (const d of o.recorded?.() ?? []) await keep(d);
  };
  // On a shared store another replica may pull an image again while this run removes it: its
  // manifest is written anew (a newer modification time) before its record. Such a manifest stays,
  // and so does what it reaches; one that comes back after its removal keeps its blobs too.
  const runStart = Math.floor(Date.now() / 1000) * 1000; // S3 times have whole seconds
  const removedManifests: string[] = [];
  for (const kind of ["manifests", "blobs"] as ContentKind[]) {
    if (kind === "blobs" && store.shared) for (const d of removedManifests) if (await store.contentInfo("manifests", d)) await keep(d);
    const batch = [...candidates].filter((k) => k.startsWith(kind === "blobs" ? "b" : "m"));
    // A few at a time, each checked against what is needed just before it goes.
    for (let i = 0; i < batch.length; i += READ_CONCURRENCY) {
      await keepRecorded();
      await Promise.all(batch.slice(i, i + READ_CONCURRENCY).map(async (k) => {
        if (needed.has(k) || busyNow.has(k.slice(2))) return;
        const digest = k.slice(2);
        if (kind === "manifests" && store.shared && ((await store.contentInfo(kind, digest))?.modified ?? 0) >= runStart) {
          await keep(digest);
          return;
        }
        await store.removeContent(kind, digest);
        if (kind === "manifests") {
          removedManifests.push(digest);
          o.onManifestRemoved?.(digest);
        }
        report[kind]++;
        report.bytes += sizes.get(k) ?? 0;
      }));
    }
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}
