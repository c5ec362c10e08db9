// What the store holds, in bytes and items, known at start without a walk and kept exact as it
// changes: a store wrapper counts every commit and removal (after asking `admit` whether the bytes
// may come in), a snapshot (`state/usage.json`) gives the figures at start, and a walk in the
// background (at start, then now and then, and by `verify`) replaces them with the truth, which
// also covers what other processes (load, prune, a replica) and a kill -9 changed. On a shared
// store (S3 replicas) the walk is never quiet: one that raced with this process's changes is taken
// anyway, the content those changes touched counted again one by one.
import { StoreError, type BlobWriter, type ContentKind, type Store, type StoreStats } from "./types.ts";

const SNAPSHOT = "usage.json";
/** A walk that saw the store change while it ran is tried again this many times before giving up for now. */
const QUIET_WALK_TRIES = 3;

export interface UsageOptions {
  /**
   * Asked before a blob or manifest is committed: resolves when `bytes` more may be stored (after
   * evicting, if it must), rejects (StoreError "full") when they may not; nothing is kept then.
   */
  admit?: (bytes: number, kind: ContentKind) => Promise<() => void>;
  /** Told after every change of the figures (metrics). */
  changed?: (figures: StoreStats) => void;
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
}

const contentId = (kind: ContentKind, digest: string) => `${kind} ${digest}`;

/**
 * Counts the store's content by walking it (sizes from the listing); `seen` is told each item's
 * size, `tags: false` skips the records (their count is then 0).
 */
export async function walkStore(store: Store, o: { seen?: Map<string, number>; tags?: boolean } = {}): Promise<StoreStats> {
  const out: StoreStats = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
  for (const kind of ["blobs", "manifests"] as ContentKind[]) {
    for await (const c of store.listContentSizes(kind)) {
      out[kind]++;
      out.bytes += c.size;
      o.seen?.set(contentId(kind, c.digest), c.size);
    }
  }
  if (o.tags !== false) for await (const _ of store.allTags()) out.tags++;
  return out;
}

function parseSnapshot(bytes: Uint8Array | null): StoreStats | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    const n = (k: string) => (typeof v[k] === "number" && Number.isSafeInteger(v[k]) && (v[k] as number) >= 0 ? (v[k] as number) : null);
    const [bytesN, blobs, manifests, tags] = [n("bytes"), n("blobs"), n("manifests"), n("tags")];
    return bytesN === null || blobs === null || manifests === null || tags === null ? null : { bytes: bytesN, blobs, manifests, tags };
  } catch {
    return null;
  }
}

export function createUsage(inner: Store, opts: UsageOptions = {}): Usage {
  const figures: StoreStats = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
  let exact = false;
  /** Changes counted by this process; a walk is taken only when this did not move while it ran. */
  let changes = 0;
  let storedSinceWalk = 0;
  /** While a walk of a shared store runs: the content this process changed (counted again after it), and its net tag change. */
  let raced: { content: Map<string, ContentKind>; tags: number } | null = null;
  let walking: ReturnType<Usage["reconcile"]> | null = null;
  const adjust = (kind: ContentKind | "tags", n: number, bytes = 0, digest?: string) => {
    figures[kind] += n;
    figures.bytes += bytes;
    if (bytes > 0) storedSinceWalk += bytes;
    changes++;
    if (raced) {
      if (kind === "tags") raced.tags += n;
      else if (digest) raced.content.set(contentId(kind, digest), kind);
    }
    opts.changed?.(figures);
  };
  const admit = opts.admit ?? (() => Promise.resolve(() => {}));
  /** Admits `bytes`, runs `commit`, counts them when it did: the admitted bytes are held until counted. */
  async function admitted(kind: ContentKind, digest: string, bytes: number, commit: () => Promise<void>) {
    const existed = await inner.contentInfo(kind, digest);
    const settle = existed ? () => {} : await admit(bytes, kind);
    try {
      await commit();
      if (!existed) adjust(kind, 1, bytes, digest);
    } finally {
      settle();
    }
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
    writeManifest: (digest, bytes) => admitted("manifests", digest, bytes.byteLength, () => inner.writeManifest(digest, bytes)),
    async writeTag(rec) {
      const existed = await inner.readTag(rec.upstream, rec.repository, rec.tag);
      await inner.writeTag(rec);
      if (!existed) adjust("tags", 1);
    },
    async removeContent(kind, digest) {
      const info = await inner.contentInfo(kind, digest);
      await inner.removeContent(kind, digest);
      if (info) adjust(kind, -1, -info.size, digest);
    },
    async removeTag(upstream, repository, tag) {
      const existed = await inner.readTag(upstream, repository, tag);
      await inner.removeTag(upstream, repository, tag);
      if (existed) adjust("tags", -1);
    },
  } satisfies Partial<Store>);

  /** Figures from a walk, taken (synchronously after the last await); null when this process kept changing the store meanwhile (never on a shared store). */
  async function walked(contentOnly: boolean): Promise<StoreStats | null> {
    storedSinceWalk = 0;
    if (!inner.shared) {
      const at = changes;
      const out = await walkStore(inner, { tags: !contentOnly });
      if (changes !== at) return null;
      return Object.assign(figures, { ...out, tags: contentOnly ? figures.tags : out.tags });
    }
    // Other replicas change a shared store all the time, so no walk is quiet. What this process
    // changed meanwhile the walk may or may not have seen: each such item is counted as it is now.
    const seen = new Map<string, number>();
    const r: NonNullable<typeof raced> = { content: new Map(), tags: 0 };
    raced = r;
    try {
      const out = await walkStore(inner, { seen, tags: !contentOnly });
      // Changes made while these are counted again are counted again too (a few rounds at most).
      for (let round = 0; r.content.size && round < QUIET_WALK_TRIES; round++) {
        const batch = [...r.content];
        r.content.clear();
        for (const [id, kind] of batch) {
          const was = seen.get(id);
          const now = await inner.contentInfo(kind, id.slice(kind.length + 1)).catch(() => null);
          out[kind] += (now ? 1 : 0) - (was === undefined ? 0 : 1);
          out.bytes += (now?.size ?? 0) - (was ?? 0);
          if (now) seen.set(id, now.size);
          else seen.delete(id);
        }
      }
      if (r.content.size) return null;
      return Object.assign(figures, { ...out, tags: contentOnly ? figures.tags : out.tags + r.tags });
    } finally {
      raced = null;
    }
  }

  async function walk(contentOnly: boolean) {
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
      if (snap && !exact) {
        Object.assign(figures, snap);
        opts.changed?.(figures);
      }
    },
    reconcile(o = {}) {
      walking ??= walk(o.contentOnly === true).finally(() => (walking = null));
      return walking;
    },
    async save() {
      await inner.writeState(SNAPSHOT, new TextEncoder().encode(`${JSON.stringify({ ...figures, saved: new Date().toISOString() })}\n`));
    },
  };
  return usage;
}

/** Whether an error is the store refusing bytes for want of room. */
export const isStoreFull = (err: unknown) => err instanceof StoreError && err.failure === "full";
