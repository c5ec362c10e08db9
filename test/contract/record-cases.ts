// Contract cases for records several writers change at once (replicas on one bucket, serve and
// prune on one directory): versioned reads, conditional puts and removals on the driver, and the
// layout's updateTag / removeTagIf over them. Two layouts over one driver act as two replicas: each
// has its own queue, so only the driver's conditional writes keep them from losing updates.
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import { recordKey } from "../../src/store/keys.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import type { TagRecord } from "../../src/store/types.ts";
import { enc, failure, record, type MakeStore } from "./fixtures.ts";

const place = { upstream: "up.test", repository: "team/app", tag: "v1" };

export function recordCases(name: string, make: MakeStore) {
  describe(`records written conditionally: ${name}`, () => {
    test("putIf writes only over the version read (or only what is absent); removeIf removes only that version", async () => {
      const { driver } = await make();
      const key = "state/cas-test";
      expect(await driver.readVersioned(key)).toEqual({ bytes: null, version: null });
      expect(await driver.putIf(key, enc("one"), null)).toBe(true);
      expect(await driver.putIf(key, enc("again"), null)).toBe(false); // exists now
      const v1 = await driver.readVersioned(key);
      expect(v1.bytes).toEqual(enc("one"));
      expect(await driver.putIf(key, enc("two"), v1.version)).toBe(true);
      expect(await driver.putIf(key, enc("stale"), v1.version)).toBe(false); // another writer came first
      expect(await driver.read(key)).toEqual(enc("two"));
      const v2 = await driver.readVersioned(key);
      expect(v2.version).not.toBe(v1.version);
      expect(await driver.removeIf(key, v1.version!)).toBe(false);
      expect(await driver.read(key)).toEqual(enc("two"));
      expect(await driver.removeIf(key, v2.version!)).toBe(true);
      expect(await driver.read(key)).toBeNull();
      expect(await driver.putIf(key, enc("three"), v2.version)).toBe(false); // removed meanwhile
    });

    test("two writers updating one record 60 times each at once lose no update", async () => {
      const { store, driver } = await make();
      const other = createLayoutStore(driver); // a second replica on the same store
      await store.writeTag(record({ size: 0 }));
      const bump = (s: typeof store) => s.updateTag(place, (cur) => cur && { ...cur, size: cur.size + 1 });
      await Promise.all([store, other].flatMap((s) => Array.from({ length: 60 }, () => bump(s))));
      expect((await store.readTag(place.upstream, place.repository, place.tag))?.size).toBe(120);
    }, 60_000);

    test("updateTag creates what is absent, leaves a record when asked to, and refuses a record of another place", async () => {
      const { store } = await make();
      const created = await store.updateTag(place, (cur) => (cur ? null : record({ size: 7 })));
      expect(created).toMatchObject({ written: true, created: true });
      const kept = await store.updateTag(place, () => null);
      expect(kept).toEqual({ record: created.record, written: false, created: false });
      expect(await failure(store.updateTag(place, () => record({ tag: "v2" })))).toBe("invalid");
      expect(await failure(store.updateTag({ ...place, tag: "../x" }, () => null))).toBe("invalid");
    });

    test("updateTag told the record is absent creates it, and merges with one another writer made meanwhile", async () => {
      const { store, driver } = await make();
      const other = createLayoutStore(driver);
      const mine = (cur: TagRecord | null) => ({ ...(cur ?? record()), size: (cur?.size ?? 0) + 1 });
      expect(await store.updateTag(place, mine, { absent: true })).toMatchObject({ written: true, created: true, record: { size: 1 } });
      // Not absent any more (the other writer's, or a wrong hint): the create loses, the record is read and merged.
      await other.updateTag(place, (cur) => cur && { ...cur, size: 10, pinned: true });
      const u = await store.updateTag(place, mine, { absent: true });
      expect(u).toMatchObject({ written: true, created: false, record: { size: 11, pinned: true } });
      expect(await store.readTag(place.upstream, place.repository, place.tag)).toMatchObject({ size: 11, pinned: true });
    });

    test("createManifest says whether it created the manifest; one already there keeps its bytes; bytes that do not match are corrupt", async () => {
      const { store } = await make();
      if (!store.createManifest) return;
      const m = enc('{"schemaVersion":2,"n":"create"}');
      expect(await store.createManifest(digestOf(m), m)).toBe(true);
      expect(await store.createManifest(digestOf(m), m)).toBe(false);
      expect(await store.readManifest(digestOf(m))).toEqual(m);
      expect(await failure(store.createManifest(digestOf(enc("x")), m))).toBe("corrupt");
      expect(await store.readManifest(digestOf(enc("x")))).toBeNull();
    });

    test("removeTagIf removes a record only while it is as read: a later pull or a pin meanwhile keeps it", async () => {
      const { store, driver } = await make();
      const other = createLayoutStore(driver);
      const read = record({ lastPulled: "2020-01-01T00:00:00.000Z" });
      await store.writeTag(read);
      const [seen] = await Array.fromAsync(store.allTags());
      await other.updateTag(place, (cur) => cur && { ...cur, lastPulled: new Date().toISOString() });
      expect(await store.removeTagIf(seen as TagRecord)).toBe(false);
      expect(await store.readTag(place.upstream, place.repository, place.tag)).not.toBeNull();
      const [now] = await Array.fromAsync(store.allTags());
      expect(await store.removeTagIf(now as TagRecord)).toBe(true);
      expect(await store.readTag(place.upstream, place.repository, place.tag)).toBeNull();
      expect(await store.removeTagIf(now as TagRecord)).toBe(false); // already gone
      expect(await driver.read(recordKey(place))).toBeNull();
    });

    test("removeTagIf on many records at once (an eviction): the ones another writer updated since they were read stay, the rest go", async () => {
      const { store, driver } = await make();
      const other = createLayoutStore(driver);
      const places = Array.from({ length: 24 }, (_, i) => ({ ...place, tag: `v${i}` }));
      for (const p of places) await store.writeTag(record({ ...p, lastPulled: "2020-01-01T00:00:00.000Z" }));
      const seen = await Array.fromAsync(store.allTags());
      expect(seen.length).toBe(places.length);
      // Every third record pulled again by the other writer after the plan read it.
      const pulled = new Set(places.filter((_, i) => i % 3 === 0).map((p) => p.tag));
      for (const tag of pulled) await other.updateTag({ ...place, tag }, (cur) => cur && { ...cur, lastPulled: new Date().toISOString() });
      const removed = await Promise.all(seen.map((r) => store.removeTagIf(r)));
      expect(removed).toEqual(seen.map((r) => !pulled.has(r.tag)));
      const left = (await Array.fromAsync(store.allTags())).map((r) => r.tag).sort();
      expect(left).toEqual([...pulled].sort());
    });
  });
}
