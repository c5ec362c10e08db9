// The store contract as one suite: the real layout (src/store/layout.ts) over every driver (memory,
// directory, S3 on Ceph RGW): writers verify before anything is visible, abort leaves nothing,
// reads and ranges return the committed bytes, records and listings behave alike, errors are
// typed; layout-cases.ts adds damaged records, statistics, listing order and concurrent writers.
import { describe, expect, test } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import type { Driver } from "../../src/store/driver.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { bytesOf, enc, failure, put, record, type MakeStore } from "./fixtures.ts";
import { layoutCases } from "./layout-cases.ts";
import { recordCases } from "./record-cases.ts";
import { stateCases } from "./state-cases.ts";

/** Registers the contract tests for one back-end; `driver` returns a fresh, empty driver. */
export function storeContract(name: string, driver: () => Promise<Driver>) {
  const made: MakeStore = async () => {
    const d = await driver();
    const store = createLayoutStore(d);
    await store.init();
    return { store, driver: d };
  };
  const make = async () => (await made()).store;
  layoutCases(name, made);
  recordCases(name, made);
  stateCases(name, make);
  describe(`store contract: ${name}`, () => {
    test("a blob is invisible while written, readable back by joining readers, visible once committed", async () => {
      const store = await make();
      const bytes = enc("hello, layer bytes ".repeat(100));
      const digest = digestOf(bytes);
      const w = await store.createBlobWriter(digest, { size: bytes.byteLength });
      await w.write(bytes.subarray(0, 1000));
      expect(w.written).toBe(1000);
      expect(await store.statBlob(digest)).toBeNull();
      const back = new Uint8Array(100);
      expect(await w.readAt(900, back)).toBe(100);
      expect(back).toEqual(bytes.subarray(900, 1000));
      await w.write(bytes.subarray(1000));
      await w.commit();
      const s = await store.statBlob(digest);
      expect(s?.size).toBe(bytes.byteLength);
      expect(await bytesOf(s!.file)).toEqual(bytes);
      expect(await w.readAt(0, back)).toBe(100); // readers that joined still read after the commit
      expect(back).toEqual(bytes.subarray(0, 100));
      await w.release();
    });

    test("a large blob written in many chunks (several multipart parts on S3) is whole once committed", async () => {
      const store = await make();
      const bytes = new Uint8Array(12 * 1024 * 1024 + 12345).map((_, i) => (i * 7) % 256);
      await put(store, bytes, 1024 * 1024);
      const s = (await store.statBlob(digestOf(bytes)))!;
      expect(s.size).toBe(bytes.byteLength);
      expect(digestOf(await bytesOf(s.file))).toBe(digestOf(bytes));
      expect(await bytesOf(s.file.slice(6 * 1024 * 1024, 6 * 1024 * 1024 + 16))).toEqual(bytes.subarray(6 * 1024 * 1024, 6 * 1024 * 1024 + 16));
    });

    test("an empty blob and a one-byte blob are stored whole (one PUT each on S3)", async () => {
      const store = await make();
      for (const bytes of [new Uint8Array(0), enc("x")]) {
        const digest = digestOf(bytes);
        const w = await store.createBlobWriter(digest, { size: bytes.byteLength });
        if (bytes.byteLength) await w.write(bytes);
        await w.commit();
        const s = await store.statBlob(digest);
        expect(s?.size).toBe(bytes.byteLength);
        expect(await bytesOf(s!.file)).toEqual(bytes);
        await w.release();
      }
    });

    test("ranges of a stored blob are its bytes", async () => {
      const store = await make();
      const bytes = new Uint8Array(200_000).map((_, i) => i % 251);
      await put(store, bytes, 65_536);
      const s = (await store.statBlob(digestOf(bytes)))!;
      expect(await bytesOf(s.file.slice(100_000, 100_010))).toEqual(bytes.subarray(100_000, 100_010));
      expect(await bytesOf(s.file.slice(199_990))).toEqual(bytes.subarray(199_990));
    });

    test("a blob whose bytes do not match its digest or size is refused as corrupt and leaves nothing", async () => {
      const store = await make();
      const bytes = enc("the real bytes");
      const w = await store.createBlobWriter(digestOf(enc("other bytes")));
      await w.write(bytes);
      expect(await failure(w.commit())).toBe("corrupt");
      expect(await store.statBlob(digestOf(enc("other bytes")))).toBeNull();
      const short = await store.createBlobWriter(digestOf(bytes), { size: bytes.byteLength + 1 });
      await short.write(bytes);
      expect(await failure(short.commit())).toBe("corrupt");
      const long = await store.createBlobWriter(digestOf(bytes), { size: 3 });
      expect(await failure(long.write(bytes))).toBe("corrupt");
      expect(await store.statBlob(digestOf(bytes))).toBeNull();
      for (const x of [w, short, long]) await x.release();
      const listed: string[] = [];
      for await (const d of store.listContent("blobs")) listed.push(d);
      expect(listed).toEqual([]);
    });

    test("an aborted writer leaves nothing, and aborting twice is harmless", async () => {
      const store = await make();
      const bytes = enc("never committed");
      const w = await store.createBlobWriter(digestOf(bytes));
      await w.write(bytes);
      await w.abort();
      await w.abort();
      await w.release();
      expect(await store.statBlob(digestOf(bytes))).toBeNull();
      expect(await store.contentInfo("blobs", digestOf(bytes))).toBeNull();
    });

    test("two writers of the same digest both commit to one blob", async () => {
      const store = await make();
      const bytes = enc("written twice at once");
      const [a, b] = await Promise.all([0, 1].map(() => store.createBlobWriter(digestOf(bytes))));
      await Promise.all([a!, b!].map(async (w) => {
        await w.write(bytes);
        await w.commit();
        await w.release();
      }));
      const listed: string[] = [];
      for await (const d of store.listContent("blobs")) listed.push(d);
      expect(listed).toEqual([digestOf(bytes)]);
    });

    test("manifests are stored by digest; bytes that do not match are refused as corrupt", async () => {
      const store = await make();
      const m = enc('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
      await store.writeManifest(digestOf(m), m);
      expect(await store.readManifest(digestOf(m))).toEqual(m);
      expect(await failure(store.writeManifest(digestOf(enc("x")), m))).toBe("corrupt");
      expect(await store.readManifest(digestOf(enc("x")))).toBeNull();
      expect((await store.contentInfo("manifests", digestOf(m)))?.size).toBe(m.byteLength);
      await store.removeContent("manifests", digestOf(m));
      expect(await store.readManifest(digestOf(m))).toBeNull();
    });

    test("tag records: read, write, list (pins apart), walk and remove", async () => {
      const store = await make();
      const v1 = record();
      const v2 = record({ tag: "v2" });
      const pin = record({ tag: v1.digest });
      const other = record({ repository: "team/app/sub", tag: "x" });
      for (const r of [v2, v1, pin, other]) await store.writeTag(r);
      expect(await store.readTag("up.test", "team/app", "v1")).toEqual(v1);
      expect(await store.readTag("up.test", "team/app", "nope")).toBeNull();
      expect(await store.listTags("up.test", "team/app")).toEqual(["v1", "v2"]);
      const all: string[] = [];
      for await (const r of store.allTags()) all.push(`${r.repository}:${r.tag}`);
      expect(all.sort()).toEqual([`team/app:${v1.digest}`, "team/app/sub:x", "team/app:v1", "team/app:v2"].sort());
      await store.writeTag({ ...v1, lastPulled: new Date(Date.now() + 1000).toISOString() });
      expect((await store.readTag("up.test", "team/app", "v1"))?.lastPulled).not.toBe(v1.lastPulled);
      await store.removeTag("up.test", "team/app", "v1");
      expect(await store.readTag("up.test", "team/app", "v1")).toBeNull();
      expect(await store.listTags("up.test", "team/app")).toEqual(["v2"]);
      expect(await store.listTags("up.test", "nothing")).toEqual([]);
    });

    test("content listing and information, removal, and a working probe", async () => {
      const store = await make();
      const a = enc("blob a");
      const b = enc("blob b");
      for (const x of [a, b]) await put(store, x);
      const listed: string[] = [];
      for await (const d of store.listContent("blobs")) listed.push(d);
      expect(listed.sort()).toEqual([digestOf(a), digestOf(b)].sort());
      const info = await store.contentInfo("blobs", digestOf(a));
      expect(info?.size).toBe(a.byteLength);
      expect(Math.abs(info!.modified - Date.now())).toBeLessThan(60_000);
      await store.removeContent("blobs", digestOf(a));
      await store.removeContent("blobs", digestOf(a)); // removing what is gone is fine
      expect(await store.statBlob(digestOf(a))).toBeNull();
      await store.probe();
    });
  });
}
