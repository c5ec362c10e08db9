// Cold blobs: streamed to the client while they download, verified before they are committed.
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { createTestRegistry } from "../helpers/registry.ts";
import { waitFor } from "../helpers/procs.ts";
import { largestTempFile, tempFiles } from "../helpers/store-files.ts";

/** An upstream body that sends `first`, then waits for `release` before sending `rest`. */
function gatedBody(first: Uint8Array, rest: Uint8Array) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const body = new ReadableStream<Uint8Array>({
    async start(c) {
      c.enqueue(first);
      await gate;
      c.enqueue(rest);
      c.close();
    },
  });
  return { body, release };
}

describe("cold blob streaming", () => {
  test("the client receives the first bytes before the upstream has sent the whole blob", async () => {
    const r = await createTestRegistry();
    const first = new Uint8Array(64 * 1024).fill(1);
    const rest = new Uint8Array(64 * 1024).fill(2);
    const all = new Uint8Array([...first, ...rest]);
    const digest = digestOf(all);
    const g = gatedBody(first, rest);
    r.upstream.intercept = (req) =>
      req.url.includes("/blobs/") ? new Response(g.body, { headers: { "Content-Length": String(all.byteLength) } }) : undefined;
    const res = await r.request(`/v2/app/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(all.byteLength));
    const reader = res.body!.getReader();
    const chunk = await reader.read();
    expect(chunk.value!.byteLength).toBeGreaterThan(0);
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([]);
    g.release();
    let got = chunk.value!.byteLength;
    for (let c = await reader.read(); !c.done; c = await reader.read()) got += c.value.byteLength;
    expect(got).toBe(all.byteLength);
    // The last byte went out once the digest matched; the store commits (fsync, rename) right after.
    await waitFor("the blob to be committed", async () => readdirSync(join(r.root, "blobs/sha256")).includes(digest.slice(7)));
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([digest.slice(7)]);
  });

  test("a blob whose bytes do not match its digest is aborted before the last byte and never stored", async () => {
    const r = await createTestRegistry();
    const good = new Uint8Array(10_000).fill(7);
    const digest = digestOf(good);
    const lie = new Uint8Array(10_000).fill(8);
    r.upstream.intercept = (req) =>
      req.url.includes("/blobs/") ? new Response(lie, { headers: { "Content-Length": String(lie.byteLength) } }) : undefined;
    const res = await r.request(`/v2/app/blobs/${digest}`);
    let received = 0;
    let failed = false;
    try {
      for await (const c of res.body!) received += c.byteLength;
    } catch {
      failed = true;
    }
    expect(failed).toBe(true);
    expect(received).toBeLessThan(lie.byteLength);
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([]);
    expect(tempFiles(r.root)).toEqual([]);
  });

  test("a body cut short is aborted, not committed, and the next request downloads afresh", async () => {
    const r = await createTestRegistry();
    const all = new Uint8Array(20_000).fill(3);
    const digest = digestOf(all);
    let calls = 0;
    r.upstream.intercept = (req) => {
      if (!req.url.includes("/blobs/")) return undefined;
      calls++;
      const body = calls === 1
        ? new ReadableStream({ start(c) { c.enqueue(all.subarray(0, 5000)); c.error(new Error("connection reset")); } })
        : all;
      return new Response(body, { headers: { "Content-Length": String(all.byteLength) } });
    };
    const res = await r.request(`/v2/app/blobs/${digest}`);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([]);
    const again = await r.request(`/v2/app/blobs/${digest}`);
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(all);
    expect(calls).toBe(2);
  });

  test("concurrent clients of one cold blob share one download and get identical bytes", async () => {
    const r = await createTestRegistry();
    const first = new Uint8Array(100_000).map((_, i) => i % 251);
    const rest = new Uint8Array(100_000).map((_, i) => i % 13);
    const all = new Uint8Array([...first, ...rest]);
    const digest = digestOf(all);
    const g = gatedBody(first, rest);
    let calls = 0;
    r.upstream.intercept = (req) => {
      if (!req.url.includes("/blobs/")) return undefined;
      calls++;
      return new Response(g.body, { headers: { "Content-Length": String(all.byteLength) } });
    };
    const early = await Promise.all(Array.from({ length: 4 }, () => r.request(`/v2/app/blobs/${digest}`)));
    await waitFor("the first half to be downloaded", async () => largestTempFile(r.root) >= first.byteLength);
    const late = await r.request(`/v2/app/blobs/${digest}`, { headers: { Range: "bytes=150000-" } });
    g.release();
    const bodies = await Promise.all(early.map((x) => x.arrayBuffer()));
    for (const b of bodies) expect(new Uint8Array(b)).toEqual(all);
    expect(late.status).toBe(206);
    expect(new Uint8Array(await late.arrayBuffer())).toEqual(all.subarray(150_000));
    expect(calls).toBe(1);
  });
});

describe("a blob stored by another writer while this one missed it", () => {
  test("is served as the store describes it (stream only, redirect), not as a bare file", async () => {
    const r = await createTestRegistry();
    const bytes = new Uint8Array(5000).fill(9);
    const digest = digestOf(bytes);
    const w = await r.store.createBlobWriter(digest);
    await w.write(bytes);
    await w.commit();
    await w.release();
    // The first look misses, as when another replica commits the blob a moment later.
    const stat = r.store.statBlob.bind(r.store);
    let looks = 0;
    r.store.statBlob = async (d) => {
      const s = looks++ === 0 ? null : await stat(d);
      return s && { ...s, streamOnly: true, redirect: () => "https://s3.test/presigned" };
    };
    const source = await r.cache.blobs.get({ upstream: "up.test", repository: "library/app" }, digest);
    expect(source).toMatchObject({ kind: "stored", size: 5000, streamOnly: true });
    expect(source.kind === "stored" && source.redirect?.(60)).toBe("https://s3.test/presigned");
    expect(r.upstream.log.filter((l) => l.includes("/blobs/"))).toEqual([]);
  });
});
