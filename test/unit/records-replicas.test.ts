// Tag records shared by replicas (issue 23 item 3): two tag books over one store, each with its own
// queue (two layouts over one driver), as two replicas on one bucket. Pulls, pins and new digests
// written by one are never lost to the other's writes, and prune or eviction on one never removes
// a record the other changed after it was read.
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import { evictImages } from "../../src/cache/evict.ts";
import { pruneStore } from "../../src/cache/prune.ts";
import { createTagBook, type RecordedManifest } from "../../src/cache/records.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { memoryDriver } from "../../src/store/memory.ts";
import type { Store, TagRecord } from "../../src/store/types.ts";

const target = { upstream: "up.test", repository: "team/app" };
const manifest = (s: string): RecordedManifest => {
  const bytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, s }));
  return { digest: digestOf(bytes), mediaType: "application/vnd.oci.image.manifest.v1+json", bytes };
};

function replicas() {
  const driver = memoryDriver();
  let t = Date.parse("2030-01-01T00:00:00Z");
  const clock = () => t;
  const warnings: string[] = [];
  const make = () => {
    const store = createLayoutStore(driver);
    return { store, book: createTagBook(store, clock, (m) => warnings.push(m)) };
  };
  return { a: make(), b: make(), advance: (ms: number) => (t += ms), warnings };
}

const stored = (s: Store, tag = "v1") => s.readTag(target.upstream, target.repository, tag);

describe("two replicas on one store", () => {
  test("a pin set on one survives the other's pulls, flushes and a new fetch of the tag", async () => {
    const { a, b, advance } = replicas();
    await a.book.record(target, "v1", manifest("one"), null);
    const seenByB = (await b.book.get(target, "v1"))!; // B holds the record, unpinned, in memory
    expect(await a.book.setPinned(target, "v1", true)).toBe(true);
    advance(1000);
    b.book.pulled(seenByB, false);
    await b.book.flush();
    expect((await stored(a.store))?.pinned).toBe(true);
    advance(1000);
    await b.book.record(target, "v1", manifest("two"), seenByB); // the tag moved; B fetched it
    const rec = (await stored(a.store))!;
    expect(rec.pinned).toBe(true);
    expect(rec.digest).toBe(manifest("two").digest);
  });

  test("pins and unpins on one, racing the other's flushes round after round, all take effect", async () => {
    const { a, b, advance } = replicas();
    await a.book.record(target, "v1", manifest("one"), null);
    const rb = (await b.book.get(target, "v1"))!;
    for (let round = 0; round < 20; round++) {
      advance(1000);
      b.book.pulled(rb, false);
      const pin = round % 2 === 0;
      const [, done] = await Promise.all([b.book.flush(), a.book.setPinned(target, "v1", pin)]);
      expect(done).toBe(true);
      expect((await stored(a.store))?.pinned === true).toBe(pin);
      expect((await stored(a.store))?.lastPulled).toBe(rb.lastPulled);
    }
  });

  test("concurrent flushes of pulls on both keep the latest last-pulled time", async () => {
    const { a, b, advance } = replicas();
    await a.book.record(target, "v1", manifest("one"), null);
    const ra = (await a.book.get(target, "v1"))!;
    const rb = (await b.book.get(target, "v1"))!;
    advance(5000);
    b.book.pulled(rb, false); // B's pull is the later one
    const latest = rb.lastPulled;
    advance(-3000);
    a.book.pulled(ra, true);
    await Promise.all([a.book.flush(), b.book.flush()]);
    expect((await stored(a.store))?.lastPulled).toBe(latest);
  });

  test("prune on one replica keeps a record the other pulled after prune read it", async () => {
    const { a, b, advance } = replicas();
    await a.book.record(target, "v1", manifest("one"), null);
    const rb = (await b.book.get(target, "v1"))!;
    advance(30 * 86_400_000);
    // Prune reads the old record; B's pull of it is flushed before prune removes it.
    const racing: Store = {
      ...a.store,
      async *allTags(onDamaged) {
        yield* a.store.allTags(onDamaged);
        b.book.pulled(rb, false);
        await b.book.flush();
      },
    };
    const report = await pruneStore(racing, { olderThanMs: 86_400_000, by: "lastPulled", dryRun: false, now: Date.parse("2030-01-31T00:00:00Z") + 1 });
    expect(report.images).toEqual([]);
    expect(await stored(a.store)).not.toBeNull();
  });

  test("eviction on one replica keeps a record the other pulled after the run read it", async () => {
    const { a, b, advance } = replicas();
    await a.book.record(target, "v1", manifest("one"), null);
    await a.store.writeManifest(manifest("one").digest, manifest("one").bytes);
    const rb = (await b.book.get(target, "v1"))!;
    advance(60_000);
    let raced = false;
    const report = await evictImages(a.store, {
      needBytes: 1, pinned: () => false, now: Date.now(), orphanGraceMs: 0,
      async busy() {
        if (!raced) {
          raced = true; // the first call is after the records are read: B's pull lands now
          b.book.pulled(rb, false);
          await b.book.flush();
        }
        return new Set<string>();
      },
    });
    expect(raced).toBe(true);
    expect(report.images).toEqual([]);
    const kept = (await stored(a.store)) as TagRecord;
    expect(kept.lastPulled).toBe(rb.lastPulled);
    expect(await a.store.readManifest(manifest("one").digest)).not.toBeNull(); // what it reaches stays
  });
});
