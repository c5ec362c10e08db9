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

/**
 * A pull's times not written yet (ms; checked -1 when no pull checked): for a plain pull the
 * last-pulled time alone, the place read from the record's name; with a check, the place and the
 * digest the check was for. Not the whole record: a burst of pulls faster than the flush writes
 * them keeps one of these per tag (100,000 distinct tags pulled at once held ~90,000 whole
 * records, ~60 MiB, while the flushes caught up).
 */
interface Unwritten {
  upstream: string;
  repository: string;
  tag: string;
  digest: string;
  lastPulled: number;
  checked: number;
}
type Dirty = number | Unwritten;

const isoOf = (ms: number) => new Date(ms).toISOString();
const lastPulledOf = (d: Dirty) => (typeof d === "number" ? d : d.lastPulled);
/** The time of a check for `digest` (-1: none). */
const checkedOf = (d: Dirty, digest: string) => (typeof d === "number" || d.digest !== digest ? -1 : d.checked);

/** Whether a record as written holds the unwritten times `d` already. */
function holds(rec: TagRecord, d: Dirty): boolean {
  const checked = checkedOf(d, rec.digest);
  return isoOf(lastPulledOf(d)) <= rec.lastPulled && (checked < 0 || isoOf(checked) <= rec.checked);
}

/** The place a record name (recordName) names, when it names it unambiguously; null otherwise. */
function placeOf(name: string): Pick<TagRecord, "upstream" | "repository" | "tag"> | null {
  // An upstream is a host (no "/"); a tag has no ":", a digest follows "@".
  const slash = name.indexOf("/");
  const at = name.indexOf("@");
  const sepAt = at >= 0 ? at : name.lastIndexOf(":");
  if (slash <= 0 || sepAt <= slash) return null;
  const place = { upstream: name.slice(0, slash), repository: name.slice(slash + 1, sepAt), tag: name.slice(sepAt + 1) };
  return recordName(place) === name ? place : null;
}

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
  /** Records read or written lately, least recently used first out (with this process's latest times). */
  const clean = new BoundedMap<string, TagRecord>(MAX_CLEAN_RECORDS);
  /** Times not written yet, by record: kept until flushed (a record read again from the store gets them back). */
  const dirty = new Map<string, Dirty>();
  /** The record with this process's unwritten times (a record evicted from `clean` and read again lacks them). */
  function withUnwritten(key: string, rec: TagRecord): TagRecord {
    const u = dirty.get(key);
    if (u === undefined) return rec;
    rec.lastPulled = later(rec.lastPulled, isoOf(lastPulledOf(u)));
    const checked = checkedOf(u, rec.digest);
    if (checked >= 0) rec.checked = later(rec.checked, isoOf(checked));
    return rec;
  }
  /** Keeps an unwritten entry (a failed write), merged with one a pull made meanwhile. */
  function keepUnwritten(key: string, u: Dirty) {
    const now = dirty.get(key);
    if (now === undefined) return void dirty.set(key, u);
    const lastPulled = Math.max(lastPulledOf(now), lastPulledOf(u));
    if (typeof now === "number") return void dirty.set(key, typeof u === "number" ? lastPulled : { ...u, lastPulled });
    now.lastPulled = lastPulled;
    now.checked = Math.max(now.checked, checkedOf(u, now.digest));
  }
  const absent = new Set<string>();
  /** The time as ISO text, made once per millisecond however many pulls share it. */
  let isoAt = -1;
  let isoText = "";
  const iso = (t = now()) => {
    if (t !== isoAt) {
      isoAt = t;
      isoText = new Date(t).toISOString();
    }
    return isoText;
  };

  /** A pull of `rec`: its times now, in memory at once and written by the next flush. */
  function touch(rec: TagRecord, checked: boolean) {
    const t = now();
    const text = iso(t);
    rec.lastPulled = text;
    if (checked) rec.checked = text;
    const key = recordName(rec);
    // Known already: no set (a set on every warm hit churns the map).
    if (clean.peek(key) !== rec) clean.set(key, rec);
    const u = dirty.get(key);
    if (typeof u === "object" && u.digest === rec.digest) {
      u.lastPulled = t;
      if (checked) u.checked = t;
    } else if (!checked && typeof u !== "object" && (u !== undefined || placeOf(key))) {
      dirty.set(key, t); // the common case: a number by the name, no strings of its own
    } else {
      dirty.set(key, { upstream: rec.upstream, repository: rec.repository, tag: rec.tag, digest: rec.digest, lastPulled: t, checked: checked ? t : -1 });
    }
    if (dirty.size >= MAX_DIRTY && !flushing) void book.flush();
  }
  let flushing: Promise<number> | null = null;

  const book: TagBook = {
    async get(target: Target, tag: string): Promise<TagRecord | null> {
      const key = recordName({ ...target, tag });
      let rec = clean.get(key);
      if (!rec) {
        const disk = await store.readTag(target.upstream, target.repository, tag);
        if (disk) clean.set(key, (rec = withUnwritten(key, lean(disk))));
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
      touch(rec, checked);
    },

    /**
     * A pull by digest through `target`: touches its pin record; when it has none, makes one
     * unless `covered` (a tag of this upstream in this repository points at it or at an index
     * listing it). At most one disk read per pin, then memory; a new record is written once,
     * before answering.
     */
    async pulledByDigest(target: Target, m: RecordedManifest, covered: boolean): Promise<void> {
      const key = recordName({ ...target, tag: m.digest });
      const known = clean.get(key);
      if (known) return touch(known, false);
      if (absent.has(key) && covered) return;
      try {
        const disk = absent.has(key) ? null : await store.readTag(target.upstream, target.repository, m.digest);
        if (disk) return touch(withUnwritten(key, lean(disk)), false);
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
        const lastPulled = mine === undefined ? current.lastPulled : later(current.lastPulled, isoOf(lastPulledOf(mine)));
        const mineChecked = mine === undefined ? -1 : checkedOf(mine, current.digest);
        const checked = mineChecked >= 0 ? later(current.checked, isoOf(mineChecked)) : current.checked;
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
      // Written with the record; a pull since keeps its times unwritten (the flush keeps the stored pin).
      const mine = unwritten();
      if (mine !== undefined && holds(rec, mine)) dirty.delete(key);
      clean.set(key, withUnwritten(key, lean(rec)));
      return true;
    },

    forget(rec: Pick<TagRecord, "upstream" | "repository" | "tag" | "digest">) {
      const key = recordName(rec);
      clean.delete(key);
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
  async function writeOne(key: string, rec: Dirty): Promise<boolean> {
    try {
      // A plain pull's entry is its time by the record's name (placeOf was checked when it was made).
      const place = typeof rec === "number" ? placeOf(key)! : rec;
      const pulled = isoOf(lastPulledOf(rec));
      // Merged with the record as stored, written only if nobody changed it meanwhile (else merged
      // again): another replica's later pull, a pin, or a new digest stays.
      const u = await store.updateTag(place, (disk) => {
        if (!disk) return null;
        const lastPulled = later(disk.lastPulled, pulled);
        const checkedAt = checkedOf(rec, disk.digest);
        const checked = checkedAt >= 0 ? later(disk.checked, isoOf(checkedAt)) : disk.checked;
        return lastPulled === disk.lastPulled && checked === disk.checked ? null : { ...disk, lastPulled, checked };
      });
      if (!u.record) {
        clean.delete(key); // removed on disk (prune, eviction): forgotten rather than written back
        return false;
      }
      // A pull during the write has its times unwritten again: the record in memory keeps them.
      clean.set(key, withUnwritten(key, lean(u.record)));
      return u.written;
    } catch (err) {
      warn(`cannot record access to ${key}: ${(err as Error).message}`);
      keepUnwritten(key, rec);
      return false;
    }
  }

  async function writeDirty(): Promise<number> {
    const pending: Array<[string, Dirty] | undefined> = [...dirty];
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
