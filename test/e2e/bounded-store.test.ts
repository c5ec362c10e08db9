// The size-bounded directory store (issue 20) through the compiled binary, a real distribution
// upstream and real clients: maxSize held under rotating concurrent pulls with a pinned image,
// a slow reader while its layer is evicted, pass-through on a full filesystem, accounting across
// kill -9 and restarts, and pins through the admin API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import {
  MiB, ctrPullCold, fillFilesystem, holds, inBatches, listStore, metric, mountTmpfs, pushFixture, sampleStoreBytes, scrape,
  settledBytes, slowSha256, storeBytes, storedDigests, verify, type Fixture,
} from "../helpers/bounded.ts";
import { skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { largestTempFile } from "../helpers/store-files.ts";

const UP = "127.0.20.1";
const PROXY = "127.0.20.2";
const TOKEN = "bounded-store-admin-token-0123456789";
const MAX = 128 * MiB;
/** A little over how long the cache trusts a statfs reading of the free space. */
const STATFS_TTL_MS = 1200;
const EVICTION_LINE = /evicted (\d+) image\(s\), (\d+) bytes in (\d+) ms \(reason: maxSize; store (\d+) of (\d+) bytes\)/;

let dir: string;
let up: Distribution;
let proxy: FaultProxy;
let ctr: Containerd;
const unmounts: Array<() => Promise<void>> = [];
const caches: RunningCache[] = [];
/** img-0 .. img-29, ~16 MiB each. */
const imgs: Fixture[] = [];
let pinned: Fixture;
let big: Fixture;
const smalls: Fixture[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-bounded-"));
  up = await startDistribution({ addr: `${UP}:80` });
  proxy = await startFaultProxy({ hostname: PROXY, port: 80, target: up.base });
  ctr = await startContainerd();
  pinned = await pushFixture(up.base, "bounded/pinned", 16 * MiB - 2048);
  big = await pushFixture(up.base, "bounded/big", 48 * MiB);
  for (let i = 0; i < 6; i++) smalls.push(await pushFixture(up.base, `bounded/small-${i}`, MiB));
  await inBatches(3, Array.from({ length: 30 }, (_, i) => async () => {
    imgs[i] = await pushFixture(up.base, `bounded/img-${i}`, 16 * MiB - 2048);
  }));
}, 120_000);

afterAll(async () => {
  for (const c of caches) await c.stop("SIGKILL");
  await ctr?.stop();
  await proxy?.stop();
  await up?.stop();
  for (const u of unmounts) await u();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** A tmpfs of `size` with a store in it and a cache serving that store with `yaml` added to its config. */
async function boundedCache(name: string, size: string, yaml: string, upstream = UP) {
  const mount = join(dir, name);
  unmounts.push(await mountTmpfs(mount, size));
  const config = join(dir, `${name}.yml`);
  writeFileSync(config, `registries:\n  - name: ${upstream}\n    scheme: http\nadmin:\n  token: ${TOKEN}\n${yaml}`);
  const store = join(mount, "store");
  const args = ["--config-file", config, "--image-path", store, "--revalidate-after", "1h"];
  const start = async () => {
    const c = await startCache(args);
    caches.push(c);
    return c;
  };
  return { mount, store, config, cache: await start(), start };
}

const ref = (f: Fixture, upstream = UP) => `${upstream}/${f.repo}:${f.tag}`;

async function skopeoPull(cache: RunningCache, f: Fixture, upstream = UP) {
  const r = await skopeoCopy(`127.0.0.1:${cache.port}/${ref(f, upstream)}`);
  r.cleanup();
  expect(r.digest).toBe(f.digest);
}

describe("maxSize under rotating concurrent pulls", () => {
  test("skopeo and ctr pull 30 images of 16 MiB, 3 at a time, 3 rounds: the store never passes 128 MiB, the newest and the pinned stay", async () => {
    const { store, cache, config } = await boundedCache("rotate", "256m", `maxSize: 128MiB\npinned:\n  - "${UP}/bounded/pinned:*"\n`);
    const sampler = sampleStoreBytes(store, 100);
    await skopeoPull(cache, pinned);
    let pinnedMissing = 0;
    const watch = setInterval(() => void (existsSync(join(store, "blobs/sha256", pinned.layer.slice(7))) || pinnedMissing++), 100);
    const failures: string[] = [];
    const order: Fixture[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        const rotated = [...imgs.slice(round * 11 % 30), ...imgs.slice(0, round * 11 % 30)];
        order.push(...rotated);
        await inBatches(3, rotated.map((f, i) => async () => {
          try {
            if ((i + round) % 2) await skopeoPull(cache, f);
            else expect(await ctrPullCold(ctr, ref(f), UP, cache.url)).toBe(f.digest);
          } catch (err) {
            failures.push(`round ${round} ${f.repo}: ${err}`);
          }
        }));
        expect({ round, pinnedHeld: holds(store, pinned) }).toEqual({ round, pinnedHeld: true });
      }
    } finally {
      clearInterval(watch);
    }
    const sampled = sampler.stop();
    expect(failures).toEqual([]);
    expect(sampled.samples).toBeGreaterThan(50);
    expect(sampled.max).toBeLessThanOrEqual(MAX);
    expect(pinnedMissing).toBe(0);

    const real = await settledBytes(cache.url, store);
    expect(real).toBeLessThanOrEqual(MAX);
    // list reads the pinned patterns from the same config serve uses.
    const rows = await listStore(store, ["--config-file", config]);
    const kept = new Set(rows.map((r) => r.image.slice(UP.length + 1)));
    // No image is recorded without its layers (a layer refused at commit would leave one).
    const v = await verify(store);
    expect(v.out).not.toContain("incomplete image");
    expect(v.code).toBe(0);
    const lastBatch = order.slice(-3);
    const recent = new Set(order.slice(-8).map((f) => f.repo));
    // The final batch is stored completely; nothing older than the last 8 pulls survived, but the pinned image.
    for (const f of lastBatch) expect({ repo: f.repo, kept: kept.has(f.repo), complete: holds(store, f) }).toEqual({ repo: f.repo, kept: true, complete: true });
    expect([...kept].filter((r) => r !== pinned.repo && !recent.has(r))).toEqual([]);
    expect(rows.find((r) => r.image === `${UP}/${pinned.repo}`)?.pinned).toBe(true);

    const m = await scrape(cache.url);
    expect(metric(m, 'ociregistry_evictions_total{reason="max-size"}')).toBeGreaterThan(0);
    expect(metric(m, "ociregistry_evicted_bytes_total")).toBeGreaterThan(0);
    expect(metric(m, "ociregistry_store_max_bytes")).toBe(MAX);
    expect(metric(m, "ociregistry_store_full")).toBe(0);
    const log = await cache.settledOutput();
    console.log(`rotate: max ${sampled.max} of ${MAX} bytes in ${sampled.samples} samples; kept ${[...kept].join(" ")}; ` +
      `${log.match(new RegExp(EVICTION_LINE, "g"))?.length} eviction runs; ${log.match(/store full/g)?.length ?? 0} pass-through warnings`);
    const line = log.match(EVICTION_LINE);
    expect(line).not.toBeNull();
    expect(Number(line![5])).toBe(MAX);
    expect(Number(line![4])).toBeLessThanOrEqual(MAX);
    await cache.stop();
  }, 180_000);
});

describe("serving while evicting", () => {
  test("a client reading a 48 MiB layer slowly gets every byte while pulls evict its image", async () => {
    // 100 MiB: the 48 MiB layer is under half of it (a larger blob would pass through, never stored).
    const { store, cache } = await boundedCache("slow", "192m", "maxSize: 100MiB\n");
    await skopeoPull(cache, big);
    expect(holds(store, big)).toBe(true);
    const res = await fetch(`${cache.url}/v2/${UP}/${big.repo}/blobs/${big.layer}`);
    expect(res.status).toBe(200);
    let readSoFar = 0;
    const reading = slowSha256(res, 80, (n) => (readSoFar = n));
    await waitFor("the slow reader to be under way", async () => readSoFar > 4 * MiB);
    const layerFile = join(store, "blobs/sha256", big.layer.slice(7));
    // Four 16 MiB images do not fit beside the 48 MiB one, and the big image is the least recently pulled.
    for (const f of imgs.slice(0, 4)) await skopeoPull(cache, f);
    const goneDuringRead = !existsSync(layerFile);
    const readWhileEvicting = readSoFar;
    const got = await reading;
    expect(readWhileEvicting).toBeLessThan(big.layerSize);
    expect(got).toEqual({ digest: big.layer, bytes: big.layerSize });
    // Whether it went during the read or only after it, eviction did want that layer.
    await skopeoPull(cache, imgs[4]!);
    await waitFor("the big layer to be evicted", async () => !existsSync(layerFile), 5000);
    console.log(`slow reader: layer file removed ${goneDuringRead ? "during" : "after"} the read (${readWhileEvicting} bytes read by then)`);
    expect(storeBytes(store)).toBeLessThanOrEqual(100 * MiB);
    expect((await verify(store)).code).toBe(0);
    await settledBytes(cache.url, store);
    await cache.stop();
  }, 60_000);
});

describe("minFreeSpace", () => {
  /** A cache whose 64 MiB tmpfs another file fills to 4 MiB free (minFreeSpace 8 MiB), once the cache has read statfs again. */
  async function filledCache(name: string) {
    const t = await boundedCache(name, "64m", "minFreeSpace: 8MiB\n");
    const filler = join(t.mount, "filler");
    fillFilesystem(filler, 4 * MiB);
    // The cache reads the free space (statfs) at most once a second: the next download reads it again.
    await Bun.sleep(STATFS_TTL_MS);
    return { ...t, filler };
  }

  test("a filesystem filled by another file: pulls pass through unstored, and storing resumes when the space returns", async () => {
    const { store, cache, filler } = await filledCache("full");
    const blobsBefore = storedDigests(store, "blobs");
    const manifestsBefore = storedDigests(store, "manifests");
    await skopeoPull(cache, smalls[0]!);
    expect(await ctrPullCold(ctr, ref(smalls[1]!), UP, cache.url)).toBe(smalls[1]!.digest);
    const direct = await fetch(`${cache.url}/v2/${UP}/${smalls[2]!.repo}/blobs/${smalls[2]!.layer}`);
    expect(direct.status).toBe(200);
    expect((await slowSha256(direct, 0)).digest).toBe(smalls[2]!.layer);
    expect(storedDigests(store, "blobs")).toEqual(blobsBefore);
    expect(storedDigests(store, "manifests")).toEqual(manifestsBefore);
    expect(metric(await scrape(cache.url), "ociregistry_store_full")).toBe(1);
    const status = await (await fetch(`${cache.url}/api/v1/status`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json() as { store: unknown };
    expect(status.store).toMatchObject({ full: true, minFreeBytes: 8 * MiB });
    expect(metric(await scrape(cache.url), "ociregistry_store_free_bytes")).toBeLessThan(8 * MiB);
    // One warning, however many pulls passed through within the minute.
    expect((await cache.settledOutput()).match(/store full: .*pass-through/g)?.length).toBe(1);

    rmSync(filler);
    // Storing resumes (the next test asks for the very next pull); every pull meanwhile succeeds.
    const until = Date.now() + 10_000;
    while (!holds(store, smalls[3]!) && Date.now() < until) {
      await skopeoPull(cache, smalls[3]!);
      if (!holds(store, smalls[3]!)) await Bun.sleep(500);
    }
    expect(holds(store, smalls[3]!)).toBe(true);
    await skopeoPull(cache, smalls[0]!);
    expect(holds(store, smalls[0]!)).toBe(true);
    expect(metric(await scrape(cache.url), "ociregistry_store_full")).toBe(0);
    const v = await verify(store);
    expect(v.out).not.toContain("incomplete image");
    expect(v.code).toBe(0);
    await settledBytes(cache.url, store);
    await cache.stop();
  }, 60_000);

  // Once failed: a short eviction run left `full` set for 5 s, passing everything through whatever statfs said.
  test("the first pull after the space returns is stored", async () => {
    const { store, cache, filler } = await filledCache("resume");
    await skopeoPull(cache, smalls[4]!);
    expect(holds(store, smalls[4]!)).toBe(false);
    rmSync(filler);
    await Bun.sleep(STATFS_TTL_MS);
    await skopeoPull(cache, smalls[5]!);
    expect({ stored: holds(store, smalls[5]!), full: metric(await scrape(cache.url), "ociregistry_store_full") }).toEqual({ stored: true, full: 0 });
    await cache.stop();
  }, 30_000);
});

describe("accounting", () => {
  test("kill -9 in the middle of a download, then a SIGTERM restart: ociregistry_store_bytes stays the bytes on disk", async () => {
    const t = await boundedCache("account", "192m", "maxSize: 80%\n", PROXY);
    const { store, mount } = t;
    const fs = statfsSync(mount);
    const expectedMax = 0.8 * Number(fs.blocks) * Number(fs.bsize);
    let cache = t.cache;
    expect(Math.abs(metric(await scrape(cache.url), "ociregistry_store_max_bytes")! - expectedMax)).toBeLessThan(4096);
    await skopeoPull(cache, smalls[0]!, PROXY);
    await skopeoPull(cache, smalls[1]!, PROXY);
    await settledBytes(cache.url, store);

    proxy.faults = { throttle: 8 * MiB };
    const download = fetch(`${cache.url}/v2/${PROXY}/${big.repo}/blobs/${big.layer}`).then((r) => r.arrayBuffer()).catch((e) => e);
    const more = skopeoPull(cache, smalls[2]!, PROXY).catch((e) => e);
    await waitFor("part of the big layer to be downloaded", async () => largestTempFile(store) > 8 * MiB, 20_000);
    await cache.stop("SIGKILL");
    await Promise.all([download, more]);
    proxy.faults = {};

    cache = await t.start();
    const afterKill = await settledBytes(cache.url, store, 10_000);
    await skopeoPull(cache, big, PROXY);
    await skopeoPull(cache, smalls[3]!, PROXY);
    expect(await settledBytes(cache.url, store)).toBe(afterKill + big.size + smalls[3]!.size);
    await cache.stop("SIGTERM");
    expect(cache.proc.exitCode).toBe(0);

    cache = await t.start();
    // A clean stop leaves the recorded size exact: no reconcile needed to get it right at once.
    expect(metric(await scrape(cache.url), "ociregistry_store_bytes")).toBe(storeBytes(store));
    await cache.stop();
    const v = await verify(store);
    expect(v.code).toBe(0);
    expect(v.out).not.toContain("size drift");
    expect(v.out).toContain(`store size: ${storeBytes(store)} bytes`);
    expect(v.out).toContain("as recorded");
  }, 90_000);
});

describe("pins through the admin API", () => {
  test("PUT pins an image so eviction keeps it, DELETE unpins it, list shows PINNED", async () => {
    const { store, cache } = await boundedCache("pins", "128m", "maxSize: 40MiB\n");
    const [a, ...rest] = imgs.slice(10, 16) as [Fixture, ...Fixture[]];
    const pin = (method: string, f: Fixture, token = TOKEN) =>
      fetch(`${cache.url}/api/v1/pins/${ref(f)}`, { method, headers: { Authorization: `Bearer ${token}` } });
    await skopeoPull(cache, a);
    expect((await pin("PUT", a, "wrong-token-wrong-token")).status).toBe(401);
    expect((await pin("PUT", rest[4]!)).status).toBe(404);
    expect((await pin("PUT", a)).status).toBeLessThan(300);
    const record = JSON.parse(readFileSync(join(store, "repositories", UP, a.repo, "_tags", `${a.tag}.json`), "utf8"));
    expect(record.pinned).toBe(true);
    const table = (await run([BINARY, "list", "--image-path", store])).stdout;
    expect(table.split("\n")[0]).toContain("PINNED");
    expect(table.split("\n").find((l) => l.includes(a.repo))).toMatch(/\byes\b/);

    // Three more 16 MiB images: only two fit in 40 MiB, and the pinned one is one of them.
    for (const f of rest.slice(0, 3)) await skopeoPull(cache, f);
    expect(holds(store, a)).toBe(true);
    expect((await listStore(store)).find((r) => r.image === `${UP}/${a.repo}`)?.pinned).toBe(true);

    expect((await pin("DELETE", a)).status).toBeLessThan(300);
    expect((await listStore(store)).find((r) => r.image === `${UP}/${a.repo}`)?.pinned).toBe(false);
    await skopeoPull(cache, rest[3]!);
    await waitFor("the unpinned image to be evicted", async () => !holds(store, a), 5000);
    expect((await listStore(store)).some((r) => r.image === `${UP}/${a.repo}`)).toBe(false);
    expect((await pin("PUT", a)).status).toBe(404);
    expect(storeBytes(store)).toBeLessThanOrEqual(40 * MiB);
    expect((await verify(store)).code).toBe(0);
    await cache.stop();
  }, 60_000);
});
