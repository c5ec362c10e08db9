// How many store requests a cold pull makes before it is answered (on S3 each is a round trip of
// 5-25 ms under load): a cold manifest by tag and a cold config blob, counted at the driver.
import { describe, expect, test } from "bun:test";
import { createCache, type StoreBounds } from "../../src/cache/index.ts";
import { createRegistry } from "../../src/registry/router.ts";
import type { Driver } from "../../src/store/driver.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { memoryDriver } from "../../src/store/memory.ts";
import { createUsage } from "../../src/store/usage.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { createFakeUpstream } from "../helpers/fake-upstream.ts";
import { makeImage } from "../helpers/images.ts";
import { quietLog } from "../helpers/registry.ts";

/** A memory driver that notes each call as `method kind` (tags: the records; manifests, blobs). */
function counting(inner: Driver): { driver: Driver; calls: string[] } {
  const calls: string[] = [];
  const kind = (key: unknown) => (typeof key !== "string" ? "" : key.startsWith("repositories/") ? "tags" : key.split("/")[0]);
  const driver = new Proxy(inner, {
    get(target, name, receiver) {
      const v = Reflect.get(target, name, receiver);
      if (typeof v !== "function" || name === "init") return v;
      return (...args: unknown[]) => {
        calls.push(`${String(name)} ${kind(args[0])}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, calls };
}

async function setup(bounds?: StoreBounds) {
  const { driver, calls } = counting(memoryDriver());
  // Shared, as an S3 store is: only what costs a round trip there is saved.
  const store = createLayoutStore(Object.assign(driver, { shared: true }));
  const upstream = createFakeUpstream();
  const upstreams = createUpstreams({ registries: [{ name: "up.test", scheme: "http" }], timeoutMs: 5000, fetch: upstream.fetch, lookup: async () => [] });
  const cache = createCache({ store, upstreams, airGapped: false, revalidateAfterMs: 60_000, pullTimeoutMs: 5000, log: quietLog, bounds });
  const handler = createRegistry({ cache, defaultNs: "up.test", log: quietLog });
  const request = (path: string) => handler(new Request(`http://cache.test${path}`));
  const img = makeImage({ content: "round trips" });
  upstream.add("app", "v1", img);
  return { calls, store, request, img };
}

describe("store requests of a cold pull", () => {
  test("a cold tag: read its record, create the manifest, create the record (no look before either write)", async () => {
    const { calls, store, request, img } = await setup();
    calls.length = 0;
    const res = await request("/v2/app/manifests/v1");
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(img.manifest);
    expect(calls).toEqual(["read tags", "create manifests", "putIf tags"]);
    // Written as before: the manifest, and a record that says what it points at.
    expect(await store.readManifest(img.digest)).toEqual(img.manifest);
    expect((await store.readTag("up.test", "app", "v1"))?.digest).toBe(img.digest);
  });

  test("a record another writer made after the look is merged with, not overwritten", async () => {
    const { calls, store, request, img } = await setup();
    // Made between the cache's look (absent) and its write: the create loses, the update reads it.
    const pinned = { upstream: "up.test", repository: "app", tag: "v1", digest: img.digest, mediaType: img.mediaType, size: 1, created: "2020-01-01T00:00:00.000Z", lastPulled: "2020-01-01T00:00:00.000Z", checked: "2020-01-01T00:00:00.000Z", pinned: true };
    const readTag = store.readTag.bind(store);
    store.readTag = async (...a) => {
      const r = await readTag(...a);
      await store.writeTag(pinned);
      return r;
    };
    calls.length = 0;
    expect((await request("/v2/app/manifests/v1")).status).toBe(200);
    expect(calls.filter((c) => c.endsWith("tags"))).toEqual(["read tags", "put tags", "putIf tags", "readVersioned tags", "putIf tags"]);
    const rec = await readTag("up.test", "app", "v1");
    expect(rec).toMatchObject({ digest: img.digest, pinned: true, created: pinned.created });
    expect(rec!.lastPulled > pinned.lastPulled).toBe(true);
  });

  test("a manifest already stored is written again (the same verified bytes) and counted once", async () => {
    const { calls, store, request, img } = await setup();
    await store.writeManifest(img.digest, img.manifest);
    calls.length = 0;
    expect((await request("/v2/app/manifests/v1")).status).toBe(200);
    expect(calls.filter((c) => c.endsWith("manifests"))).toEqual(["create manifests", "put manifests"]);
  });

  test("a bounded store still looks before it admits a manifest (eviction makes room for new bytes only)", async () => {
    const { calls, request } = await setup({ maxSize: { bytes: 1 << 30 } });
    calls.length = 0;
    expect((await request("/v2/app/manifests/v1")).status).toBe(200);
    expect(calls.filter((c) => c.endsWith("manifests"))).toEqual(["stat manifests", "put manifests"]);
  });

  test("a cold blob: looked for once as a blob and once as a manifest before its download", async () => {
    const { calls, request, img } = await setup();
    const config = img.blobs[0]!;
    calls.length = 0;
    const res = await request(`/v2/app/blobs/${config.digest}`);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(config.bytes);
    const before = calls.slice(0, calls.indexOf("openWriter blobs"));
    expect(before).toEqual(["serve blobs", "read manifests"]);
  });

  test("a blob its manifest declares is looked for as a blob and as a manifest at once (one round trip)", async () => {
    const { store, request, img } = await setup();
    expect((await request("/v2/app/manifests/v1")).status).toBe(200);
    const config = img.blobs[0]!;
    const order: string[] = [];
    const statBlob = store.statBlob.bind(store);
    const readManifest = store.readManifest.bind(store);
    store.statBlob = async (d) => {
      order.push("stat");
      await Bun.sleep(20);
      order.push("stat answered");
      return statBlob(d);
    };
    store.readManifest = async (d) => (order.push("read"), readManifest(d));
    const res = await request(`/v2/app/blobs/${config.digest}`);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(config.bytes);
    // The look as a manifest went out before the look as a blob was answered.
    expect(order.slice(0, 3).sort()).toEqual(["read", "stat", "stat answered"].sort());
    expect(order.indexOf("read")).toBeLessThan(order.indexOf("stat answered"));
  });

  test("a blob whose download ended while a request looked is looked for again (not downloaded twice)", async () => {
    const { calls, store, request, img } = await setup();
    const layer = img.blobs[1]!;
    // B looks (absent) and is held there while A downloads the blob, commits it and ends.
    let release = () => {};
    let held = false;
    const readManifest = store.readManifest.bind(store);
    store.readManifest = async (d) => {
      const r = await readManifest(d);
      if (!held) {
        held = true;
        await new Promise<void>((ok) => (release = ok));
      }
      return r;
    };
    const b = request(`/v2/app/blobs/${layer.digest}`);
    while (!held) await Bun.sleep(1);
    const a = await request(`/v2/app/blobs/${layer.digest}`);
    expect(new Uint8Array(await a.arrayBuffer())).toEqual(layer.bytes);
    await Bun.sleep(50); // A's download commits and ends after its last byte is sent
    release();
    const rb = await b;
    expect(rb.status).toBe(200);
    expect(new Uint8Array(await rb.arrayBuffer())).toEqual(layer.bytes);
    expect(calls.filter((c) => c === "openWriter blobs")).toHaveLength(1);
  });

  test("a manifest created by a usage-counting store is counted once, however often it is written", async () => {
    const { driver } = counting(memoryDriver());
    const usage = createUsage(createLayoutStore(driver), { bounded: () => false });
    const img = makeImage({ content: "counted" });
    await usage.store.writeManifest(img.digest, img.manifest);
    await Promise.all([usage.store.writeManifest(img.digest, img.manifest), usage.store.writeManifest(img.digest, img.manifest)]);
    expect(usage.figures).toMatchObject({ manifests: 1, bytes: img.manifest.byteLength });
  });
});
