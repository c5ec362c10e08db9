// The S3 driver's local copy of blobs (src/store/s3/local-copy.ts) wired into the driver, against
// a real S3 service (Ceph RGW): kept after a cold commit, filled from a warm read only when
// verified, served only while the object is in S3, removed with the blob.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { contentKey } from "../../src/store/keys.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { processOwner } from "../../src/store/owner.ts";
import { s3Driver } from "../../src/store/s3/store.ts";
import type { StoredBlob } from "../../src/store/types.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

let rgw: Rgw;
const scratch = mkdtempSync(join(tmpdir(), "ocireg-s3-local-copy-"));
let n = 0;

beforeAll(async () => {
  rgw = await startRgw();
  await rgw.createBucket("copies");
}, 120_000);

afterAll(async () => {
  await rgw?.stop();
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

/** A replica's view of the store under `prefix`, with a local copy of `localCopyBytes`. */
const replica = (prefix: string, localCopyBytes = 64 << 20) => {
  const dir = mkdtempSync(join(scratch, "r-"));
  const driver = s3Driver({
    endpoint: rgw.endpoint, region: rgw.region, bucket: "copies", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
    pathStyle: true, prefix, scratchDir: dir, partSize: 5 * 1024 * 1024, localCopyBytes,
  });
  const copiesDir = () => {
    const own = join(dir, "tmp", processOwner());
    const sub = readdirSync(own).find((f) => f.startsWith("copies-"));
    return sub ? join(own, sub) : null;
  };
  /** Copy files on disk (temp files included). */
  const onDisk = () => {
    const d = copiesDir();
    return d ? readdirSync(d).map((f) => statSync(join(d, f)).size) : [];
  };
  return { driver, store: createLayoutStore(driver), onDisk };
};

const blob = (size: number, seed: number) => {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7 + seed) & 0xff);
  return { bytes, digest: digestOf(bytes) };
};
/** What a GET of the whole blob sends, as the registry's handler reads a StoredBlob. */
const sent = async (s: StoredBlob) => new Uint8Array(await new Response(s.stream ? s.stream() : s.streamOnly ? s.file.stream() : s.file).arrayBuffer());
const fromS3 = (s: StoredBlob | null) => s?.streamOnly === true;

test("a cold commit keeps its verified scratch file as the local copy: the next read is the local file, bytes identical", async () => {
  const r = await replica(`p${n++}/`);
  await r.store.init();
  const b = blob(6 * 1024 * 1024 + 17, 1); // two multipart parts
  const w = await r.store.createBlobWriter(b.digest, { size: b.bytes.byteLength });
  await w.write(b.bytes);
  await w.commit();
  await w.release();
  const s = await r.store.statBlob(b.digest);
  expect(fromS3(s)).toBe(false);
  expect(s!.size).toBe(b.bytes.byteLength);
  expect(await sent(s!)).toEqual(b.bytes);
  expect(r.onDisk()).toEqual([b.bytes.byteLength]);
  // A range is cut from the local file too.
  expect(new Uint8Array(await s!.file.slice(10, 20).arrayBuffer())).toEqual(b.bytes.slice(10, 20));
}, 60_000);

test("a warm read on another replica fills its copy while streaming from S3; then it serves the copy", async () => {
  const prefix = `p${n++}/`;
  const a = await replica(prefix, 0);
  const b = await replica(prefix);
  await a.store.init();
  await b.store.init();
  const x = blob(300_000, 2);
  await a.driver.put(contentKey("blobs", x.digest), x.bytes);
  const first = await b.store.statBlob(x.digest);
  expect(fromS3(first)).toBe(true);
  // A HEAD (statBlob alone) fills nothing: only a read of the whole blob does.
  expect(b.onDisk()).toEqual([]);
  expect(await sent(first!)).toEqual(x.bytes);
  const second = await b.store.statBlob(x.digest);
  expect(fromS3(second)).toBe(false);
  expect(await sent(second!)).toEqual(x.bytes);
  expect(b.onDisk()).toEqual([x.bytes.byteLength]);
}, 60_000);

test("an S3 object whose bytes do not match its digest never becomes a local copy", async () => {
  const prefix = `p${n++}/`;
  const r = await replica(prefix);
  await r.store.init();
  const x = blob(200_000, 3);
  const bad = x.bytes.slice();
  bad[100_000]! ^= 1;
  await r.driver.put(contentKey("blobs", x.digest), bad);
  for (let i = 0; i < 2; i++) {
    const s = await r.store.statBlob(x.digest);
    expect(fromS3(s)).toBe(true);
    expect(await sent(s!)).toEqual(bad); // as today: what S3 holds (verify finds and repairs it)
  }
  expect(r.onDisk()).toEqual([]);
}, 60_000);

test("removal on this replica removes the copy; removal by another replica stops this one serving its copy", async () => {
  const prefix = `p${n++}/`;
  const a = await replica(prefix);
  const b = await replica(prefix);
  await a.store.init();
  await b.store.init();
  const [x, y] = [blob(100_000, 4), blob(100_000, 5)];
  for (const v of [x, y]) {
    await a.driver.put(contentKey("blobs", v.digest), v.bytes);
    for (const r of [a, b]) await sent((await r.store.statBlob(v.digest))!);
  }
  expect(a.onDisk()).toHaveLength(2);
  expect(b.onDisk()).toHaveLength(2);
  await a.store.removeContent("blobs", x.digest);
  expect(a.onDisk()).toEqual([y.bytes.byteLength]);
  // b still has its copy of x, but S3 no longer holds x: b answers absent and drops the copy.
  expect(await b.store.statBlob(x.digest)).toBeNull();
  expect(b.onDisk()).toEqual([y.bytes.byteLength]);
}, 60_000);

test("the bound: copies past it evict the least recently served; a bound of 0 keeps none", async () => {
  const prefix = `p${n++}/`;
  const r = await replica(prefix, 250_000);
  const off = await replica(prefix, 0);
  await r.store.init();
  await off.store.init();
  const xs = [blob(100_000, 6), blob(100_000, 7), blob(100_000, 8)];
  for (const v of xs) await r.driver.put(contentKey("blobs", v.digest), v.bytes);
  await sent((await r.store.statBlob(xs[0]!.digest))!);
  await sent((await r.store.statBlob(xs[1]!.digest))!);
  await sent((await r.store.statBlob(xs[0]!.digest))!); // served from the copy: xs[1] is now the oldest
  await sent((await r.store.statBlob(xs[2]!.digest))!);
  expect(fromS3(await r.store.statBlob(xs[1]!.digest))).toBe(true);
  expect(fromS3(await r.store.statBlob(xs[0]!.digest))).toBe(false);
  expect(r.onDisk().reduce((t, s) => t + s, 0)).toBeLessThanOrEqual(250_000);
  for (let i = 0; i < 2; i++) expect(fromS3(await off.store.statBlob(xs[0]!.digest))).toBe(true);
  expect(await sent((await off.store.statBlob(xs[0]!.digest))!)).toEqual(xs[0]!.bytes);
  expect(off.onDisk()).toEqual([]);
}, 60_000);
