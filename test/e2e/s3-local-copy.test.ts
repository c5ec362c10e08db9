// The S3 store's local copy of verified blobs (compiled binary, Ceph RGW, distribution): a warm blob
// is sent from the local copy (proved by changing the S3 object's bytes behind the cache: the copy
// still answers the verified ones), with the same headers and bytes as a blob streamed from S3;
// the copy's bound holds on disk; verify is clean at the end.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

const UP = "127.0.50.1";
const BUCKET = "localcopy";
const MiB = 1024 * 1024;
const BOUND = 20 * MiB;
let dir: string;
let rgw: Rgw;
let up: Distribution;
let s3: Bun.S3Client;
/** `withCopy` keeps a local copy of 20 MiB; `without` has `localCopy: 0` (every blob streamed from S3). */
let withCopy: RunningCache;
let without: RunningCache;
let withCopyPath: string;
const images: Image[] = [];

const env = () => ({ AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey });
function config(name: string, localCopy: string): string {
  const file = join(dir, `${name}.yml`);
  writeFileSync(file, `registries:\n  - name: ${UP}\n    scheme: http\nstore: s3://${BUCKET}/cache\ns3:\n  endpoint: ${rgw.endpoint}\n  region: ${rgw.region}\n  forcePathStyle: true\n  localCopy: ${localCopy}\n`);
  return file;
}
const layer = (i: number) => images[i]!.blobs[1]!;
const url = (c: RunningCache, i: number) => `${c.url}/v2/${UP}/library/img${i}/blobs/${layer(i).digest}`;
const objectKey = (i: number) => `cache/blobs/sha256/${layer(i).digest.slice("sha256:".length)}`;
async function get(c: RunningCache, i: number, headers: Record<string, string> = {}) {
  const res = await fetch(url(c, i), { headers });
  return { status: res.status, headers: Object.fromEntries([...res.headers].filter(([k]) => k !== "date" && k !== "x-request-id")), bytes: new Uint8Array(await res.arrayBuffer()) };
}
/** Bytes of the copy files (temp files included) under a cache's image path. */
function copyBytes(imagePath: string): number {
  let n = 0;
  const tmp = join(imagePath, "tmp");
  for (const owner of readdirSync(tmp)) {
    for (const sub of readdirSync(join(tmp, owner)).filter((f) => f.startsWith("copies-"))) {
      for (const f of readdirSync(join(tmp, owner, sub))) n += statSync(join(tmp, owner, sub, f)).size;
    }
  }
  return n;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-s3localcopy-"));
  rgw = await startRgw();
  await rgw.createBucket(BUCKET);
  s3 = new Bun.S3Client({ endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
  up = await startDistribution({ addr: `${UP}:80` });
  for (let i = 0; i < 4; i++) {
    images.push(makeImage({ content: 8 * MiB, uncompressed: true }));
    await pushImage({ base: up.base }, `library/img${i}`, "v1", images[i]!);
  }
  withCopyPath = mkdtempSync(join(dir, "with-"));
  withCopy = await startCache(["--config-file", config("with", "20MiB"), "--image-path", withCopyPath], env());
  without = await startCache(["--config-file", config("without", "0"), "--image-path", mkdtempSync(join(dir, "without-"))], env());
}, 180_000);

afterAll(async () => {
  await withCopy?.stop();
  await without?.stop();
  await up?.stop();
  await rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/**
 * Replaces the S3 object of layer `i` with other bytes of the same size, runs `check`, and puts the
 * verified bytes back: what a cache sends meanwhile shows where it read them.
 */
async function withObjectChanged(i: number, check: (changed: Uint8Array<ArrayBuffer>) => Promise<void>) {
  const changed = layer(i).bytes.slice() as Uint8Array<ArrayBuffer>;
  changed[1000]! ^= 0xff;
  await s3.write(objectKey(i), changed);
  try {
    await check(changed);
  } finally {
    await s3.write(objectKey(i), layer(i).bytes as Uint8Array<ArrayBuffer>);
  }
}

const inS3 = (i: number) => waitFor(`layer ${i} in S3`, () => s3.file(objectKey(i)).exists(), 20_000);

test("a blob pulled cold is kept as the local copy and sent from it: the S3 object is not read again", async () => {
  const cold = await get(withCopy, 0);
  expect(cold.status).toBe(200);
  expect(cold.bytes).toEqual(layer(0).bytes);
  await inS3(0);
  await withObjectChanged(0, async (changed) => {
    // The replica without a copy streams what S3 holds now; the one with a copy sends the verified bytes.
    expect((await get(without, 0)).bytes).toEqual(changed);
    expect((await get(withCopy, 0)).bytes).toEqual(layer(0).bytes);
  });
}, 60_000);

test("a warm blob another replica stored is streamed from S3 once, then sent from the local copy with the same bytes and headers (plus Content-Length, as the directory store sends)", async () => {
  expect((await get(without, 1)).bytes).toEqual(layer(1).bytes);
  await inS3(1);
  const streamed = await get(withCopy, 1); // from S3, teed into the local copy
  const fromCopy = await get(withCopy, 1);
  const reference = await get(without, 1);
  expect(streamed.bytes).toEqual(layer(1).bytes);
  expect(fromCopy.bytes).toEqual(layer(1).bytes);
  expect(streamed.headers).toEqual(reference.headers);
  // Sent as a file: the directory store's headers (Bun keeps the Content-Length the handler set on a
  // file and drops it on a stream, and names the file), every other header as streamed from S3.
  const { "transfer-encoding": chunked, ...rest } = reference.headers;
  expect(chunked).toBe("chunked");
  expect(fromCopy.headers).toEqual({
    ...rest, "content-length": String(layer(1).bytes.byteLength), "content-disposition": `filename="${layer(1).digest.slice(7)}"`,
  });
  // A range is cut from the copy: same status, range and bytes as from S3.
  const range = { range: "bytes=100-4195" };
  const [r1, r2] = [await get(withCopy, 1, range), await get(without, 1, range)];
  expect(r1.status).toBe(206);
  expect(r1.headers["content-range"]).toBe(r2.headers["content-range"]!);
  expect(r1.headers["content-length"]).toBe("4096");
  expect(r1.bytes).toEqual(layer(1).bytes.slice(100, 4196));
  await withObjectChanged(1, async () => {
    expect((await get(withCopy, 1)).bytes).toEqual(layer(1).bytes);
  });
}, 60_000);

test(`the local copy's bound (${BOUND / MiB} MiB) holds on disk: the least recently served is evicted and streamed from S3 again`, async () => {
  // img0 and img1 (8 MiB each) have copies; img2 and img3 make 32 MiB: the oldest go.
  for (const i of [2, 3]) {
    expect((await get(withCopy, i)).bytes).toEqual(layer(i).bytes);
    expect(copyBytes(withCopyPath)).toBeLessThanOrEqual(BOUND);
  }
  await inS3(2);
  await inS3(3);
  // The copy is kept as the upload completes, a moment after the client's last byte.
  await waitFor("two copies", async () => copyBytes(withCopyPath) >= 2 * 8 * MiB, 10_000);
  expect(copyBytes(withCopyPath)).toBeLessThanOrEqual(BOUND);
  // The metrics say what is on disk; the replica without a local copy holds none.
  const gauge = async (c: RunningCache, name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(await (await fetch(`${c.url}/metrics`)).text())?.[1]);
  expect(await gauge(withCopy, "ociregistry_s3_local_copy_bytes")).toBe(copyBytes(withCopyPath));
  expect(await gauge(withCopy, "ociregistry_s3_local_copy_items")).toBe(2);
  expect(await gauge(without, "ociregistry_s3_local_copy_bytes")).toBe(0);
  expect(await gauge(withCopy, "ociregistry_s3_uploads_waiting")).toBe(0);
  // img3 was served last: it has a copy; img0 (served longest ago) was evicted and comes from S3.
  await withObjectChanged(3, async () => {
    expect((await get(withCopy, 3)).bytes).toEqual(layer(3).bytes);
  });
  await withObjectChanged(0, async (changed) => {
    expect((await get(withCopy, 0)).bytes).toEqual(changed);
  });
}, 60_000);

test("verify is clean, and the copies go with the process", async () => {
  await withCopy.stop();
  await without.stop();
  const v = await run([BINARY, "--config-file", join(dir, "with.yml"), "--image-path", withCopyPath, "verify"], { env: env(), allowFail: true });
  expect(v.stdout).toContain("0 problem(s) found");
  expect(v.code).toBe(0);
  // The next serve on this image path removes the stopped one's copies at start.
  expect(copyBytes(withCopyPath)).toBeGreaterThan(0);
  const next = await startCache(["--config-file", join(dir, "with.yml"), "--image-path", withCopyPath], env());
  await next.stop();
  expect(copyBytes(withCopyPath)).toBe(0);
}, 120_000);
