// The S3 store's local copy of blobs (src/store/s3/local-copy.ts): kept only when verified, bounded
// by bytes with the least recently served evicted, removed with the blob.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { contentKey } from "../../src/store/keys.ts";
import { createLocalCopies } from "../../src/store/s3/local-copy.ts";

const root = mkdtempSync(join(tmpdir(), "ocireg-local-copy-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (max: number) => {
  const dir = join(root, `c${n++}`);
  const log: string[] = [];
  return { dir, log, copies: createLocalCopies(dir, max, { debug: (m) => log.push(m) }) };
};

const blob = (size: number, seed = size) => {
  const bytes = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
  return { bytes, key: contentKey("blobs", digestOf(bytes)) };
};
/** `bytes` as a stream of 1 KiB chunks, like a body read from S3. */
const chunked = (bytes: Uint8Array) => new ReadableStream<Uint8Array>({
  start(ctl) {
    for (let i = 0; i < bytes.byteLength; i += 1024) ctl.enqueue(bytes.slice(i, i + 1024));
    ctl.close();
  },
});
const read = async (s: ReadableStream<Uint8Array>) => new Uint8Array(await new Response(s).arrayBuffer());
/** Files on disk under the copies' directory (temp files included), and their bytes. */
const onDisk = (dir: string) => {
  const names = readdirSync(dir);
  return { names, bytes: names.reduce((t, f) => t + statSync(join(dir, f)).size, 0) };
};

describe("the local copy of S3 blobs", () => {
  test("a warm fill passes the bytes through and keeps a copy whose bytes are the blob's", async () => {
    const { copies, dir } = fresh(1 << 20);
    const b = blob(10_000);
    expect(copies.find(b.key, 10_000)).toBeNull();
    expect(await read(copies.fill(b.key, 10_000, () => chunked(b.bytes)))).toEqual(b.bytes);
    const copy = copies.find(b.key, 10_000);
    expect(copy).not.toBeNull();
    expect(new Uint8Array(await copy!.arrayBuffer())).toEqual(b.bytes);
    expect(copies.figures()).toEqual({ bytes: 10_000, copies: 1 });
    expect(onDisk(dir).names).toHaveLength(1); // no temp file left
  });

  test("a fill whose bytes do not match the digest, or end short, is dropped and its temp file removed; the client still gets what S3 sent", async () => {
    const { copies, dir, log } = fresh(1 << 20);
    const b = blob(10_000);
    const corrupt = b.bytes.slice();
    corrupt[5000]! ^= 0xff;
    expect(await read(copies.fill(b.key, 10_000, () => chunked(corrupt)))).toEqual(corrupt);
    expect(copies.find(b.key, 10_000)).toBeNull();
    expect(log.join("\n")).toContain("dropped");
    // Short: the object's announced size is not what arrived.
    await read(copies.fill(b.key, 10_000, () => chunked(b.bytes.slice(0, 9000))));
    expect(copies.find(b.key, 10_000)).toBeNull();
    expect(onDisk(dir)).toEqual({ names: [], bytes: 0 });
    expect(copies.figures()).toEqual({ bytes: 0, copies: 0 });
  });

  test("a client that stops reading ends the fill without a copy", async () => {
    const { copies, dir } = fresh(1 << 20);
    const b = blob(64 * 1024);
    const r = copies.fill(b.key, b.bytes.byteLength, () => chunked(b.bytes)).getReader();
    await r.read();
    await r.cancel();
    expect(copies.find(b.key, b.bytes.byteLength)).toBeNull();
    expect(onDisk(dir)).toEqual({ names: [], bytes: 0 });
  });

  test("one fill per blob at a time: a second reader meanwhile gets the plain stream", async () => {
    const { copies } = fresh(1 << 20);
    const b = blob(8192);
    const first = copies.fill(b.key, 8192, () => chunked(b.bytes));
    let opened = 0;
    const plain = chunked(b.bytes);
    expect(copies.fill(b.key, 8192, () => (opened++, plain))).toBe(plain);
    expect(opened).toBe(1);
    await read(first);
    expect(copies.find(b.key, 8192)).not.toBeNull();
  });

  test("a client reading too slowly gives its fill up: slot and reserved bytes are freed, the client still gets every byte", async () => {
    let t = 0;
    const log: string[] = [];
    const dir = join(root, `c${n++}`);
    // A 1 MiB bound: the slow fill reserves all of it while it lasts.
    const copies = createLocalCopies(dir, 1 << 20, { debug: (m) => log.push(m), now: () => t });
    const big = blob(1 << 20, 7);
    const slow = copies.fill(big.key, 1 << 20, () => chunked(big.bytes)).getReader();
    const got: Uint8Array[] = [];
    const first = await slow.read();
    got.push(first.value!);
    // Another blob cannot get a copy meanwhile: the bound is reserved.
    const other = blob(10_000, 9);
    await read(copies.fill(other.key, 10_000, () => chunked(other.bytes)));
    expect(copies.find(other.key, 10_000)).toBeNull();
    // 30 s plus 1 MiB at 4 MiB/s later, the next chunk gives the fill up.
    t += 30_000 + 250 + 1;
    for (let r = await slow.read(); !r.done; r = await slow.read()) got.push(r.value);
    expect(new Uint8Array(await new Blob(got).arrayBuffer())).toEqual(big.bytes);
    expect(log.join("\n")).toContain("too slowly to hold a fill");
    expect(copies.find(big.key, 1 << 20)).toBeNull();
    expect(onDisk(dir).names).toEqual([]); // the temp file is gone
    await read(copies.fill(other.key, 10_000, () => chunked(other.bytes)));
    expect(copies.find(other.key, 10_000)).not.toBeNull(); // room again
  });

  test("a client that stops reading altogether gives its fill up when its time is over (a timer, not a read, notices)", async () => {
    const dir = join(root, `c${n++}`);
    const log: string[] = [];
    const copies = createLocalCopies(dir, 1 << 20, { debug: (m) => log.push(m), fillGraceMs: 50 });
    const big = blob(1 << 20, 5);
    const stalled = copies.fill(big.key, 1 << 20, () => chunked(big.bytes)).getReader();
    await stalled.read(); // one chunk, then nothing
    const other = blob(10_000, 6);
    await read(copies.fill(other.key, 10_000, () => chunked(other.bytes)));
    expect(copies.find(other.key, 10_000)).toBeNull(); // the stalled fill holds the bound
    await Bun.sleep(50 + 250 + 100); // its grace plus 1 MiB at 4 MiB/s
    expect(log.join("\n")).toContain("stopped reading");
    expect(onDisk(dir).names).toEqual([]);
    await read(copies.fill(other.key, 10_000, () => chunked(other.bytes)));
    expect(copies.find(other.key, 10_000)).not.toBeNull();
    await stalled.cancel();
  });

  test("a fill within its time keeps its copy (the clock is checked, not guessed)", async () => {
    let t = 0;
    const copies = createLocalCopies(join(root, `c${n++}`), 1 << 20, { now: () => t });
    const b = blob(100_000, 3);
    const reader = copies.fill(b.key, 100_000, () => chunked(b.bytes)).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) t += 200; // 98 chunks, ~20 s in all
    expect(copies.find(b.key, 100_000)).not.toBeNull();
  });

  test("the metrics are told the bytes and copies held at every change: kept, evicted, dropped", async () => {
    const told: Array<[number, number]> = [];
    const copies = createLocalCopies(join(root, `c${n++}`), 25_000, { changed: (bytes, count) => told.push([bytes, count]) });
    const [a, b, c] = [blob(10_000, 1), blob(10_000, 2), blob(10_000, 3)];
    for (const x of [a, b]) await read(copies.fill(x.key, 10_000, () => chunked(x.bytes)));
    expect(told).toEqual([[10_000, 1], [20_000, 2]]);
    await read(copies.fill(c.key, 10_000, () => chunked(c.bytes))); // a is evicted to make room
    expect(told.slice(2)).toEqual([[10_000, 1], [20_000, 2]]);
    await copies.drop(b.key);
    expect(told.at(-1)).toEqual([10_000, 1]);
    expect(copies.figures()).toEqual({ bytes: 10_000, copies: 1 });
  });

  test("the byte bound holds on disk: the least recently served copy is evicted, and a blob larger than the bound is never kept", async () => {
    const { copies, dir } = fresh(25_000);
    const [a, b, c] = [blob(10_000, 1), blob(10_000, 2), blob(10_000, 3)];
    await read(copies.fill(a.key, 10_000, () => chunked(a.bytes)));
    await read(copies.fill(b.key, 10_000, () => chunked(b.bytes)));
    expect(copies.find(a.key, 10_000)).not.toBeNull(); // a served: b is now the least recently served
    await read(copies.fill(c.key, 10_000, () => chunked(c.bytes)));
    expect(copies.find(b.key, 10_000)).toBeNull();
    expect(copies.find(a.key, 10_000)).not.toBeNull();
    expect(copies.find(c.key, 10_000)).not.toBeNull();
    expect(onDisk(dir).bytes).toBeLessThanOrEqual(25_000);
    const huge = blob(30_000);
    expect(await read(copies.fill(huge.key, 30_000, () => chunked(huge.bytes)))).toEqual(huge.bytes);
    expect(copies.find(huge.key, 30_000)).toBeNull();
    expect(copies.figures()).toEqual({ bytes: 20_000, copies: 2 });
  });

  test("a verified scratch file is adopted as the copy (a link, not a second write); removal removes it", async () => {
    const { copies, dir } = fresh(1 << 20);
    const b = blob(5000);
    const scratch = join(root, `scratch-${n}`);
    writeFileSync(scratch, b.bytes);
    await copies.adopt(b.key, scratch, 5000);
    rmSync(scratch); // the writer releases its scratch file: the copy stays
    const copy = copies.find(b.key, 5000);
    expect(new Uint8Array(await copy!.arrayBuffer())).toEqual(b.bytes);
    expect(statSync(join(dir, readdirSync(dir)[0]!)).nlink).toBe(1);
    await copies.drop(b.key);
    expect(copies.find(b.key, 5000)).toBeNull();
    expect(onDisk(dir)).toEqual({ names: [], bytes: 0 });
  });

  test("a copy that vanished from disk, or whose size is not the object's, is not served", async () => {
    const { copies, dir } = fresh(1 << 20);
    const [a, b] = [blob(4096, 1), blob(4096, 2)];
    await read(copies.fill(a.key, 4096, () => chunked(a.bytes)));
    await read(copies.fill(b.key, 4096, () => chunked(b.bytes)));
    for (const f of readdirSync(dir)) if (f.endsWith(a.key.split("/")[2]!)) rmSync(join(dir, f));
    expect(copies.find(a.key, 4096)).toBeNull();
    expect(copies.find(b.key, 4097)).toBeNull();
    expect(copies.figures()).toEqual({ bytes: 0, copies: 0 });
  });

  test("a fill of a blob removed meanwhile is not kept", async () => {
    const { copies } = fresh(1 << 20);
    const b = blob(4096);
    const s = copies.fill(b.key, 4096, () => chunked(b.bytes));
    await copies.drop(b.key);
    await read(s);
    expect(copies.find(b.key, 4096)).toBeNull();
  });
});
