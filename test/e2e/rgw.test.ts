// Bun.S3Client against a real S3 service (Ceph radosgw): what the S3 store can rely on, what Bun
// cannot do (signed raw requests from test/helpers/s3-raw.ts do it), and the errors to report.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { stopProcess, track, waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";
import { abortUpload, listIncompleteUploads, putIfAbsent, type IncompleteUpload } from "../helpers/s3-raw.ts";

const BUCKET = "store";
const MiB = 1024 * 1024;
let rgw: Rgw;
let s3: Bun.S3Client;
const opts = (r: Rgw) => ({ endpoint: r.endpoint, accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey, region: r.region });
const bytes = (n: number) => Buffer.from(Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

beforeAll(async () => {
  rgw = await startRgw();
  console.log(`radosgw answered signed requests ${rgw.startMs} ms after startRgw()`);
  await rgw.createBucket(BUCKET);
  s3 = new Bun.S3Client({ ...opts(rgw), bucket: BUCKET });
}, 60_000);
afterAll(() => rgw?.stop());

test("an object reads back whole and by byte range, also by presigned URL, with its size and ETag, until deleted", async () => {
  const f = s3.file("obj/hello");
  expect(await f.write("hello world")).toBe(11);
  expect([await f.text(), await f.slice(0, 5).text(), await f.slice(6).text()]).toEqual(["hello world", "hello", "world"]);
  expect([await f.exists(), await s3.size("obj/hello"), await s3.exists("obj/missing")]).toEqual([true, 11, false]);
  expect(await f.stat()).toMatchObject({ size: 11, etag: `"${new Bun.CryptoHasher("md5").update("hello world").digest("hex")}"` });
  await expect(s3.stat("obj/missing")).rejects.toMatchObject({ name: "S3Error", code: "NoSuchKey" });
  const url = s3.presign("obj/hello", { expiresIn: 60 }); // for plain fetch, with or without a Range
  const ranged = await fetch(url, { headers: { range: "bytes=0-4" } });
  expect([await (await fetch(url)).text(), ranged.status, await ranged.text()]).toEqual(["hello world", 206, "hello"]);
  await s3.delete("obj/hello");
  expect(await f.exists()).toBe(false);
  await s3.delete("obj/hello"); // a missing key deletes fine
});

test("list pages through the keys under a prefix with maxKeys, then continuationToken or startAfter", async () => {
  const keys = Array.from({ length: 7 }, (_, i) => `list/k${i}`);
  await Promise.all([...keys.map((k) => s3.write(k, k)), s3.write("other/k", "x")]);
  const seen: string[] = [];
  let page: Bun.S3ListObjectsResponse | undefined;
  do {
    page = await s3.list({ prefix: "list/", maxKeys: 3, continuationToken: page?.nextContinuationToken });
    seen.push((page.contents ?? []).map((c) => c.key).join(","));
  } while (page.isTruncated);
  expect(seen).toEqual(["list/k0,list/k1,list/k2", "list/k3,list/k4,list/k5", "list/k6"]);
  const after = await s3.list({ prefix: "list/", startAfter: "list/k4" });
  expect(after.contents?.map((c) => [c.key, c.size])).toEqual([["list/k5", 7], ["list/k6", 7]]);
  expect(await s3.list({ prefix: "nothing/" })).not.toHaveProperty("contents"); // not []
});

test("the writer uploads 20 MiB in parts that read back identical, whole and by range", async () => {
  const data = bytes(20 * MiB + 7);
  const w = s3.file("big/blob").writer({ partSize: 5 * MiB });
  for (let off = 0; off < data.length; off += MiB) {
    w.write(data.subarray(off, off + MiB));
    await w.flush();
  }
  expect(await w.end()).toBe(data.length);
  expect(await s3.stat("big/blob")).toMatchObject({ size: data.length, etag: expect.stringMatching(/-5"$/) }); // 5 parts
  expect(data.equals(await s3.file("big/blob").bytes())).toBe(true);
  expect(data.subarray(10 * MiB - 3, 10 * MiB + 3).equals(await s3.file("big/blob").slice(10 * MiB - 3, 10 * MiB + 3).bytes())).toBe(true);
});

test("a body stream that fails aborts its multipart upload: no object, no incomplete upload", async () => {
  async function* body() {
    for (let i = 0; i < 12; i++) yield await Bun.sleep(20).then(() => bytes(MiB)); // slow: parts go up first
    throw new Error("upstream reset");
  }
  await expect(s3.write("big/failed", new Response(body()), { partSize: 5 * MiB })).rejects.toThrow("upstream reset");
  expect(await s3.exists("big/failed")).toBe(false);
  // Bun sends AbortMultipartUpload after write() rejected, not before.
  const log = Bun.file(`${rgw.dir}/log/client.rgw.log`);
  await waitFor("Bun's abort", async () => (await log.text()).includes(`"DELETE /${BUCKET}/big/failed?uploadId=`));
  await waitFor("no incomplete upload", async () => (await listIncompleteUploads(rgw, BUCKET, "big/")).length === 0);
});

test("writer.end(error) does not abort: it completes the upload with the bytes written so far", async () => {
  const w = s3.file("big/ended").writer({ partSize: 5 * MiB });
  for (let i = 0; i < 6; i++) w.write(bytes(MiB));
  await w.end(new Error("client went away"));
  expect(await s3.size("big/ended")).toBe(6 * MiB);
});

test("a process killed mid-upload leaves an incomplete upload, which signed raw requests list and abort", async () => {
  // A child process: in-process, Bun aborts the upload itself once an unended writer is collected.
  const script = `const w = new Bun.S3Client(JSON.parse(process.env.S3_OPTS)).file("big/orphan").writer({ partSize: ${5 * MiB} });
    for (let i = 0; i < 6; i++) w.write(new Uint8Array(${MiB}));
    await w.flush(); console.log("flushed"); globalThis.w = w; await Bun.sleep(60_000);`;
  const env = { ...process.env, S3_OPTS: JSON.stringify({ ...opts(rgw), bucket: BUCKET }) };
  const child = track(Bun.spawn([process.execPath, "-e", script], { env, stdout: "pipe" }));
  expect(new TextDecoder().decode((await child.stdout.getReader().read()).value)).toContain("flushed");
  await stopProcess(child, "SIGKILL");
  let uploads: IncompleteUpload[] = [];
  await waitFor("the incomplete upload", async () => (uploads = await listIncompleteUploads(rgw, BUCKET, "big/orphan")).length > 0);
  expect(uploads.map((u) => u.key)).toEqual(["big/orphan"]);
  await abortUpload(rgw, BUCKET, uploads[0]!);
  expect([await listIncompleteUploads(rgw, BUCKET, "big/orphan"), await s3.exists("big/orphan")]).toEqual([[], false]);
});

test("If-None-Match: * creates only: Bun's own calls cannot send it, a presigned or signed raw PUT can", async () => {
  await s3.write("cond/k", "first");
  // fetch("s3://…") signs the request itself and leaves the header out: this PUT overwrites.
  const init = { method: "PUT", body: "second", headers: { "If-None-Match": "*" }, s3: opts(rgw) };
  expect((await fetch(`s3://${BUCKET}/cond/k`, init)).status).toBe(200);
  const put = (key: string, body: string) =>
    fetch(s3.presign(key, { method: "PUT", expiresIn: 60 }), { method: "PUT", body, headers: { "If-None-Match": "*" } });
  expect([(await put("cond/k", "third")).status, (await put("cond/new", "fresh")).status]).toEqual([412, 200]);
  expect([await putIfAbsent(rgw, BUCKET, "cond/k", "fourth"), await putIfAbsent(rgw, BUCKET, "cond/raw", "fresh")]).toEqual([412, 200]);
  expect(await Promise.all(["cond/k", "cond/new", "cond/raw"].map((k) => s3.file(k).text()))).toEqual(["second", "fresh", "fresh"]);
});

test("errors: wrong access key, wrong secret, closed port, missing bucket", async () => {
  const client = (o: Bun.S3Options) => new Bun.S3Client({ ...opts(rgw), bucket: BUCKET, ...o });
  const xml = (code: string) => ({ name: "S3Error", code, message: expect.stringContaining(`<Code>${code}</Code>`) });
  const unknown = { name: "S3Error", code: "UnknownError", message: "an unexpected error has occurred" };
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  l.stop(true);
  const wrongKey = client({ accessKeyId: "NOSUCHKEY" });
  const closed = client({ endpoint: `http://127.0.0.1:${l.port}` });
  const noBucket = client({ bucket: "no-such-bucket" });
  const multipart = async (c: Bun.S3Client) => { const w = c.file("e/big").writer({ partSize: 5 * MiB }); w.write(bytes(6 * MiB)); return w.end(); };
  const cases: Array<[() => Promise<unknown>, object]> = [
    [() => wrongKey.write("e/x", "x"), xml("InvalidAccessKeyId")],
    [() => wrongKey.list(), xml("InvalidAccessKeyId")],
    [() => wrongKey.stat("e/x"), unknown], // a HEAD response has no body: stat and exists lose the cause
    [() => wrongKey.exists("e/x"), unknown],
    [() => client({ secretAccessKey: "wrong" }).file("e/x").text(), xml("SignatureDoesNotMatch")],
    [() => closed.write("e/x", "x"), { ...unknown, code: "ConnectionRefused" }],
    [() => closed.stat("e/x"), { ...unknown, code: "ConnectionRefused" }],
    [() => noBucket.write("e/x", "x"), xml("NoSuchBucket")],
    [() => noBucket.list(), xml("NoSuchBucket")],
    [() => noBucket.stat("e/x"), { name: "S3Error", code: "NoSuchKey" }], // HEAD again: a missing bucket looks like a missing key
    [() => multipart(noBucket), { ...unknown, message: "Failed to initiate multipart upload" }],
  ];
  for (const [op, error] of cases) await expect(op()).rejects.toMatchObject(error);
  expect(await noBucket.exists("e/x")).toBe(false);
});

test("stop leaves no process or directory behind, and a new cluster starts after it in the same process", async () => {
  await rgw.stop();
  expect([rgw.pids.filter(alive), existsSync(rgw.dir)]).toEqual([[], false]);
  const again = await startRgw(); // ready once a signed PUT bucket and a signed list worked
  await again.stop();
  expect([again.pids.filter(alive), existsSync(again.dir)]).toEqual([[], false]);
}, 60_000);
