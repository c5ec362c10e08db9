// What the status page reads (issue 21 items 4-6): pages of the image listing from the in-memory
// tag index (search, a cursor that survives inserts, bounded limit), the traffic history's ring,
// GET /api/v1/jobs, and the process metrics and build info a scrape shows.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeStore, tagOf } from "../../scripts/bench/make-store.ts";
import { listImages, listImagesPage } from "../../src/cache/list.ts";
import { createTagIndex } from "../../src/cache/tag-index.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
import type { TagRecord } from "../../src/store/types.ts";
import { createAdmin } from "../../src/server/admin.ts";
import { createHistory, SAMPLES } from "../../src/server/history.ts";
import { createMetrics } from "../../src/server/metrics.ts";

const TOKEN = "unit-admin-token-status-api-0123";
const UP = "127.0.4.9";

function record(repository: string, tag: string, digest = `sha256:${"a".repeat(64)}`): TagRecord {
  const t = new Date(0).toISOString();
  return { upstream: UP, repository, tag, digest, mediaType: "application/vnd.oci.image.manifest.v1+json", size: 1, created: t, lastPulled: t, checked: t };
}

describe("pages of the image listing", () => {
  const dir = mkdtempSync(join(tmpdir(), "ocireg-status-api-"));
  const made = makeStore(250, dir, UP);
  const names = Array.from({ length: made.tags }, (_, i) => { const t = tagOf(i); return `${UP}/${t.repository}:${t.tag}`; }).sort();

  test("walk the whole store in name order, with the sizes the full listing gives, reading only each page's records", async () => {
    const store = createFsStore(dir);
    const index = createTagIndex(store);
    const full = new Map((await listImages(store)).map((i) => [`${i.image}:${i.tag}`, i]));
    let reads = 0;
    const counted = Object.assign(Object.create(index.store), { readTag: (...a: Parameters<typeof store.readTag>) => (reads++, store.readTag(...a)) });
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await listImagesPage(counted, index, { limit: 100, cursor });
      expect(page.total).toBe(250);
      expect(page.images.length).toBeLessThanOrEqual(100);
      for (const i of page.images) expect(i).toEqual(full.get(`${i.image}:${i.tag}`)!);
      seen.push(...page.images.map((i) => `${i.image}:${i.tag}`));
      if (!page.next) break;
      cursor = page.next;
    }
    expect(seen).toEqual(names);
    expect(reads).toBe(250);
  });

  test("search matches any part of upstream/repository:tag in any case and pages through the matches", async () => {
    const index = createTagIndex(createFsStore(dir));
    const store = index.store;
    const first = await listImagesPage(store, index, { limit: 40, q: "R00001:T000" });
    const want = names.filter((n) => n.includes("r00001:t000"));
    expect(want).toHaveLength(100);
    expect(first.total).toBe(100);
    expect(first.images.map((i) => `${i.image}:${i.tag}`)).toEqual(want.slice(0, 40));
    const rest = await listImagesPage(store, index, { limit: 100, q: "r00001:t000", cursor: first.next! });
    expect(rest.images.map((i) => `${i.image}:${i.tag}`)).toEqual(want.slice(40));
    expect(rest.next).toBeNull();
    expect((await listImagesPage(store, index, { limit: 10, q: "no-such-thing" })).images).toEqual([]);
  });

  test("a cursor survives inserts and removals made through the index's store, without a new listing", async () => {
    const mem = createMemoryStore();
    let listings = 0;
    const inner = Object.assign(Object.create(mem), { tagPlaces: () => (listings++, mem.tagPlaces()) });
    const index = createTagIndex(inner);
    for (const t of ["b", "d", "f"]) await index.store.writeTag(record("app", t));
    const one = await index.page({ limit: 2 });
    expect(one.places.map((p) => p.tag)).toEqual(["b", "d"]);
    expect(one.next).toBe(`${UP}/app:d`);
    await index.store.writeTag(record("app", "a"));
    await index.store.writeTag(record("app", "e"));
    await index.store.removeTag(UP, "app", "f");
    const two = await index.page({ limit: 2, cursor: one.next! });
    expect(two.places.map((p) => p.tag)).toEqual(["e"]);
    expect([two.next, two.total]).toEqual([null, 4]);
    expect(listings).toBe(1);
  });

  test("holds no names until the first page is asked for: the cache's record writes are not kept", async () => {
    const index = createTagIndex(createMemoryStore());
    for (let i = 0; i < 300; i++) await index.store.writeTag(record("app", `v${i}`));
    await index.store.updateTag({ upstream: UP, repository: "app", tag: "v0" }, (r) => r);
    expect(index.held()).toBe(0);
    expect((await index.page({ limit: 10 })).total).toBe(300);
    expect(index.held()).toBe(300);
    await index.store.writeTag(record("app", "new"));
    expect([index.held(), (await index.page({ limit: 10 })).total]).toEqual([301, 301]);
  });

  test("what another process wrote shows once the index is a minute old (rebuilt in the background)", async () => {
    const mem = createMemoryStore();
    let t = 0;
    const index = createTagIndex(mem, { now: () => t });
    await mem.writeTag(record("app", "v1"));
    expect((await index.page({ limit: 10 })).total).toBe(1);
    await mem.writeTag(record("app", "v2")); // not through the index: another process
    expect((await index.page({ limit: 10 })).total).toBe(1);
    t = 61_000;
    await index.page({ limit: 10 }); // stale: answers, and rebuilds
    await Bun.sleep(10);
    expect((await index.page({ limit: 10 })).total).toBe(2);
  });

  test("GET /api/v1/images: limit bounded, no parameters keep the full list", async () => {
    const store = createFsStore(dir);
    const index = createTagIndex(store);
    const admin = createAdmin({ token: TOKEN, cache: {} as never, store: index.store, tags: index, status: () => ({}) });
    const get = async (q: string) => {
      const res = await admin.handle(new Request(`http://cache.test/api/v1/images${q}`, { headers: { Authorization: `Bearer ${TOKEN}` } }), "images");
      return { status: res.status, body: (await res.json()) as { images: unknown[]; next: string | null; error?: string } & unknown[] };
    };
    const all = await get("");
    expect([all.status, Array.isArray(all.body), all.body.length]).toEqual([200, true, 250]);
    const page = await get("?limit=5");
    expect([page.status, page.body.images.length, page.body.next]).toEqual([200, 5, names[4]!]);
    expect((await get("?q=r00002")).body.images).toHaveLength(50);
    expect((await get("?cursor=" + encodeURIComponent(names[248]!))).body).toMatchObject({ next: null, images: [expect.objectContaining({ tag: "t00049" })] });
    for (const bad of ["0", "1001", "-1", "ten", "1e3"]) expect((await get(`?limit=${bad}`)).status).toBe(400);
    expect((await get(`?q=${"x".repeat(1025)}`)).status).toBe(400);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("GET /api/v1/jobs", () => {
  test("lists the load jobs newest first, without their per-image lists", async () => {
    const cache = { pullImage: () => new Promise(() => {}), flush: async () => {} };
    const admin = createAdmin({ token: TOKEN, cache: cache as never, store: {} as never, status: () => ({}) });
    const call = (method: string, path: string, body?: unknown) =>
      admin.handle(new Request(`http://cache.test/api/v1/${path}`, { method, headers: { Authorization: `Bearer ${TOKEN}` }, body: body === undefined ? undefined : JSON.stringify(body) }), path);
    expect(await (await call("GET", "jobs")).json()).toEqual({ jobs: [] });
    expect((await call("POST", "load", { images: ["127.0.4.9/a:1"] })).status).toBe(202);
    expect((await call("POST", "load", { images: ["127.0.4.9/b:1", "127.0.4.9/c:1"] })).status).toBe(202);
    const { jobs } = (await (await call("GET", "jobs")).json()) as { jobs: Array<Record<string, unknown>> };
    expect(jobs.map((j) => [j.id, j.state, (j.progress as { total: number }).total])).toEqual([["2", "running", 2], ["1", "running", 1]]);
    expect(Object.keys(jobs[0]!).sort()).toEqual(["id", "progress", "started", "state"]);
    expect((await admin.handle(new Request("http://cache.test/api/v1/jobs"), "jobs")).status).toBe(401);
  });
});

describe("the traffic history", () => {
  test("keeps the last hour of 10 s samples as differences, plus the running interval", () => {
    const counts = { requests: 0, hits: 0, misses: 0, servedBytes: 0, serverErrors: 0 };
    const h = createHistory(counts, () => 0);
    expect(h.view()).toMatchObject({ stepSeconds: 10, requests: [0], bytes: [0] });
    counts.requests += 5;
    counts.servedBytes += 1000;
    h.take();
    counts.requests += 2;
    counts.serverErrors++;
    expect(h.view()).toMatchObject({ requests: [5, 2], bytes: [1000, 0], errors: [0, 1] });
    for (let i = 0; i < SAMPLES + 20; i++) {
      counts.requests += i;
      h.take();
    }
    const v = h.view();
    expect(v.requests).toHaveLength(SAMPLES + 1);
    expect(v.requests.at(-2)).toBe(SAMPLES + 19);
    expect(v.requests.at(-1)).toBe(0);
  });
});

describe("process metrics", () => {
  test("a scrape shows the build, CPU, memory, file descriptors and start time", async () => {
    const text = await createMetrics([]).registry.metrics();
    expect(text).toContain(`ociregistry_build_info{version="`);
    expect(text).toContain(`runtime="${Bun.version}"} 1`);
    const value = (name: string) => Number(text.split("\n").find((l) => l.startsWith(`${name} `))?.split(" ")[1]);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10_000_000);
    expect(value("process_open_fds")).toBeGreaterThan(2);
    expect(value("process_max_fds")).toBeGreaterThan(value("process_open_fds"));
    expect(Math.abs(value("process_start_time_seconds") - Date.now() / 1000)).toBeLessThan(3600);
    expect(text).toContain("# TYPE process_cpu_seconds_total counter");
  });
});
