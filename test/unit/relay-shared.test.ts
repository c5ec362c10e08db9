// One relay per blob per replica: a follower's clients asking for a blob another replica downloads
// share one internal stream from the owner (one spool, one hash), a client that stops reading holds
// no one up, a corrupted relay fails every client and leaves nothing, Range answers come from the
// shared relay, and an owner that dies mid-stream is taken over. In-process, two caches on one
// shared memory store; the compiled binary on Ceph RGW is test/e2e/s3-flight.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCache, type Cache } from "../../src/cache/index.ts";
import { FLIGHT_LEASE_MS, flightName } from "../../src/cache/flight-leases.ts";
import { createRegistry } from "../../src/registry/router.ts";
import { internalEndpoint, peerLink } from "../../src/server/replica-link.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
import type { Store } from "../../src/store/types.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { createFakeUpstream } from "../helpers/fake-upstream.ts";
import { makeImage } from "../helpers/images.ts";
import { quietLog } from "../helpers/registry.ts";

const SECRET = "sixteen-chars-at-least-0123";
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A body that sends `bytes` in `piece`-byte chunks, `gapMs` apart (a download still running). */
function drip(bytes: Uint8Array, piece: number, gapMs: number, stopAt = Infinity): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    async pull(c) {
      if (at >= Math.min(bytes.byteLength, stopAt)) return at >= bytes.byteLength ? c.close() : c.error(new Error("owner killed"));
      await Bun.sleep(gapMs);
      const n = Math.min(piece, bytes.byteLength - at);
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

/** Replicas on one shared store, each with its own internal endpoint; `internal` counts the internal requests each origin got. */
function cluster(upstreamBody?: (bytes: Uint8Array) => ReadableStream<Uint8Array>) {
  const store: Store = { ...createMemoryStore(), shared: true };
  const up = createFakeUpstream();
  const img = makeImage({ content: 3 * 1024 * 1024, uncompressed: true });
  up.add("library/x", "v1", img);
  const layer = img.blobs[1]!;
  if (upstreamBody) {
    up.intercept = (req) => (req.url.endsWith(`/blobs/${layer.digest}`) && req.method === "GET"
      ? new Response(upstreamBody(layer.bytes), { headers: { "content-length": String(layer.bytes.byteLength) } })
      : undefined);
  }
  const endpoints = new Map<string, (req: Request, path: string) => Promise<Response>>();
  const internal = new Map<string, number>();
  const fetchPeer = (async (url: string, init: RequestInit) => {
    const r = new Request(url, init);
    const u = new URL(r.url);
    internal.set(u.origin, (internal.get(u.origin) ?? 0) + 1);
    const endpoint = endpoints.get(u.origin);
    if (!endpoint) throw new Error(`connection refused: ${u.origin}`);
    return endpoint(r, u.pathname);
  }) as typeof fetch;
  const relayDir = mkdtempSync(join(tmpdir(), "ocireg-relay-unit-"));
  dirs.push(relayDir);
  const replica = (origin: string) => {
    const upstreams = createUpstreams({ registries: [{ name: "up.test", scheme: "http" }], timeoutMs: 5000, fetch: up.fetch, lookup: async () => [] });
    const cache = createCache({ store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs: 5000, log: quietLog, relayDir, peers: peerLink(SECRET, () => origin, 5000, fetchPeer) });
    endpoints.set(origin, internalEndpoint(SECRET, cache));
    return { cache: cache as Cache, serve: createRegistry({ cache, defaultNs: "up.test", log: quietLog }) };
  };
  const path = `http://cache.test/v2/library/x/blobs/${layer.digest}`;
  const blobGets = () => up.log.filter((l) => l === `GET /v2/library/x/blobs/${layer.digest}`).length;
  /** A lease for the blob held by `origin` (a fake owner whose endpoint the test sets). */
  /**
   * Another replica holding the lease and serving `endpoint`. Its lease is written as an owner writes
   * it but not renewed (expiring FLIGHT_LEASE_MS from now), as an owner whose download or upload
   * ended stops renewing it: a relay waits for its object no longer than that.
   */
  const fakeOwner = async (origin: string, endpoint: (req: Request) => Response | Promise<Response>) => {
    const lease = { owner: `fake-${origin}`, url: origin, expires: new Date(Date.now() + FLIGHT_LEASE_MS).toISOString() };
    expect(await store.createState(flightName("up.test", layer.digest), new TextEncoder().encode(`${JSON.stringify(lease)}\n`))).toBe(true);
    endpoints.set(origin, async (req) => endpoint(req));
  };
  return { store, up, layer, replica, path, internal, blobGets, relayDir, fakeOwner, endpoints };
}

const body = async (res: Response) => new Uint8Array(await res.arrayBuffer());

describe("one relay per blob per replica", () => {
  test("a follower's clients share one internal stream from the owner; every client gets the right bytes, Range too", async () => {
    const c = cluster((bytes) => drip(bytes, 128 * 1024, 8));
    const [a, b] = [c.replica("http://a.test"), c.replica("http://b.test")];
    const first = a.serve(new Request(c.path));
    await Bun.sleep(30);
    // Eight clients of b, one with a Range, arriving while a still downloads.
    const ranged = b.serve(new Request(c.path, { headers: { range: "bytes=1000-200999" } }));
    const whole = await Promise.all(Array.from({ length: 7 }, (_, i) => Bun.sleep(i * 10).then(() => b.serve(new Request(c.path)))));
    for (const r of [await first, ...whole]) {
      expect(r.status).toBe(200);
      expect(await body(r)).toEqual(c.layer.bytes);
    }
    const r = await ranged;
    expect(r.status).toBe(206);
    expect(await body(r)).toEqual(c.layer.bytes.slice(1000, 201000));
    expect(c.blobGets()).toBe(1);
    // One internal request from b to a, however many clients b had.
    expect(c.internal.get("http://a.test")).toBe(1);
    expect(c.internal.get("http://b.test") ?? 0).toBe(0);
    // The follower stored no copy of its own; its spool is gone.
    await Bun.sleep(50);
    expect(readdirSync(c.relayDir, { recursive: true }).filter((f) => !String(f).endsWith("/")).length).toBe(0);
    expect(await c.store.statBlob(c.layer.digest)).not.toBeNull();
  });

  test("a client that stops reading holds none of the others up", async () => {
    const c = cluster((bytes) => drip(bytes, 256 * 1024, 5));
    const [a, b] = [c.replica("http://a.test"), c.replica("http://b.test")];
    const owner = a.serve(new Request(c.path));
    await Bun.sleep(20);
    const stalled = await b.serve(new Request(c.path));
    // Reads one chunk, then nothing.
    const reader = stalled.body!.getReader();
    await reader.read();
    const t = performance.now();
    const others = await Promise.all(Array.from({ length: 4 }, () => b.serve(new Request(c.path)).then(body)));
    for (const o of others) expect(o).toEqual(c.layer.bytes);
    expect(await body(await owner)).toEqual(c.layer.bytes);
    // The download drips for ~60 ms; the others are not held to the stalled reader.
    expect(performance.now() - t).toBeLessThan(3000);
    expect(c.internal.get("http://a.test")).toBe(1);
    // The stalled client still gets the rest when it reads again (from the spool or the stored blob).
    let got = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) got += r.value.byteLength;
    expect(got).toBeGreaterThan(0);
  });

  test("a relay whose bytes do not match the digest fails every client; nothing is committed or left", async () => {
    const c = cluster();
    const bad = new Uint8Array(c.layer.bytes);
    bad[bad.byteLength - 10]! ^= 0xff;
    // An owner (or a path to it) that sends the right size and the wrong bytes.
    await c.fakeOwner("http://a.test", () => new Response(drip(bad, 256 * 1024, 3), { headers: { "content-length": String(bad.byteLength) } }));
    const b = c.replica("http://b.test");
    const results = await Promise.all(Array.from({ length: 5 }, () => b.serve(new Request(c.path)).then(body).then(() => "ok", (e: Error) => e.message)));
    for (const r of results) expect(r).not.toBe("ok");
    expect(c.internal.get("http://a.test")).toBe(1);
    expect(c.blobGets()).toBe(0);
    expect(await c.store.statBlob(c.layer.digest)).toBeNull();
    await Bun.sleep(50);
    expect(readdirSync(c.relayDir, { recursive: true }).length).toBe(0);
  });

  test("an owner that dies mid-stream: the follower takes the download over, its clients resume and complete", async () => {
    const c = cluster();
    let opened = 0;
    // The owner sends a third of the blob and dies; asked again, it is gone (404: no such download).
    await c.fakeOwner("http://a.test", () => (opened++ === 0
      ? new Response(drip(c.layer.bytes, 256 * 1024, 3, 1024 * 1024), { headers: { "content-length": String(c.layer.bytes.byteLength) } })
      : new Response("no such download\n", { status: 404 })));
    const b = c.replica("http://b.test");
    const got = await Promise.all(Array.from({ length: 4 }, () => b.serve(new Request(c.path)).then(body)));
    for (const g of got) expect(g).toEqual(c.layer.bytes);
    // The relay broke at 1 MiB: b took the lease over at once, fetched the blob and resumed from it.
    expect(c.blobGets()).toBe(1);
    expect(opened).toBe(1);
    // b committed it as the new owner.
    expect(await c.store.statBlob(c.layer.digest)).not.toBeNull();
  });

  test("an owner that never stores the blob: the follower's clients still get verified bytes, a pull into the store fails", async () => {
    const c = cluster();
    await c.fakeOwner("http://a.test", () => new Response(drip(c.layer.bytes, 512 * 1024, 1), { headers: { "content-length": String(c.layer.bytes.byteLength) } }));
    const b = c.replica("http://b.test");
    const [r, later, ensured] = await Promise.all([
      b.serve(new Request(c.path)).then(body),
      // Once verified the relay waits for the owner's object and takes no new client: a later one opens a relay of its own.
      Bun.sleep(500).then(() => b.serve(new Request(c.path))).then(body),
      b.cache.blobs.ensure({ upstream: "up.test", repository: "library/x" }, c.layer.digest).then(() => "ok", (e: Error) => e.message),
    ]);
    expect(r).toEqual(c.layer.bytes);
    expect(later).toEqual(c.layer.bytes);
    expect(ensured).toContain("did not appear in the store");
    expect(c.internal.get("http://a.test")).toBe(2);
  }, 30_000);
});
