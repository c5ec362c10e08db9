// Bad days: failing upstreams, a circuit breaker, lying sizes, freshness rules, upstream policy,
// shutdown with downloads running.
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { createBreakers } from "../../src/upstream/breaker.ts";
import { makeImage } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";
import { tempFiles } from "../helpers/store-files.ts";

async function errorOf(res: Response) {
  return { status: res.status, ...((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]! };
}

describe("circuit breaker", () => {
  test("opens after 3 failures, lets one probe through after a doubling backoff, closes on success", () => {
    let now = 0;
    const b = createBreakers({ threshold: 3, initialBackoffMs: 1000, maxBackoffMs: 4000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(b.admit("u").ok).toBe(true);
      b.failure("u");
    }
    expect(b.admit("u")).toEqual({ ok: false, retryInMs: 1000, rateLimited: false });
    now += 1000;
    expect(b.admit("u").ok).toBe(true); // the probe
    expect(b.admit("u").ok).toBe(false); // only one at a time
    b.failure("u");
    now += 1999;
    expect(b.admit("u").ok).toBe(false); // backoff doubled to 2 s
    now += 1;
    expect(b.admit("u").ok).toBe(true);
    b.success("u");
    expect(b.admit("u").ok).toBe(true);
    expect(b.admit("other").ok).toBe(true);
  });

  test("while an upstream is down, cached tags stay fast and uncached ones fail at once", async () => {
    const r = await createTestRegistry({ revalidateAfterMs: 1000 });
    const img = makeImage();
    r.upstream.add("app", "v1", img);
    await r.request("/v2/app/manifests/v1");
    let attempts = 0;
    r.upstream.intercept = () => {
      attempts++;
      throw new TypeError("connection refused");
    };
    for (let i = 0; i < 10; i++) {
      r.clock.advance(2000);
      const res = await r.request("/v2/app/manifests/v1");
      expect(res.status).toBe(200);
    }
    // Three failures open the circuit; later revalidations do not touch the upstream until the backoff ends.
    expect(attempts).toBeLessThan(10);
    const tried = attempts;
    const cold = await errorOf(await r.request("/v2/app/manifests/never"));
    expect(cold.status).toBe(502);
    expect(cold.message).toMatch(/circuit open/);
    expect(attempts).toBe(tried);
  });
});

describe("upstream failures reach the client as spec errors", () => {
  test.each([
    [500, 502, "MANIFEST_UNKNOWN"],
    [503, 502, "MANIFEST_UNKNOWN"],
    [429, 429, "TOOMANYREQUESTS"],
    [403, 403, "DENIED"],
  ])("upstream %d -> %d %s, nothing stored", async (upstreamStatus, status, code) => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response("{}", { status: upstreamStatus });
    const e = await errorOf(await r.request("/v2/app/manifests/v1"));
    expect(e.status).toBe(status);
    expect(e.code).toBe(code);
    expect(readdirSync(join(r.root, "repositories"))).toEqual([]);
  });

  test("a timeout is a 504", async () => {
    const r = await createTestRegistry({ pullTimeoutMs: 50 });
    r.upstream.intercept = (req) => new Promise((_, reject) => req.signal.addEventListener("abort", () => reject(new Error("aborted"))));
    const e = await errorOf(await r.request("/v2/app/manifests/v1"));
    expect(e.status).toBe(504);
  });

  test("a blob larger than its manifest declares is refused and not stored", async () => {
    const r = await createTestRegistry();
    const img = makeImage({ content: 5000 });
    r.upstream.add("app", "v1", img);
    await r.request("/v2/app/manifests/v1");
    const layer = img.blobs[1]!;
    const bigger = new Uint8Array(layer.bytes.byteLength + 100);
    let announce = true;
    r.upstream.intercept = (req) =>
      req.url.includes("/blobs/")
        ? new Response(bigger, { headers: announce ? { "Content-Length": String(bigger.byteLength) } : {} })
        : undefined;
    // Announced up front: refused before any byte is sent.
    const e = await errorOf(await r.request(`/v2/app/blobs/${layer.digest}`));
    expect(e.status).toBe(502);
    expect(e.message).toContain("declares");
    // Not announced: the download is held to the declared size and aborted when it runs over.
    announce = false;
    const res = await r.request(`/v2/app/blobs/${layer.digest}`);
    expect(res.headers.get("content-length")).toBe(String(layer.bytes.byteLength));
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([]);
  });

  test("a stalled upstream body is abandoned after the pull timeout", async () => {
    const r = await createTestRegistry({ pullTimeoutMs: 100 });
    const data = new Uint8Array(1000).fill(1);
    r.upstream.intercept = () =>
      new Response(new ReadableStream({ start(c) { c.enqueue(data.subarray(0, 10)); } }), { headers: { "Content-Length": "1000" } });
    const res = await r.request(`/v2/app/blobs/${digestOf(data)}`);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(readdirSync(join(r.root, "blobs/sha256"))).toEqual([]);
  });
});

describe("freshness rules and upstream policy", () => {
  test("a tag matching a revalidateAfter: 0 rule (alwaysPullLatest) is checked on every pull", async () => {
    const r = await createTestRegistry({ revalidateAfterMs: 3_600_000, tagPolicies: [{ match: /:latest$/, revalidateAfterMs: 0 }] });
    r.upstream.add("app", "latest", makeImage());
    r.upstream.add("app", "v1", makeImage());
    await r.request("/v2/app/manifests/latest");
    await r.request("/v2/app/manifests/v1");
    r.upstream.log.length = 0;
    await r.request("/v2/app/manifests/latest");
    await r.request("/v2/app/manifests/v1");
    expect(r.upstream.log).toEqual(["HEAD /v2/app/manifests/latest"]);
  });

  test("upstreams: listed refuses hosts without a registries entry before contacting them", async () => {
    const r = await createTestRegistry({ allowUpstream: (u) => u === "up.test" });
    const e = await errorOf(await r.request("/v2/internal.corp:8443/secrets/manifests/v1"));
    expect(e.status).toBe(403);
    expect(e.code).toBe("DENIED");
    expect((await r.request("/v2/app/manifests/v1?ns=169.254.169.254")).status).toBe(403);
    expect(r.upstream.log).toEqual([]);
  });
});

describe("shutdown", () => {
  test("drain aborts downloads that do not finish in time and leaves no temp files", async () => {
    const r = await createTestRegistry();
    const data = new Uint8Array(1000).fill(9);
    r.upstream.intercept = () =>
      new Response(new ReadableStream({ start(c) { c.enqueue(data.subarray(0, 10)); } }), { headers: { "Content-Length": "1000" } });
    const res = await r.request(`/v2/app/blobs/${digestOf(data)}`);
    expect(tempFiles(r.root).length).toBe(1);
    await r.cache.drain(50);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(tempFiles(r.root)).toEqual([]);
  });

  test("flush never resurrects a record pruned by another process, nor undoes a newer digest", async () => {
    const r = await createTestRegistry();
    const v1 = makeImage();
    r.upstream.add("gone", "v1", v1);
    r.upstream.add("moved", "v1", v1);
    await r.request("/v2/gone/manifests/v1");
    await r.request("/v2/moved/manifests/v1");
    r.clock.advance(1000);
    await r.request("/v2/gone/manifests/v1");
    await r.request("/v2/moved/manifests/v1");
    await r.store.removeTag("up.test", "gone", "v1");
    const rec = (await r.store.readTag("up.test", "moved", "v1"))!;
    const other = `sha256:${"b".repeat(64)}`;
    await r.store.writeTag({ ...rec, digest: other });
    await r.cache.flush();
    expect(await r.store.readTag("up.test", "gone", "v1")).toBeNull();
    const moved = (await r.store.readTag("up.test", "moved", "v1"))!;
    expect(moved.digest).toBe(other);
    expect(moved.lastPulled).toBe(new Date(r.clock.now()).toISOString());
  });

  test("last-pulled times are batched in memory and written by flush", async () => {
    const r = await createTestRegistry();
    r.upstream.add("app", "v1", makeImage());
    await r.request("/v2/app/manifests/v1");
    const first = (await r.store.readTag("up.test", "app", "v1"))!.lastPulled;
    r.clock.advance(10_000);
    await r.request("/v2/app/manifests/v1");
    expect((await r.store.readTag("up.test", "app", "v1"))!.lastPulled).toBe(first);
    expect(await r.cache.flush()).toBe(1);
    expect((await r.store.readTag("up.test", "app", "v1"))!.lastPulled).toBe(new Date(r.clock.now()).toISOString());
  });
});
