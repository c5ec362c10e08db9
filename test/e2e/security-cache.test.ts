// What one upstream's indexes can do to a pull (issue 18 items 3 and 8), against the compiled
// binary: an index with 20,000 children is refused by `load` with a clear error in bounded memory,
// a big one is pulled a few children at a time, a failing child is named; and an upstream E whose
// index names upstream L's manifest neither hides L's pulls by digest nor lets prune remove them.
// Hostile upstreams on 127.0.14.1 (E, the wide indexes) and 127.0.14.2 (L, honest).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { honest, startHostile, watchMemory, type Exchange, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { makeImage, type Image } from "../helpers/images.ts";
import { run, track } from "../helpers/procs.ts";
import { cacheFactory, get } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../../src/oci/mediatypes.ts";

const E = "127.0.14.1";
const L = "127.0.14.2";
const MB = 1024 * 1024;
const DAY = 24 * 3600_000;
let dir: string;
let e: HostileUpstream;
let l: HostileUpstream;
let caches: ReturnType<typeof cacheFactory>;
/** Caches started on an existing store, stopped in afterAll. */
const restarted: RunningCache[] = [];
let stores = 0;
const base = `registries:\n  - { name: ${E}, scheme: http }\n  - { name: ${L}, scheme: http }\n`;
const hex = (d: string) => d.slice("sha256:".length);
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const out = (r: { stdout: string; stderr: string }) => r.stdout + r.stderr;

/** The image whose config and layer every generated child shares (served by E as `shared:v1`). */
const shared = makeImage();
/** Child `i` of a generated index: a small image manifest of the shared config and layer. */
function child(i: number): Uint8Array {
  const [config, layer] = shared.blobs;
  return json({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: config!.mediaType, digest: config!.digest, size: config!.bytes.byteLength },
    layers: [{ mediaType: layer!.mediaType, digest: layer!.digest, size: layer!.bytes.byteLength }],
    annotations: { child: String(i) },
  });
}

/** An index of `n` generated children, every one linux/amd64, with its children by digest. */
function wideIndex(n: number) {
  const children = new Map<string, Uint8Array>();
  const manifests = Array.from({ length: n }, (_, i) => {
    const bytes = child(i);
    const digest = digestOf(bytes);
    children.set(digest, bytes);
    return { mediaType: OCI_MANIFEST, digest, size: bytes.byteLength, platform: { os: "linux", architecture: "amd64" } };
  });
  const bytes = json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
  return { bytes, digest: digestOf(bytes), children };
}

/**
 * Serves `index` as tag v1 and its children by digest, each child answer `delayMs` late, counting
 * child requests in flight; `fail` children answer 500. Blobs come from the honest store.
 */
function serveIndex(index: ReturnType<typeof wideIndex>, opts: { delayMs?: number; fail?: Set<string> } = {}) {
  const stats = { childRequests: 0, inFlight: 0, peak: 0 };
  const behaviour = async (x: Exchange): Promise<void> => {
    if (x.kind !== "manifests") return honest(x);
    const bytes = x.ref === "v1" ? index.bytes : index.children.get(x.ref);
    if (!bytes) return void x.res.writeHead(404, { "Content-Length": "0" }).end();
    if (x.ref !== "v1") {
      stats.childRequests++;
      stats.peak = Math.max(stats.peak, ++stats.inFlight);
      await Bun.sleep(opts.delayMs ?? 0);
      stats.inFlight--;
      if (opts.fail?.has(x.ref)) return void x.res.writeHead(500, { "Content-Length": "0" }).end();
    }
    const type = x.ref === "v1" ? OCI_INDEX : OCI_MANIFEST;
    x.res.writeHead(200, { "Content-Type": type, "Docker-Content-Digest": digestOf(bytes), "Content-Length": String(bytes.byteLength) });
    x.res.end(x.req.method === "HEAD" ? undefined : Buffer.from(bytes));
  };
  return { stats, behaviour };
}

/** Runs `load` on a list, watching its peak RSS (killed past 600 MB, which fails the test). */
async function load(store: string, config: string, refs: string[], args: string[] = []) {
  const list = join(dir, `list-${++stores}.txt`);
  writeFileSync(list, refs.join("\n") + "\n");
  const p = track(Bun.spawn([BINARY, "load", "--config-file", config, "--image-path", store, "--image-file", list, ...args], { stdout: "pipe", stderr: "pipe" }));
  const mem = watchMemory(p.pid, 600 * MB);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  mem.stop();
  return { stdout, stderr, code, peak: mem.peak() };
}

/** A config file and an empty store path, for `load` (caches.start makes its own for `serve`). */
function prepare(yaml: string) {
  stores++;
  const config = join(dir, `load-${stores}.yml`);
  writeFileSync(config, yaml);
  return { config, store: join(dir, `load-store-${stores}`) };
}

async function listed(store: string): Promise<Array<{ image: string; tag: string; digest: string }>> {
  return JSON.parse((await run([BINARY, "--image-path", store, "list", "--json"])).stdout);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-cache-"));
  caches = cacheFactory(dir);
  e = await startHostile({ host: E });
  l = await startHostile({ host: L });
  e.add("shared", "v1", shared);
});

afterAll(async () => {
  await caches?.stopAll();
  for (const c of restarted) await c.stop();
  await e?.stop();
  await l?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("load of an index with very many children (item 3)", () => {
  test("20,000 children: refused with the count and the limit, no child fetched, RSS < 150 MB; healthy images in the list load", async () => {
    const huge = serveIndex(wideIndex(20_000));
    e.behave("wide", huge.behaviour);
    const healthy = makeImage();
    const sibling = makeImage();
    l.add("app/healthy", "v1", healthy);
    e.add("fine/app", "v1", sibling);
    const { store, config } = prepare(base);
    const r = await load(store, config, [`${E}/wide/app:v1`, `${L}/app/healthy:v1`, `${E}/fine/app:v1`], ["--all-platforms"]);
    expect(r.code).toBe(1);
    expect(out(r)).toContain("loaded 2 of 3 images");
    expect(r.stderr).toMatch(new RegExp(`${E}/wide/app:v1: the index sha256:[0-9a-f]{64} lists 20000 manifests; a pull follows at most 1000`));
    expect(out(r)).not.toContain("busy");
    expect(huge.stats.childRequests).toBe(0);
    expect(r.peak).toBeLessThan(150 * MB);
    const images = await listed(store);
    expect(images.map((i) => `${i.image}:${i.tag}`)).toEqual(expect.arrayContaining([`${E}/fine/app:v1`, `${L}/app/healthy:v1`]));
    for (const b of healthy.blobs) expect(existsSync(join(store, "blobs/sha256", hex(b.digest)))).toBe(true);
  }, 60_000);

  test("900 slow children: loaded with at most 4 child requests in flight, RSS < 150 MB", async () => {
    const many = serveIndex(wideIndex(900), { delayMs: 5 });
    e.behave("many", many.behaviour);
    const { store, config } = prepare(base);
    const r = await load(store, config, [`${E}/many/app:v1`], ["--platform", "linux/amd64"]);
    expect({ code: r.code, out: out(r) }).toMatchObject({ code: 0 });
    expect(out(r)).toContain("(900 image manifest(s), 2 blobs");
    expect(many.stats.childRequests).toBe(900);
    expect(many.stats.peak).toBeGreaterThan(1);
    expect(many.stats.peak).toBeLessThanOrEqual(4);
    expect(r.peak).toBeLessThan(150 * MB);
  }, 60_000);

  test("a child that fails is named with its cause, not as 'busy'; the rest of the index is not fetched", async () => {
    const index = wideIndex(200);
    const bad = [...index.children.keys()][3]!;
    const broken = serveIndex(index, { delayMs: 5, fail: new Set([bad]) });
    e.behave("broken", broken.behaviour);
    const { store, config } = prepare(base);
    const r = await load(store, config, [`${E}/broken/app:v1`], ["--all-platforms"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${E}/broken/app:v1: platform manifest ${bad} (linux/amd64): upstream ${E} answered HTTP 500`);
    expect(out(r)).not.toContain("busy");
    expect(broken.stats.childRequests).toBeLessThan(20);
  }, 60_000);
});

describe("very many referrers, and a huge index through serve (item 3, variants)", () => {
  test("load --with-referrers of a subject with 20,000 referrers: refused with the count, none fetched, RSS < 150 MB", async () => {
    const subject = makeImage();
    e.add("refs/app", "v1", subject);
    const huge = wideIndex(20_000);
    let fetched = 0;
    e.behave("refs", (x) => {
      if (x.kind === "manifests" && x.ref !== "v1" && x.ref !== subject.digest) fetched++;
      if (x.kind !== "referrers") return honest(x);
      x.res.writeHead(200, { "Content-Type": OCI_INDEX, "Content-Length": String(huge.bytes.byteLength) });
      x.res.end(Buffer.from(huge.bytes));
    });
    const { store, config } = prepare(base);
    const r = await load(store, config, [`${E}/refs/app:v1`], ["--with-referrers"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${E}/refs/app:v1: ${subject.digest} has 20000 referrers; a pull follows at most 1000`);
    expect(fetched).toBe(0);
    expect(r.peak).toBeLessThan(150 * MB);
  }, 60_000);

  test("serve relays a 20,000-child index as it is, fetching no child, in bounded memory; L's pulls keep working", async () => {
    const huge = serveIndex(wideIndex(20_000));
    e.behave("relay", huge.behaviour);
    const img = makeImage();
    l.add("steady/app", "v1", img);
    const { cache } = await caches.start(base);
    const mem = watchMemory(cache.proc.pid, 600 * MB);
    const [got, steady] = await Promise.all([
      get(`${cache.url}/v2/relay/app/manifests/v1?ns=${E}`),
      get(`${cache.url}/v2/steady/app/manifests/v1?ns=${L}`),
    ]);
    mem.stop();
    expect(got.status).toBe(200);
    expect(got.body?.byteLength).toBeGreaterThan(3 * MB);
    expect(steady.body).toEqual(img.manifest);
    expect(huge.stats.childRequests).toBe(0);
    expect(mem.peak()).toBeLessThan(150 * MB);
  }, 60_000);
});

describe("another upstream's index naming L's manifest (item 8)", () => {
  test("L's pull by digest is recorded for L, listed, kept by prune after E's record ages, and served with L down", async () => {
    const img = makeImage();
    l.add("app", "v1", img);
    // E's index names L's manifest, and E serves a byte-identical copy of it by digest.
    const evilIndex = json({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ mediaType: img.mediaType, digest: img.digest, size: img.manifest.byteLength, platform: { os: "linux", architecture: "amd64" } }],
    });
    const evil: Image = { mediaType: OCI_INDEX, manifest: evilIndex, digest: digestOf(evilIndex), blobs: [], children: [img] };
    e.add("app", "evil", evil);
    const { cache, store, config } = await caches.start(base);
    const at = (ns: string, path: string) => `${cache.url}/v2/app/${path}?ns=${ns}`;
    expect((await get(at(E, "manifests/evil"))).status).toBe(200);
    expect((await get(at(E, `manifests/${img.digest}`))).status).toBe(200);
    // L's clients pull the image by digest, as Kubernetes does for a pinned image.
    const byL = await get(at(L, `manifests/${img.digest}`));
    expect(byL.status).toBe(200);
    expect(byL.body).toEqual(img.manifest);
    for (const b of img.blobs) expect((await get(at(L, `blobs/${b.digest}`))).body).toEqual(b.bytes);
    await cache.stop();

    expect((await listed(store)).map((i) => `${i.image} ${i.tag} ${i.digest}`).sort()).toEqual([
      `${E}/app evil ${evil.digest}`, `${L}/app <none> ${img.digest}`,
    ]);
    // E's record ages; L's stays fresh.
    const evilRecord = join(store, "repositories", E, "app/_tags/evil.json");
    const rec = JSON.parse(readFileSync(evilRecord, "utf8"));
    const old = new Date(Date.now() - 3 * DAY).toISOString();
    writeFileSync(evilRecord, JSON.stringify({ ...rec, created: old, lastPulled: old, checked: old }));
    const pruned = await run([BINARY, "--config-file", config, "--image-path", store, "prune", "--older-than", "1d"]);
    expect(pruned.stdout).toContain(`removed ${E}/app:evil`);
    expect(pruned.stdout).not.toContain(`${L}/app`);
    expect(existsSync(join(store, "manifests/sha256", hex(img.digest)))).toBe(true);
    expect(existsSync(join(store, "manifests/sha256", hex(evil.digest)))).toBe(false);
    for (const b of img.blobs) expect(existsSync(join(store, "blobs/sha256", hex(b.digest)))).toBe(true);

    // With L down, L's clients still pull it from the store.
    await l.stop();
    const again = await startCache(["--config-file", config, "--image-path", store]);
    restarted.push(again);
    const got = await get(`${again.url}/v2/app/manifests/${img.digest}?ns=${L}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(img.manifest);
    for (const b of img.blobs) expect((await get(`${again.url}/v2/app/blobs/${b.digest}?ns=${L}`)).body).toEqual(b.bytes);
  }, 60_000);
});
