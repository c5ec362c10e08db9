// What the store holds, in bytes and items, known at start without a walk and kept exact as it
// changes: a store wrapper counts every commit and removal (after asking `admit` whether the bytes
// may come in), a snapshot (`state/usage.json`) gives the figures at start, and a walk in the
// background (at start, then now and then, and by `verify`) replaces them with the truth, which
// also covers what other processes (load, prune, a replica) and a kill -9 changed.
import { processOwner } from "./owner.ts";
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
  /** Reads the snapshot, if any (fast: one small read). */
  load(): Promise<void>;
  /**
   * Walks the store and takes its figures when nothing changed meanwhile (tries a few times);
   * returns the figures before and after, or null when the store kept changing.
   */
  reconcile(): Promise<{ before: StoreStats; after: StoreStats } | null>;
  /** Writes the snapshot (done by reconcile, and by callers now and then and at exit). */
  save(): Promise<void>;
  /**
   * Whether another process (load, prune, verify, a replica) wrote the snapshot since this one
   * last read or wrote it: its changes are then worth a walk. One small read.
   */
  changedElsewhere(): Promise<boolean>;
}

/** Counts the store's content by walking it: sizes from the listing, records counted by their keys (none is read). */
export const walkStore = (store: Store): Promise<StoreStats> => store.stats();

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
  const stamp = (s: Pick<Snapshot, "owner" | "saved">) => `${s.owner} ${s.saved}`;
  /** Changes counted by this process; a walk is taken only when this did not move while it ran. */
  let changes = 0;
  const adjust = (kind: ContentKind | "tags", n: number, bytes = 0) => {
    figures[kind] += n;
    figures.bytes += bytes;
    changes++;
    opts.changed?.(figures);
  };
  const admit = opts.admit ?? (() => Promise.resolve(() => {}));
  /** Admits `bytes`, runs `commit`, counts them when it did: the admitted bytes are held until counted. */
  async function admitted(kind: ContentKind, digest: string, bytes: number, commit: () => Promise<void>) {
    const existed = await inner.contentInfo(kind, digest);
    const settle = existed ? () => {} : await admit(bytes, kind);
    try {
      await commit();
      if (!existed) adjust(kind, 1, bytes);
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
      if (info) adjust(kind, -1, -info.size);
    },
    async removeTag(upstream, repository, tag) {
      const existed = await inner.readTag(upstream, repository, tag);
      await inner.removeTag(upstream, repository, tag);
      if (existed) adjust("tags", -1);
    },
  } satisfies Partial<Store>);

  const usage: Usage = {
    store,
    figures,
    get exact() {
      return exact;
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
    async reconcile() {
      const before = { ...figures };
      for (let i = 0; i < QUIET_WALK_TRIES; i++) {
        const at = changes;
        const walked = await walkStore(inner);
        if (changes !== at) continue;
        Object.assign(figures, walked);
        exact = true;
        opts.changed?.(figures);
        await usage.save().catch(() => {});
        return { before, after: walked };
      }
      return null;
    },
    async save() {
      const snap: Snapshot = { ...figures, owner: processOwner(), saved: new Date().toISOString() };
      await inner.writeState(SNAPSHOT, new TextEncoder().encode(`${JSON.stringify(snap)}\n`));
      seen = stamp(snap);
    },
    async changedElsewhere() {
      const snap = parseSnapshot(await inner.readState(SNAPSHOT).catch(() => null));
      if (!snap || stamp(snap) === seen) return false;
      seen = stamp(snap);
      return snap.owner !== processOwner();
    },
  };
  return usage;
}

/** Whether an error is the store refusing bytes for want of room. */
export const isStoreFull = (err: unknown) => err instanceof StoreError && err.failure === "full";
