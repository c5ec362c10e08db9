// The store's layout, written once over any driver (driver.ts): where blobs, manifests and tag
// records go (keys.ts), the checks before anything is kept (digests, names, record validity), tag
// and content listing, damaged records, statistics. The directory, memory and S3 back-ends are
// drivers; this is the Store the cache uses.
import { digestOf, isDigest, parseDigest } from "../oci/digest.ts";
import type { Driver } from "./driver.ts";
import {
  ALGORITHMS, CONTENT_KINDS, LAYOUT_DIRS, RECORDS_PREFIX, contentKey, contentPrefix, ownTempPrefix, parseContentKey,
  parseRecordKey, recordDir, recordKey, stateKey, tagOfRecordName,
} from "./keys.ts";
import { perKey } from "./lock.ts";
import { parseTagRecord, serializeTagRecord } from "./record.ts";
import { StoreError, type ContentKind, type DamagedRecord, type Store, type StoreStats, type TagRecord, type TagUpdate } from "./types.ts";
import { verifyingWriter } from "./writer.ts";

/** Tag records read at once while walking the store (listing 10,000 images must stay fast). */
const READ_BATCH = 256;
/** Conditional writes of one record that may lose to other writers in a row before updateTag gives up. */
export const UPDATE_TRIES = 20;

/** Wait before try `n` + 1 after a lost race: full jitter, doubling from 4 ms up to 250 ms. */
const backoff = (n: number) => Bun.sleep(Math.random() * Math.min(250, 4 * 2 ** n));

/**
 * `f` on the key of a place; a place the layout refuses is a rejected promise, as from any store
 * call. No closure per call: the warm blob path is one key and one driver call, no extra await.
 */
function atKey<P, T>(key: (place: P) => string, place: P, f: (key: string) => Promise<T>): Promise<T> {
  let k: string;
  try {
    k = key(place);
  } catch (err) {
    return Promise.reject(err);
  }
  return f(k);
}

const blobKey = (digest: string) => contentKey("blobs", digest);
const manifestKey = (digest: string) => contentKey("manifests", digest);
const contentKeyOf = (c: { kind: ContentKind; digest: string }) => contentKey(c.kind, c.digest);

/** The key of a manifest, once its bytes are known to match its digest. */
function checkedManifestKey(digest: string, bytes: Uint8Array): string {
  const key = manifestKey(digest);
  if (digestOf(bytes, parseDigest(digest)!.algorithm) !== digest) throw new StoreError("corrupt", `manifest bytes do not match ${digest}`);
  return key;
}

export function createLayoutStore(driver: Driver): Store {
  const serve = (key: string) => driver.serve(key);
  const read = (key: string) => driver.read(key);
  const stat = (key: string) => driver.stat(key);
  const remove = (key: string) => driver.remove(key);
  // One conditional write of a record at a time in this process: only other processes make one lose.
  const oneAtATime = perKey();
  /**
   * Every record object in key order, parsed against the place its key names (null when it is not
   * a valid record of that upstream, repository and tag). One listing, then reads a batch at a time.
   */
  async function* records(): AsyncGenerator<{ key: string; record: TagRecord | null }> {
    let batch: string[] = [];
    let places: Pick<TagRecord, "upstream" | "repository" | "tag">[] = []; // each key parsed once, while listing
    async function* flush() {
      const read = await driver.readMany(batch);
      for (const [i, key] of batch.entries()) {
        const bytes = read[i];
        if (bytes) yield { key, record: parseTagRecord(bytes, places[i]) }; // absent: removed meanwhile
      }
      batch = [];
      places = [];
    }
    for await (const e of driver.list(RECORDS_PREFIX)) {
      const place = parseRecordKey(e.key);
      if (!place) continue;
      batch.push(e.key);
      places.push(place);
      if (batch.length >= READ_BATCH) yield* flush();
    }
    yield* flush();
  }

  return {
    location: driver.location,

    shared: driver.shared === true,

    init: () => driver.init(LAYOUT_DIRS),

    async probe() {
      const key = `${ownTempPrefix()}probe`;
      await driver.put(key, new Uint8Array([1]));
      if (!(await driver.read(key))) throw new StoreError("unavailable", `${driver.location}: a probe written to ${key} cannot be read back`);
      await driver.remove(key);
    },

    statBlob: (digest) => atKey(blobKey, digest, serve),

    createBlobWriter: (digest, opts = {}) =>
      atKey(blobKey, digest, async (key) => verifyingWriter(digest, opts.size, await driver.openWriter(key))),

    readManifest: (digest) => atKey(manifestKey, digest, read),

    async writeManifest(digest, bytes) {
      await driver.put(checkedManifestKey(digest, bytes), bytes);
    },

    ...(driver.create && {
      async createManifest(digest: string, bytes: Uint8Array) {
        const key = checkedManifestKey(digest, bytes);
        if (await driver.create!(key, bytes)) return true;
        // There already: written again all the same, as writeManifest would (the same verified bytes).
        await driver.put(key, bytes);
        return false;
      },
    }),

    readTag: (upstream, repository, tag) =>
      atKey(recordKey, { upstream, repository, tag }, (key) =>
        driver.read(key).then((bytes) => (bytes ? parseTagRecord(bytes, { upstream, repository, tag }) : null))),

    async writeTag(record) {
      await driver.put(recordKey(record), serializeTagRecord(record));
    },

    updateTag: (place, change, opts) => atKey(recordKey, place, (key) => oneAtATime(key, async (): Promise<TagUpdate> => {
      // A record the caller has just found absent is created without reading it again (one round
      // trip on S3, not two): the write is a create (If-None-Match: *), so a record another writer
      // made meanwhile makes it lose, and the loop below reads that one and merges with it.
      const guess = opts?.absent ? change(null) : null;
      if (guess) {
        if (recordKey(guess) !== key) throw new StoreError("invalid", `an update of ${key} returned the record of ${recordKey(guess)}`);
        if (await driver.putIf(key, serializeTagRecord(guess), null)) return { record: guess, written: true, created: true };
      }
      for (let n = 1; ; n++) {
        const { bytes, version } = await driver.readVersioned(key);
        const current = bytes && parseTagRecord(bytes, place);
        const next = change(current);
        if (!next) return { record: current, written: false, created: false };
        if (recordKey(next) !== key) throw new StoreError("invalid", `an update of ${key} returned the record of ${recordKey(next)}`);
        if (await driver.putIf(key, serializeTagRecord(next), version)) return { record: next, written: true, created: !current };
        if (n >= UPDATE_TRIES) throw new StoreError("conflict", `${key}: ${n} conditional writes in a row lost to other writers; try again`);
        await backoff(n);
      }
    })),

    removeTagIf: (expected) => atKey(recordKey, expected, (key) => oneAtATime(key, async () => {
      // Compared as stored: a field another writer changed (a later pull, a pin) keeps the record.
      const want = serializeTagRecord(expected);
      const same = (bytes: Uint8Array) => {
        const current = parseTagRecord(bytes, expected);
        return current !== null && Buffer.compare(serializeTagRecord(current), want) === 0;
      };
      if (driver.removeWhen) return driver.removeWhen(key, same);
      const { bytes, version } = await driver.readVersioned(key);
      if (!bytes || !version || !same(bytes)) return false;
      return driver.removeIf(key, version);
    })),

    async countTags() {
      let n = 0;
      for await (const e of driver.list(RECORDS_PREFIX)) if (parseRecordKey(e.key)) n++;
      return n;
    },

    async *listContentSizes(kind) {
      for (const algorithm of ALGORITHMS) {
        const prefix = contentPrefix(kind, algorithm);
        for await (const e of driver.list(prefix, true)) {
          const digest = `${algorithm}:${e.key.slice(prefix.length)}`;
          // A size of -1: removed between the listing and its stat.
          if (isDigest(digest) && e.size >= 0) yield { digest, size: e.size };
        }
      }
    },

    readState: (name) => atKey(stateKey, name, read),

    writeState: (name, bytes) => atKey(stateKey, name, (key) => driver.put(key, bytes)),

    createState: (name, bytes) => atKey(stateKey, name, async (key) => {
      if (driver.create) return driver.create(key, bytes);
      throw new StoreError("unavailable", `${driver.location}: this back-end cannot create a file only if it is absent`);
    }),

    removeState: (name) => atKey(stateKey, name, remove),

    async *listState(dir) {
      const under = stateKey(`${dir}/x`).slice(0, -1);
      for await (const e of driver.list(under)) {
        const name = e.key.slice(under.length);
        if (!name.includes("/")) yield name;
      }
    },

    space: () => driver.space?.() ?? Promise.resolve(null),

    async listTags(upstream, repository) {
      const dir = recordDir(upstream, repository);
      const out: string[] = [];
      for await (const e of driver.list(dir)) {
        const tag = tagOfRecordName(e.key.slice(dir.length));
        if (tag !== null) out.push(tag);
      }
      // Key order puts "v1-rc.json" before "v1.json": tags sort by their own names.
      return out.sort();
    },

    async *tagPlaces() {
      for await (const e of driver.list(RECORDS_PREFIX)) {
        const place = parseRecordKey(e.key);
        if (place) yield place;
      }
    },

    async *allTags(onDamaged) {
      for await (const r of records()) {
        if (r.record) yield r.record;
        else onDamaged?.(r.key);
      }
    },

    async *damagedTags(): AsyncGenerator<DamagedRecord> {
      for await (const r of records()) if (!r.record) yield { where: r.key, remove: () => driver.remove(r.key) };
    },

    async *listContent(kind) {
      for (const algorithm of ALGORITHMS) {
        const prefix = contentPrefix(kind, algorithm);
        for await (const e of driver.list(prefix)) {
          const digest = `${algorithm}:${e.key.slice(prefix.length)}`;
          if (isDigest(digest)) yield digest;
        }
      }
    },

    contentInfo: (kind, digest) => atKey(contentKeyOf, { kind, digest }, stat),

    removeContent: (kind, digest) => atKey(contentKeyOf, { kind, digest }, remove),

    removeTag: (upstream, repository, tag) => atKey(recordKey, { upstream, repository, tag }, remove),

    async stats() {
      const out: StoreStats = { blobs: 0, manifests: 0, bytes: 0, tags: 0 };
      for (const kind of CONTENT_KINDS) {
        for await (const e of driver.list(`${kind}/`, true)) {
          if (!parseContentKey(e.key)) continue;
          out[kind]++;
          out.bytes += e.size;
        }
      }
      for await (const e of driver.list(RECORDS_PREFIX)) if (parseRecordKey(e.key)) out.tags++;
      return out;
    },
  };
}
