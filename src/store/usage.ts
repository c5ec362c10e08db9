// What the store holds, in bytes and items, known at start without a walk and kept exact as it
// changes: a store wrapper counts every commit and removal (after asking `admit` whether the bytes
// may come in), a snapshot (`state/usage.json`) gives the figures at start, and a walk in the
// background (at start, then now and then, and by `verify`) replaces them with the truth, which
// also covers what other processes (load, prune, a replica) and a kill -9 changed. A walk is
// exact on a busy store too: what this process changes while it runs is counted again one by one.
import { processOwner } from "./owner.ts";
import { StoreError, type BlobWriter, type ContentKind, type Store, type StoreStats } from "./types.ts";

const SNAPSHOT = "usage.json";
/** Rounds of counting again what changed during a walk (and during the last round), then tries of a whole walk. */
const QUIET_WALK_TRIES = 3;

export interface UsageOptions {
  /**
   * Asked before a blob or manifest is committed: resolves when `bytes` more may be stored (after
   * evicting, if it must), rejects (StoreError "full") when they may not; nothing is kept then.
   */
  admit?: (bytes: number, kind: ContentKind) => Promise<() => void>;
  /**
   * False when `admit` admits everything at once (the store has no bound): a manifest is then
   * written without looking first whether it is there. Absent: taken as bounded when `admit` is given.
   */
  bounded?: () => boolean;
  /** Told after every change of the figures (metrics). */
  changed?: (figures: StoreStats) => void;
  /** Told of every tag record written, by the digest it points at (a running eviction keeps what it reaches). */
  recorded?: (digest: string) => void;
}

export interface Usage {
  /** The store to use: counts what comes and goes. */
  readonly store: Store;
  /** The figures now: from the snapshot or the last walk, plus what this process changed since. */
  readonly figures: Readonly<StoreStats>;
  /** Whether the figures come from a walk (false: from a snapshot, or a guess of zero). */
  readonly exact: boolean;
  /** Bytes this process stored since its last walk began (a shared store walks again after enough). */
  readonly storedSinceWalk: number;
  /** Reads the snapshot, if any (fast: one small read). */
  load(): Promise<void>;
  /**
   * Walks the store and takes its figures when nothing changed meanwhile (tries a few times; on a
   * shared store, recounts what changed instead); returns the figures before and after, or null
   * when the store kept changing. `contentOnly` leaves the tag count as it is (no record is read:
   * the frequent walks of a shared store). One walk at a time: a second call joins the running one.
   */
  reconcile(opts?: { contentOnly?: boolean }): Promise<{ before: StoreStats; after: StoreStats } | null>;
  /** Writes the snapshot (done by reconcile, and by callers now and then and at exit). */
  save(): Promise<void>;
  /**
   * Whether another process (load, prune, verify, a replica) wrote the snapshot since this one
   * last read or wrote it: its changes are then worth a walk. One small read.
   */
  changedElsewhere(): Promise<boolean>;
}

const KINDS: readonly ContentKind[] = ["blobs", "manifests"];
const recordKeyOf = (r: { upstream: string; repository: string; tag: string }) => `${r.upstream}/${r.repository}:${r.tag}`;
/** Each Usage signs its snapshots: another one's (a load, a prune, a replica) is news. */
let instances = 0;

/**
 * Counts the store's content by walking it (sizes from the listing), kinds in KINDS order and each
 * kind's digests in key order; `onItem` is told each item. `tags: false` skips the records (their
 * count is then 0); records are counted by their keys, none is read.
 */
export async function walkStore(store: Store, o: { onItem?: (kind: ContentKind, digest: string, size: number) => void; onTags?: () => void; tags?: boolean } = {}): Promise<StoreStats> {
  const out: StoreStats = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
  for (const kind of KINDS) {
    for await (const c of store.listContentSizes(kind)) {
      out[kind]++;
      out.bytes += c.size;
      o.onItem?.(kind, c.digest, c.size);
    }
  }
  if (o.tags !== false) {
    o.onTags?.();
    out.tags = await store.countTags();
  }
  return out;
}

/** Where an item comes in a walk: kinds in KINDS order, then digests in key order ("sha256:" before "sha512:", hex sorted). */
const walkOrder = (kind: ContentKind, digest: string) => `${KINDS.indexOf(kind)}${digest}`;

/**
 * What a walk counted of an item this process changed while it ran: its size, nothing
 * (undefined), or "pending" while the walk has not reached it (it counts what it finds then).
 */
type Counted = number | undefined | "pending";

interface Snapshot extends StoreStats {
  owner: string;
  saved: string;
}

function parseSnapshot(bytes: Uint8Array | null): Snapshot | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    const owner = typeof v.owner === "string" ? v.owner : "";
    const saved = typeof v.saved === "string" ? v.saved : "";
    const n = (k: string) => (typeof v[k] === "number" && Number.isSafeInteger(v[k]) && (v[k] as number) >= 0 ? (v[k] as number) : null);
    const [bytesN, blobs, manifests, tags] = [n("bytes"), n("blobs"), n("manifests"), n("tags")];
    return bytesN === null || blobs === null || manifests === null || tags === null ? null : { bytes: bytesN, blobs, manifests, tags, owner, saved };
  } catch {
    return null;
  }
}

export function createUsage(inner: Store, opts: UsageOptions = {}): Usage {
  const figures: StoreStats = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
  let exact = false;
  /** The snapshot as this process last read or wrote it: another one's is news. */
  let seen = "";
  const owner = `${processOwner()}-${++instances}`;
  const stamp = (s: Pick<Snapshot, "owner" | "saved">) => `${s.owner} ${s.saved}`;
  let storedSinceWalk = 0;
  /**
   * While a walk runs: where it is, and for each item this process changed meanwhile what the walk
   * counted of it. An item the walk had passed counted as it was before the change (present if
   * this was a removal); one ahead of it counts as the walk finds it (or not at all, when the
   * walk's listing was taken before it came). Afterwards each is counted again as it is.
   */
  let walk: { at: string; items: Map<string, { kind: ContentKind; digest: string; counted: Counted; dirty: boolean }>; tags: number } | null = null;
  let walking: ReturnType<Usage["reconcile"]> | null = null;
  const adjust = (kind: ContentKind | "tags", n: number, bytes = 0, digest?: string) => {
    figures[kind] += n;
    figures.bytes += bytes;
    if (bytes > 0) storedSinceWalk += bytes;
    if (walk) {
      if (kind === "tags") walk.tags += n;
      else if (digest) {
        const id = walkOrder(kind, digest);
        const item = walk.items.get(id);
        if (item) item.dirty = true;
        else walk.items.set(id, { kind, digest, dirty: true, counted: id <= walk.at ? (n < 0 ? -bytes : undefined) : "pending" });
      }
    }
    opts.changed?.(figures);
  };
  /** Count changes of one item, one at a time: two commits (or removals) of a digest at once count once. */
  const serial = new Map<string, Promise<unknown>>();
  function oneAtATime<T>(kind: ContentKind | "tags", id: string, f: () => Promise<T>): Promise<T> {
    const key = `${kind} ${id}`;
    const run = (serial.get(key) ?? Promise.resolve()).then(f);
    // The chain goes on whatever this one's outcome (the caller has it).
    const tail: Promise<unknown> = run.catch(() => {}).finally(() => serial.get(key) === tail && serial.delete(key));
    serial.set(key, tail);
    return run;
  }
  const admit = opts.admit ?? (() => Promise.resolve(() => {}));
  /** Admits `bytes`, runs `commit`, counts them when it did: the admitted bytes are held until counted. */
  function admitted(kind: ContentKind, digest: string, bytes: number, commit: () => Promise<void>) {
    return oneAtATime(kind, digest, async () => {
      const existed = await inner.contentInfo(kind, digest);
      const settle = existed ? () => {} : await admit(bytes, kind);
      try {
        await commit();
        if (!existed) adjust(kind, 1, bytes, digest);
      } finally {
        settle();
      }
    });
  }

  // Everything else is the inner store's, looked up at each call (a test may replace a method).
  const store: Store = Object.assign(Object.create(inner) as Store, {
    async createBlobWriter(digest, o) {
      const w = await inner.createBlobWriter(digest, o);
      const counted: BlobWriter = {
        get written() {
          return w.written;
        },
        write: (c) => w.write(c),
        verify: () => w.verify(),
        readAt: (p, into) => w.readAt(p, into),
        abort: () => w.abort(),
        release: () => w.release(),
        async commit() {
          // Checked first: bytes that do not match their digest never make an eviction run.
          await w.verify();
          await admitted("blobs", digest, w.written, () => w.commit());
        },
      };
      return counted;
    },
    writeManifest: (digest, bytes) => {
      // Nothing to admit (no bound): a conditional create says whether it is new, without a look first.
      const bounded = opts.bounded ? opts.bounded() : opts.admit !== undefined;
      if (!inner.createManifest || bounded) return admitted("manifests", digest, bytes.byteLength, () => inner.writeManifest(digest, bytes));
      return oneAtATime("manifests", digest, async () => {
        if (await inner.createManifest!(digest, bytes)) adjust("manifests", 1, bytes.byteLength, digest);
      });
    },
    writeTag: (rec) => oneAtATime("tags", recordKeyOf(rec), async () => {
      const existed = await inner.readTag(rec.upstream, rec.repository, rec.tag);
      await inner.writeTag(rec);
      opts.recorded?.(rec.digest);
      if (!existed) adjust("tags", 1);
    }),
    updateTag: (place, change, o) => oneAtATime("tags", recordKeyOf(place), async () => {
      const u = await inner.updateTag(place, change, o);
      if (u.written) opts.recorded?.(u.record!.digest);
      if (u.created) adjust("tags", 1);
      return u;
    }),
    removeTagIf: (expected) => oneAtATime("tags", recordKeyOf(expected), async () => {
      const removed = await inner.removeTagIf(expected);
      if (removed) adjust("tags", -1);
      return removed;
    }),
    removeContent: (kind, digest) => oneAtATime(kind, digest, async () => {
      const info = await inner.contentInfo(kind, digest);
      await inner.removeContent(kind, digest);
      if (info) adjust(kind, -1, -info.size, digest);
    }),
    removeTag: (upstream, repository, tag) => oneAtATime("tags", recordKeyOf({ upstream, repository, tag }), async () => {
      const existed = await inner.readTag(upstream, repository, tag);
      await inner.removeTag(upstream, repository, tag);
      if (existed) adjust("tags", -1);
    }),
  } satisfies Partial<Store>);

  /**
   * Figures from a walk, exact whatever this process changed meanwhile (see `walk`); other
   * processes' changes during it are theirs to report (their snapshot makes this one walk again).
   */
  async function walked(contentOnly: boolean): Promise<StoreStats | null> {
    storedSinceWalk = 0;
    const w: NonNullable<typeof walk> = { at: "", items: new Map(), tags: 0 };
    walk = w;
    try {
      const out = await walkStore(inner, {
        tags: !contentOnly,
        onItem(kind, digest, size) {
          w.at = walkOrder(kind, digest);
          const item = w.items.get(w.at);
          if (item?.counted === "pending") item.counted = size;
        },
        // Records are counted at the end, as they are then: only changes from then on are added.
        onTags: () => void (w.tags = 0),
      });
      w.at = "\uffff"; // past every item: a change from now on is counted as a change after the walk
      for (const item of w.items.values()) if (item.counted === "pending") item.counted = undefined;
      // Each changed item counted as it is now; changed again meanwhile, again (a few rounds at most).
      for (let round = 0; round < QUIET_WALK_TRIES; round++) {
        const dirty = [...w.items.values()].filter((i) => i.dirty);
        if (!dirty.length) break;
        for (const item of dirty) {
          item.dirty = false;
          const now = await inner.contentInfo(item.kind, item.digest).catch(() => null);
          const was = item.counted as number | undefined;
          out[item.kind] += (now ? 1 : 0) - (was === undefined ? 0 : 1);
          out.bytes += (now?.size ?? 0) - (was ?? 0);
          item.counted = now?.size;
        }
      }
      if ([...w.items.values()].some((i) => i.dirty)) return null;
      return Object.assign(figures, { ...out, tags: contentOnly ? figures.tags : out.tags + w.tags });
    } finally {
      walk = null;
    }
  }

  async function reconcileNow(contentOnly: boolean) {
    const before = { ...figures };
    for (let i = 0; i < QUIET_WALK_TRIES; i++) {
      const after = await walked(contentOnly);
      if (!after) continue;
      exact = true;
      opts.changed?.(figures);
      await usage.save().catch(() => {});
      return { before, after: { ...after } };
    }
    return null;
  }

  const usage: Usage = {
    store,
    figures,
    get exact() {
      return exact;
    },
    get storedSinceWalk() {
      return storedSinceWalk;
    },
    async load() {
      const snap = parseSnapshot(await inner.readState(SNAPSHOT).catch(() => null));
      if (snap) seen = stamp(snap);
      if (snap && !exact) {
        const { bytes, blobs, manifests, tags } = snap;
        Object.assign(figures, { bytes, blobs, manifests, tags });
        opts.changed?.(figures);
      }
    },
    reconcile(o = {}) {
      walking ??= reconcileNow(o.contentOnly === true).finally(() => (walking = null));
      return walking;
    },
    async save() {
      const snap: Snapshot = { ...figures, owner, saved: new Date().toISOString() };
      await inner.writeState(SNAPSHOT, new TextEncoder().encode(`${JSON.stringify(snap)}\n`));
      seen = stamp(snap);
    },
    async changedElsewhere() {
      const snap = parseSnapshot(await inner.readState(SNAPSHOT).catch(() => null));
      if (!snap || stamp(snap) === seen) return false;
      seen = stamp(snap);
      return snap.owner !== owner;
    },
  };
  return usage;
}

/** Whether an error is the store refusing bytes for want of room. */
export const isStoreFull = (err: unknown) => err instanceof StoreError && err.failure === "full";
