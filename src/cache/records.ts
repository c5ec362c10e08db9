// The one owner of tag records in a running cache: records read once and kept in memory, the
// last-pulled and checked times that changed since the last write (the dirty set), the batched
// flush that merges them with the records on disk, and pins for images pulled by digest.
import pLimit from "p-limit";
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
      const rec: TagRecord = {
        upstream: target.upstream, repository: target.repository, tag,
        digest: m.digest, mediaType: m.mediaType, size: m.bytes.byteLength,
        created: previous?.digest === m.digest ? previous.created : t,
        lastPulled: t, checked: t,
      };
      // What the image needs, from the bytes at hand: list and prune then never read them again.
      const image = summarizeImage(m.digest, m.bytes);
      // A pin stays with its tag when the tag moves (the operator pinned the name); the record as
      // it is now decides, not the one read before the fetch (a pin set meanwhile counts).
      const key0 = recordName(rec);
      if ((records.get(key0) ?? previous)?.pinned) rec.pinned = true;
      await store.writeTag(image ? { ...rec, image } : rec);
      const key = recordName(rec);
      dirty.delete(key);
      clean.set(key, rec);
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
      await book.flush();
      let disk = await store.readTag(target.upstream, target.repository, tag);
      // A stored manifest pinned by digest that a tag covers has no record of its own: it gets one.
      if (!disk && pinned && isDigest(tag)) {
        const bytes = await store.readManifest(tag);
        const shape = bytes && parseManifest(bytes);
        const mediaType = shape && detectMediaType(shape);
        if (bytes && mediaType) {
          await book.record(target, tag, { digest: tag, mediaType, bytes }, null);
          disk = await store.readTag(target.upstream, target.repository, tag);
        }
      }
      if (!disk) return false;
      const rec: TagRecord = { ...disk };
      if (pinned) rec.pinned = true;
      else delete rec.pinned;
      await store.writeTag(rec);
      const key = recordName(rec);
      dirty.delete(key);
      clean.set(key, lean(rec));
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

  async function writeDirty(): Promise<number> {
    const pending = [...dirty];
    dirty.clear();
    let written = 0;
    // Several at a time: each write is a small file made durable (fsync), mostly waiting on the disk.
    const limit = pLimit(FLUSH_CONCURRENCY);
    await Promise.all(pending.map(([key, rec]) => limit(async () => {
      try {
        const disk = await store.readTag(rec.upstream, rec.repository, rec.tag);
        if (!disk) {
          clean.delete(key);
          return;
        }
        const later = (a: string, b: string) => (a > b ? a : b);
        const merged = disk.digest === rec.digest
          ? { ...disk, lastPulled: later(disk.lastPulled, rec.lastPulled), checked: later(disk.checked, rec.checked) }
          : { ...disk, lastPulled: later(disk.lastPulled, rec.lastPulled) };
        await store.writeTag(merged);
        // A pull during the write made it dirty again: keep that one.
        if (!dirty.has(key)) clean.set(key, lean(merged));
        written++;
      } catch (err) {
        warn(`cannot record access to ${key}: ${(err as Error).message}`);
        if (!dirty.has(key)) dirty.set(key, rec);
      }
    })));
    return written;
  }
}
