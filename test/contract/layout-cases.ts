// Contract cases for what the layout does over every driver: damaged records (planted through the
// driver, under the layout) are skipped, reported and removable; statistics; one listing order on
// every driver; concurrent writers; names that could leave the store refused before a driver sees them.
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import { recordKey } from "../../src/store/keys.ts";
import { serializeTagRecord } from "../../src/store/record.ts";
import type { Driver } from "../../src/store/driver.ts";
import type { TagRecord } from "../../src/store/types.ts";
import { bytesOf, enc, failure, put, record, type MakeStore } from "./fixtures.ts";

async function keysOf(driver: Driver, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of driver.list(prefix)) out.push(e.key);
  return out;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function layoutCases(name: string, make: MakeStore) {
  describe(`store layout: ${name}`, () => {
    test("damaged records are skipped and reported by the walk, read as absent, counted, and removable", async () => {
      const { store, driver } = await make();
      const v1 = record();
      await store.writeTag(v1);
      const other = digestOf(enc("another manifest"));
      const garbage = recordKey({ ...v1, tag: "garbage" });
      const moved = recordKey({ ...v1, tag: "moved" }); // a valid record of v1, under another tag's key
      const pin = recordKey({ ...v1, tag: v1.digest }); // a pin named by one digest, pointing at another
      await driver.put(garbage, enc("{ not json"));
      await driver.put(moved, serializeTagRecord(v1));
      await driver.put(pin, serializeTagRecord({ ...v1, tag: v1.digest, digest: other }));
      await driver.put("repositories/up.test/team/app/_tags/notes.txt", enc("not a record key: ignored"));

      const damaged: string[] = [];
      expect(await collect(store.allTags((where) => damaged.push(where)))).toEqual([v1]);
      expect(damaged).toEqual([garbage, moved, pin].sort());
      expect(await store.readTag(v1.upstream, v1.repository, "garbage")).toBeNull();
      expect(await store.readTag(v1.upstream, v1.repository, "moved")).toBeNull();
      // Listing and statistics go by keys, without reading records.
      expect(await store.listTags(v1.upstream, v1.repository)).toEqual(["garbage", "moved", "v1"]);
      expect((await store.stats()).tags).toBe(4);

      const found = await collect(store.damagedTags());
      expect(found.map((d) => d.where)).toEqual([garbage, moved, pin].sort());
      for (const d of found) await d.remove();
      expect(await collect(store.damagedTags())).toEqual([]);
      expect(await collect(store.allTags())).toEqual([v1]);
      expect((await store.stats()).tags).toBe(1);
    });

    test("statistics count blobs, manifests, their bytes and records (pins included)", async () => {
      const { store } = await make();
      expect(await store.stats()).toEqual({ blobs: 0, manifests: 0, bytes: 0, tags: 0 });
      const a = enc("blob a");
      const b = enc("blob bb");
      for (const x of [a, b]) await put(store, x);
      const m = enc('{"schemaVersion":2}');
      await store.writeManifest(digestOf(m), m);
      const v1 = record({ digest: digestOf(m), size: m.byteLength });
      for (const r of [v1, record({ tag: "v2" }), record({ tag: v1.digest })]) await store.writeTag(r);
      expect(await store.stats()).toEqual({ blobs: 2, manifests: 1, bytes: a.byteLength + b.byteLength + m.byteLength, tags: 3 });
      await store.removeContent("blobs", digestOf(a));
      await store.removeTag(v1.upstream, v1.repository, "v2");
      expect(await store.stats()).toEqual({ blobs: 1, manifests: 1, bytes: b.byteLength + m.byteLength, tags: 2 });
    });

    test("listings come in one order on every driver: records and content by key, tags by name", async () => {
      const { store } = await make();
      const records: TagRecord[] = [];
      for (const repository of ["team/app-x", "team/app/sub", "team/app", "a"]) {
        for (const tag of ["v10", "v1-rc", "v1"]) records.push(record({ repository, tag }));
      }
      records.push(record({ tag: record().digest }));
      for (const r of records) await store.writeTag(r);
      const walked = (await collect(store.allTags())).map(recordKey);
      expect(walked).toEqual(records.map(recordKey).sort());
      expect(walked[0]).toBe("repositories/up.test/a/_tags/v1-rc.json");
      // The places come from the same listing, in the same order, without reading a record.
      expect((await collect(store.tagPlaces())).map(recordKey)).toEqual(walked);
      expect(await store.listTags("up.test", "team/app")).toEqual(["v1", "v1-rc", "v10"]);

      const blobs = ["one", "two", "three", "four", "five"].map(enc);
      for (const x of blobs) await put(store, x);
      expect(await collect(store.listContent("blobs"))).toEqual(blobs.map((x) => digestOf(x)).sort());
    });

    test("concurrent writers: blobs interleaved stay whole, a record rewritten at once stays one valid record", async () => {
      const { store } = await make();
      const blobs = Array.from({ length: 8 }, (_, i) => new Uint8Array(50_000).map((_, j) => (i * 31 + j) % 256));
      const writers = await Promise.all(blobs.map((b) => store.createBlobWriter(digestOf(b), { size: b.byteLength })));
      for (let off = 0; off < 50_000; off += 5_000) {
        await Promise.all(writers.map((w, i) => w.write(blobs[i]!.subarray(off, off + 5_000))));
      }
      await Promise.all(writers.map((w) => w.commit()));
      await Promise.all(writers.map((w) => w.release()));
      for (const b of blobs) expect(await bytesOf((await store.statBlob(digestOf(b)))!.file)).toEqual(b);

      const base = record();
      const versions = Array.from({ length: 10 }, (_, i) => ({ ...base, lastPulled: new Date(Date.parse(base.lastPulled) + i * 1000).toISOString() }));
      await Promise.all(versions.map((v) => store.writeTag(v)));
      expect(versions).toContainEqual((await store.readTag(base.upstream, base.repository, base.tag))!);
      const m = enc('{"schemaVersion":2,"n":1}');
      await Promise.all(Array.from({ length: 5 }, () => store.writeManifest(digestOf(m), m)));
      expect(await store.readManifest(digestOf(m))).toEqual(m);
      expect(await collect(store.damagedTags())).toEqual([]);
      expect(await store.stats()).toMatchObject({ blobs: 8, manifests: 1, tags: 1 });
    });

    test("names and digests that could leave the store are refused as invalid before a driver sees them; a probe leaves nothing", async () => {
      const { store, driver } = await make();
      const refused = [
        store.readTag("up.test", "../../etc", "x"), store.readTag("..", "a", "x"), store.readTag("up.test", "a", "../x"),
        store.readTag("a/b", "c", "x"), store.writeTag(record({ repository: "../x" })), store.removeTag("up.test", "a", "x/../../y"),
        store.listTags("", "a"), store.readManifest("sha256:../../x"), store.statBlob("nope"), store.createBlobWriter("sha256:zz"),
        store.removeContent("blobs", "../x"), store.contentInfo("manifests", "sha256:"), store.writeManifest("md5:x", enc("x")),
      ];
      for (const p of refused) expect(await failure(p)).toBe("invalid");
      await store.probe();
      expect(await keysOf(driver)).toEqual([]);
    });
  });
}
