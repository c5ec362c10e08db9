// The one owner of tag records in a running cache: records read once and kept in memory, the
// last-pulled and checked times that changed since the last write (the dirty set), the batched
// flush that merges them with the records on disk, and pins for images pulled by digest. Every
// write is a conditional update (Store.updateTag): replicas on one store never lose each other's
// pulls or pins.
import { BoundedMap } from "../lib/bounded-map.ts";
import { isDigest } from "../oci/digest.ts";
import { detectMediaType, parseManifest } from "../oci/mediatypes.ts";
import type { Target } from "../oci/reference.ts";
import { recordName } from "../store/record.ts";
import type { Store, TagRecord } from "../store/types.ts";
import { summarizeImage } from "./closure.ts";

export interface RecordedManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

/** Covered manifests pulled by digest known to have no pin record, so such a pull reads the disk at most once. */
const MAX_ABSENT = 20_000;
/** Records kept in memory besides the ones with unwritten times (those stay until flushed). */
const MAX_CLEAN_RECORDS = 10_000;
/** Unwritten records that start a flush at once rather than at the next timer (memory stays bounded). */
const MAX_DIRTY = 10_000;
/** Records written at once by a flush. */
const FLUSH_CONCURRENCY = 8;

/** A record as kept in memory: without its image summary, which only list, prune and verify read (from the store). */
function lean(rec: TagRecord): TagRecord {
  if (!rec.image) return rec;
  const { image: _, ...rest } = rec;
  return rest;
}

/** The tag records of a running cache; times are written in batches by `flush`. */
export interface TagBook {
  /** The record of a tag (or pin), from memory or the store. */
  get(target: Target, tag: string): Promise<TagRecord | null>;
  /** Writes the record of a tag just fetched: created stays when the digest did not change. */
  record(target: Target, tag: string, m: RecordedManifest, previous: TagRecord | null): Promise<void>;
  /** Records an image pulled by digest so that list, prune and export know it (load does this). */
  pin(target: Target, m: RecordedManifest): Promise<void>;
  /** A pull of a record: written later, by flush. `checked` when the upstream confirmed it. */
  pulled(rec: TagRecord, checked: boolean): void;
  /** A pull by digest through `target`: touches its pin record, or makes one unless `covered`. */
  pulledByDigest(target: Target, m: RecordedManifest, covered: boolean): Promise<void>;
  /** Pins or unpins a tag (or pin by digest) already recorded; false when there is no such record. */
  setPinned(target: Target, tag: string, pinned: boolean): Promise<boolean>;
  /** Forgets a record another command removed (prune). */
  forget(rec: Pick<TagRecord, "upstream" | "repository" | "tag" | "digest">): void;
  /** Writes records whose last-pulled or checked time changed; resolves to how many were written. */
  flush(): Promise<number>;
}

/** The later of two ISO times (the first when the second is absent). */
const later = (a: string, b: string | undefined) => (b !== undefined && b > a ? b : a);

export function createTagBook(store: Store, now: () => number, warn: (msg: string) => void): TagBook {
  /** Records read or written lately, least recently used first out. */
  const clean = new BoundedMap<string, TagRecord>(MAX_CLEAN_RECORDS);
  /** Records whose last-pulled or checked time is not written yet: never evicted before flush. */
  const dirty = new Map<string, TagRecord>();
  const records = {
    get: (k: string) => dirty.get(k) ?? clean.get(k),
    set: (k: string, r: TagRecord) => (dirty.has(k) ? dirty.set(k, r) : clean.set(k, r)),
    delete: (k: string) => {
      clean.delete(k);
      dirty.delete(k);
    },
  };
  const absent = new Set<string>();
  /** The time as ISO text, made once per millisecond however many pulls share it. */
  let isoAt = -1;
  let isoText = "";
  const iso = () => {
    const t = now();
    if (t !== isoAt) {
      isoAt = t;
      isoText = new Date(t).toISOString();
    }
    return isoText;
  };

  function touch(rec: TagRecord, fields: Partial<Pick<TagRecord, "lastPulled" | "checked">>) {
    Object.assign(rec, fields);
    const key = recordName(rec);
    clean.delete(key);
    dirty.set(key, rec);
    if (dirty.size >= MAX_DIRTY && !flushing) void book.flush();
  }
  let flushing: Promise<number> | null = null;

  const book: TagBook = {
    async get(target: Target, tag: string): Promise<TagRecord | null> {
      const key = recordName({ ...target, tag });
      let rec = records.get(key);
      if (!rec) {
        const disk = await store.readTag(target.upstream, target.repository, tag);
        if (disk) records.set(key, (rec = lean(disk)));
      }
      return rec ?? null;
    },

    async record(target: Target, tag: string, m: RecordedManifest, previous: TagRecord | null): Promise<void> {
      const t = iso();
      const place = { upstream: target.upstream, repository: target.repository, tag };
      const image = summarizeImage(m.digest, m.bytes);
      // The record as stored now decides, not the one read before the fetch: a pin or a later pull
      // another process (a replica) recorded meanwhile stays.
      const { record: rec } = await store.updateTag(place, (current) => {
        const was = current ?? previous;
        const next: TagRecord = {
          ...place, digest: m.digest, mediaType: m.mediaType, size: m.bytes.byteLength,
          created: was?.digest === m.digest ? was.created : t,
          lastPulled: later(t, current?.lastPulled), checked: later(t, current?.checked),
        };
        // A pin stays with its tag when the tag moves (the operator pinned the name).
        if (was?.pinned) next.pinned = true;
        // What the image needs, from the bytes at hand: list and prune then never read them again.
        if (image) next.image = image;
        return next;
      }, { absent: previous === null });
      const key = recordName(place);
      dirty.delete(key);
      clean.set(key, lean(rec!));
      absent.delete(key);
    },

    async pin(target: Target, m: RecordedManifest): Promise<void> {
      if (!(await book.get(target, m.digest))) await book.record(target, m.digest, m, null);
    },

    pulled(rec: TagRecord, checked: boolean) {
      const t = iso();
      touch(rec, checked ? { lastPulled: t, checked: t } : { lastPulled: t });
    },

    /**
     * A pull by digest through `target`: touches its pin record; when it has none, makes one
     * unless `covered` (a tag of this upstream in this repository points at it or at an index
     * listing it). At most one disk read per pin, then memory; a new record is written once,
     * before answering.
     */
    async pulledByDigest(target: Target, m: RecordedManifest, covered: boolean): Promise<void> {
      const key = recordName({ ...target, tag: m.digest });
      const known = records.get(key);
      if (known) return touch(known, { lastPulled: iso() });
      if (absent.has(key) && covered) return;
      try {
        const disk = absent.has(key) ? null : await store.readTag(target.upstream, target.repository, m.digest);
        if (disk) {
          const rec = lean(disk);
          records.set(key, rec);
          return touch(rec, { lastPulled: iso() });
        }
        if (!covered) return await book.record(target, m.digest, m, null);
        if (absent.size >= MAX_ABSENT) absent.clear();
        absent.add(key);
      } catch (err) {
        // The image is served all the same; the next pull tries the record again.
        warn(`cannot record the pull of ${key}: ${(err as Error).message}`);
      }
    },

    async setPinned(target: Target, tag: string, pinned: boolean): Promise<boolean> {
      const place = { upstream: target.upstream, repository: target.repository, tag };
      const key = recordName(place);
      // The record is written anyway: this process's unwritten pull times go with it.
      const unwritten = () => dirty.get(key);
      const withPin = (current: TagRecord | null): TagRecord | null => {
        if (!current) return null;
        const mine = unwritten();
        const lastPulled = later(current.lastPulled, mine?.lastPulled);
        const checked = mine?.digest === current.digest ? later(current.checked, mine.checked) : current.checked;
        if ((current.pinned === true) === pinned && lastPulled === current.lastPulled && checked === current.checked) return null;
        const next: TagRecord = { ...current, lastPulled, checked };
        if (pinned) next.pinned = true;
        else delete next.pinned;
        return next;
      };
      let { record: rec } = await store.updateTag(place, withPin);
      // A stored manifest pinned by digest that a tag covers has no record of its own: it gets one.
      if (!rec && pinned && isDigest(tag)) {
        const bytes = await store.readManifest(tag);
        const shape = bytes && parseManifest(bytes);
        const mediaType = shape && detectMediaType(shape);
        if (bytes && mediaType) {
          await book.record(target, tag, { digest: tag, mediaType, bytes }, null);
          rec = (await store.updateTag(place, withPin)).record;
        }
      }
      if (!rec) return false;
      // Written with the record; a pull since keeps it dirty (the flush keeps the stored pin).
      const mine = unwritten();
      if (mine && mine.lastPulled <= rec.lastPulled) dirty.delete(key);
      if (!dirty.has(key)) clean.set(key, lean(rec));
      else if (rec.pinned) mine!.pinned = true;
      else delete mine!.pinned;
      return true;
    },

    forget(rec: Pick<TagRecord, "upstream" | "repository" | "tag" | "digest">) {
      const key = recordName(rec);
      records.delete(key);
      dirty.delete(key);
      // A pull by digest of what this record pointed at may need a pin record now.
      absent.delete(recordName({ upstream: rec.upstream, repository: rec.repository, tag: rec.digest }));
    },

    /**
     * Writes records whose last-pulled or checked time changed. Another process (prune, load) may
     * have changed the store meanwhile: a record removed on disk is forgotten rather than written
     * back, and one that moved to another digest keeps the new digest, gaining only the later times.
     */
    async flush(): Promise<number> {
      // One write-out at a time; a caller waits for a running one, then writes what is left.
      while (flushing) await flushing.catch(() => 0);
      flushing = writeDirty().finally(() => (flushing = null));
      return flushing;
    },
  };
  return book;

  /** Merges one unwritten record with the one on disk and writes it; false when it was not written. */
  async function writeOne(key: string, rec: TagRecord): Promise<boolean> {
    try {
      // Merged with the record as stored, written only if nobody changed it meanwhile (else merged
      // again): another replica's later pull, a pin, or a new digest stays.
      const u = await store.updateTag(rec, (disk) => {
        if (!disk) return null;
        const lastPulled = later(disk.lastPulled, rec.lastPulled);
        const checked = disk.digest === rec.digest ? later(disk.checked, rec.checked) : disk.checked;
        return lastPulled === disk.lastPulled && checked === disk.checked ? null : { ...disk, lastPulled, checked };
      });
      if (!u.record) {
        clean.delete(key); // removed on disk (prune, eviction): forgotten rather than written back
        return false;
      }
      // A pull during the write made it dirty again: keep that one.
      if (!dirty.has(key)) clean.set(key, lean(u.record));
      return u.written;
    } catch (err) {
      warn(`cannot record access to ${key}: ${(err as Error).message}`);
      if (!dirty.has(key)) dirty.set(key, rec);
      return false;
    }
  }

  async function writeDirty(): Promise<number> {
    const pending: Array<[string, TagRecord] | undefined> = [...dirty];
    dirty.clear();
    let written = 0;
    let next = 0;
    // Several at a time: each write is a small file made durable (fsync), mostly waiting on the disk.
    // A few workers take the next record in turn: a flush of 10,000 records holds 8 writes in
    // flight, not 10,000 queued promises and closures.
    const worker = async () => {
      while (next < pending.length) {
        const i = next++;
        const [key, rec] = pending[i]!;
        pending[i] = undefined;
        if (await writeOne(key, rec)) written++;
      }
    };
    await Promise.all(Array.from({ length: FLUSH_CONCURRENCY }, worker));
    return written;
  }
}
