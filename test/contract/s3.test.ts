// The store contract on the S3 driver, against a real S3 service (Ceph RGW, test/helpers/rgw.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordKey } from "../../src/store/keys.ts";
import { processOwner } from "../../src/store/owner.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { TOMBSTONE_MS } from "../../src/store/s3/conditional.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { incompleteUploads } from "../../src/store/s3/multipart.ts";
import { s3Driver } from "../../src/store/s3/store.ts";
import { waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";
import { record } from "./fixtures.ts";
import { storeContract } from "./store-contract.ts";

let rgw: Rgw;
const scratch = mkdtempSync(join(tmpdir(), "ocireg-s3-contract-"));
let n = 0;

beforeAll(async () => {
  rgw = await startRgw();
  await rgw.createBucket("contract");
}, 120_000);

afterAll(async () => {
  await rgw?.stop();
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

// Each test gets a prefix of its own: a fresh, empty store in the same bucket.
storeContract("S3 (Ceph RGW)", async () => s3Driver({
  endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
  pathStyle: true, prefix: `t${n++}/`, scratchDir: scratch, partSize: 5 * 1024 * 1024,
}));

// A removal on S3 is a tombstone (If-Match) then a DELETE: what readers and writers do meanwhile.
describe("records being removed on S3 (tombstones)", () => {
  const driver = () => s3Driver({
    endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
    pathStyle: true, prefix: `t${n++}/`, scratchDir: scratch,
  });
  const place = { upstream: "up.test", repository: "team/app", tag: "v1" };
  const tombstone = (at: Date) => new TextEncoder().encode(`\0ociregistry-removed ${at.toISOString()}\n`);

  test("a record being removed reads as absent, is neither listed as a record nor as damaged, and a create waits for the delete", async () => {
    const d = driver();
    const store = createLayoutStore(d);
    await d.put(recordKey(place), tombstone(new Date()));
    expect(await store.readTag(place.upstream, place.repository, place.tag)).toBeNull();
    const damaged: string[] = [];
    expect(await Array.fromAsync(store.allTags((w) => damaged.push(w)))).toEqual([]);
    expect(damaged).toEqual([]);
    // The remover deletes its tombstone a moment later: the create that waited for it then succeeds.
    setTimeout(() => void d.remove(recordKey(place)), 150);
    const u = await store.updateTag(place, (cur) => cur ?? record());
    expect(u).toMatchObject({ written: true, created: true });
    expect((await store.readTag(place.upstream, place.repository, place.tag))?.digest).toBe(record().digest);
  });

  test(`a tombstone older than ${TOMBSTONE_MS / 1000} s (its remover died) is overwritten`, async () => {
    const d = driver();
    const store = createLayoutStore(d);
    await d.put(recordKey(place), tombstone(new Date(Date.now() - TOMBSTONE_MS - 5000)));
    expect(await store.updateTag(place, (cur) => cur ?? record())).toMatchObject({ written: true, created: true });
  });
});

describe("the S3 store's local scratch directory", () => {
  test("at start, the scratch copies and relay spools of killed local processes are removed; a live process's stay", async () => {
    const local = mkdtempSync(join(scratch, "local-"));
    const dead = join(local, "tmp", "deadbeef-999999-1", "relays");
    const live = join(local, "tmp", processOwner());
    for (const d of [dead, live]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "part"), "half");
    }
    const d = s3Driver({
      endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
      pathStyle: true, prefix: `t${n++}/`, scratchDir: local,
    });
    expect(await createLayoutStore(d).init()).toBe(1);
    expect(readdirSync(join(local, "tmp"))).toEqual([processOwner()]);
    expect(readFileSync(join(live, "part"), "utf8")).toBe("half");
  });
});

// In `serve` a blob's parts go up once the clients are quiet (lib/quiet.ts), after the download, or
// beside a long one trailing it: meanwhile the object is absent, joined readers read the scratch
// copy, and what `commit` publishes is still the whole verified blob.
describe("uploads that wait for quiet clients", () => {
  const MiB = 1024 * 1024;
  const access = () => ({ endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true });
  function gated(trail: number) {
    let open!: () => void;
    let waited = 0;
    let waiting = 0;
    const quiet = new Promise<void>((r) => (open = r));
    const prefix = `t${n++}/`;
    const observe = { localCopy: () => {}, uploadsWaiting: (d: number) => void (waiting += d) };
    const store = createLayoutStore(s3Driver({ ...access(), prefix, scratchDir: scratch, partSize: 5 * MiB, uploadTrailBytes: trail, uploadWhenQuiet: () => (waited++, quiet), observe }));
    return { store, prefix, open, waited: () => waited, waiting: () => waiting };
  }
  const blob = (size: number, seed: number) => new Uint8Array(size).map((_, i) => (i * seed) % 256);
  const uploadsUnder = async (prefix: string) => (await incompleteUploads(access(), `${prefix}blobs/`)).length;
  async function write(store: ReturnType<typeof createLayoutStore>, bytes: Uint8Array) {
    const w = await store.createBlobWriter(digestOf(bytes), { size: bytes.byteLength });
    for (let at = 0; at < bytes.byteLength; at += MiB) await w.write(bytes.subarray(at, at + MiB));
    await w.verify();
    return w;
  }

  test("a blob of several parts: nothing goes up until quiet; readers read the scratch copy; then it is whole", async () => {
    const g = gated(256 * MiB);
    const bytes = blob(17 * MiB + 321, 13);
    const w = await write(g.store, bytes);
    const committed = w.commit();
    await Bun.sleep(300);
    expect(g.waited()).toBe(1);
    expect(g.waiting()).toBe(1); // the metric's gauge
    expect(await uploadsUnder(g.prefix)).toBe(0); // no part sent beside the download
    expect(await g.store.statBlob(digestOf(bytes))).toBeNull();
    const back = new Uint8Array(64);
    expect(await w.readAt(16 * MiB, back)).toBe(64);
    expect(back).toEqual(bytes.subarray(16 * MiB, 16 * MiB + 64));
    g.open();
    await committed;
    expect(g.waiting()).toBe(0);
    const s = (await g.store.statBlob(digestOf(bytes)))!;
    expect(s.size).toBe(bytes.byteLength);
    expect(digestOf(new Uint8Array(await s.file.arrayBuffer()))).toBe(digestOf(bytes));
    await w.release();
  });

  test("a long download's parts go up beside it, trailing it by the bound; the rest waits for quiet", async () => {
    const g = gated(5 * MiB);
    const bytes = blob(23 * MiB, 7);
    const w = await write(g.store, bytes);
    // Started during the download (its first request is not awaited by write()).
    await waitFor("an upload started beside the download", async () => (await uploadsUnder(g.prefix)) === 1, 10_000);
    const committed = w.commit();
    await Bun.sleep(200);
    expect(await g.store.statBlob(digestOf(bytes))).toBeNull();
    g.open();
    await committed;
    const s = (await g.store.statBlob(digestOf(bytes)))!;
    expect(digestOf(new Uint8Array(await s.file.arrayBuffer()))).toBe(digestOf(bytes));
    expect(await uploadsUnder(g.prefix)).toBe(0);
    await w.release();
  });

  test("a blob under one part is stored at once, without waiting", async () => {
    const g = gated(256 * MiB);
    const bytes = blob(3 * MiB, 11);
    const w = await write(g.store, bytes);
    await w.commit();
    expect(g.waited()).toBe(0);
    expect((await g.store.statBlob(digestOf(bytes)))?.size).toBe(bytes.byteLength);
    await w.release();
  });

  test("a blob dropped while its upload waits (an abort) leaves no object and starts no upload", async () => {
    for (const trail of [5 * MiB, 256 * MiB]) {
      const g = gated(trail);
      const bytes = blob(12 * MiB, trail % 251);
      const w = await write(g.store, bytes);
      const committed = w.commit().then(() => "committed", () => "failed");
      await Bun.sleep(100);
      await w.abort();
      g.open();
      expect(await committed).toBe("failed");
      expect(await g.store.statBlob(digestOf(bytes))).toBeNull();
      expect(await uploadsUnder(g.prefix)).toBe(0);
    }
  });
});
