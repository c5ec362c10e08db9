// Rollouts that drop nothing: SIGTERM during 20 concurrent skopeo pulls through a throttled real
// upstream. The cache keeps serving for shutdownDelay with /readyz 503 on the main and health
// ports; every pull completes, new requests during the delay succeed. Then it stops accepting
// connections and a download still running (one long blob response) completes in the drain; it
// exits 0 and leaves its records and size snapshot. A second SIGTERM exits at once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { waitFor } from "../helpers/procs.ts";

const UPSTREAM = "127.0.25.1";
const PROXY = "127.0.25.2";
const PULLS = 20;
const LAYER = 256 * 1024;
/** 20 images, and one more pulled during the delay. */
const images: Image[] = Array.from({ length: PULLS + 1 }, () => makeImage({ content: LAYER, uncompressed: true }));
/** One blob long enough to still be streaming when the delay ends. */
const big = makeImage({ content: 1536 * 1024, uncompressed: true });
const bigLayer = big.blobs[1]!;
let up: Distribution;
let proxy: FaultProxy;
let dir: string;
let config: string;
const caches: RunningCache[] = [];

beforeAll(async () => {
  up = await startDistribution({ addr: `${UPSTREAM}:80` });
  for (const [i, img] of images.entries()) await pushImage({ base: up.base }, `app${i}`, "v1", img);
  await pushImage({ base: up.base }, "big", "v1", big);
  proxy = await startFaultProxy({ hostname: PROXY, port: 80, target: up.base });
  dir = mkdtempSync(join(tmpdir(), "ocireg-rollout-"));
  config = join(dir, "config.yml");
  writeFileSync(config, `registries:\n  - name: ${PROXY}\n    scheme: http\nhealth: 0\n`);
}, 120_000);

afterAll(async () => {
  for (const c of caches) await c.stop("SIGKILL");
  await proxy?.stop();
  await up?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function cacheWith(delay: string) {
  const store = mkdtempSync(join(dir, "store-"));
  const cache = await startCache(["--config-file", config, "--image-path", store, "--shutdown-delay", delay]);
  caches.push(cache);
  const health = Number(cache.output().match(/also on port (\d+)/)?.[1]);
  expect(health).toBeGreaterThan(0);
  return { cache, store, health };
}

async function sha256Of(res: Response) {
  const h = new Bun.CryptoHasher("sha256");
  for await (const c of res.body!) h.update(c);
  return `sha256:${h.digest("hex")}`;
}

const status = (url: string) => fetch(url).then(async (r) => ({ status: r.status, body: await r.text() }));

describe("SIGTERM", () => {
  test("20 pulls in flight all complete; during the delay /readyz is 503 on both ports, /healthz 200, new pulls succeed; a download running at its end completes; exit 0", async () => {
    const { cache, store, health } = await cacheWith("4s");
    // 256 KiB at 128 KiB/s: each layer takes about 2 s; the big blob about 12 s, past the delay.
    proxy.faults = { throttle: 128 * 1024 };
    const bigDownload = fetch(`${cache.url}/v2/${PROXY}/big/blobs/${bigLayer.digest}`).then(sha256Of, (e: Error) => e.message);
    const t0 = Date.now();
    const pulls = images.slice(0, PULLS).map((img, i) => skopeoCopy(`127.0.0.1:${cache.port}/${PROXY}/app${i}:v1`).then((r) => {
      r.cleanup();
      return r.digest === img.digest ? "ok" : `app${i}: digest ${r.digest}`;
    }, (e: Error) => `app${i}: ${e.message}`));
    const layerGets = () => proxy.log.filter((l) => /^GET \/v2\/app\d+\/blobs\//.test(l)).length;
    // Every pull has asked for its blobs: all 20 are in flight.
    await waitFor("20 pulls downloading", async () => layerGets() >= PULLS, 30_000);
    expect(await status(`${cache.url}/readyz`)).toEqual({ status: 200, body: "ready\n" });

    cache.proc.kill("SIGTERM");
    const signalled = Date.now();
    await waitFor("readiness to turn 503", async () => (await status(`${cache.url}/readyz`)).status === 503, 2000);
    expect((await status(`http://127.0.0.1:${health}/readyz`)).status).toBe(503);
    expect(await status(`${cache.url}/healthz`)).toEqual({ status: 200, body: "ok\n" });
    expect(await status(`http://127.0.0.1:${health}/healthz`)).toEqual({ status: 200, body: "ok\n" });
    // A client the load balancer still sends during the delay is served, cold pull included.
    expect((await fetch(`${cache.url}/v2/`)).status).toBe(200);
    const late = skopeoCopy(`127.0.0.1:${cache.port}/${PROXY}/app${PULLS}:v1`);
    expect(Date.now() - signalled).toBeLessThan(2000);
    expect(await Promise.all(pulls)).toEqual(Array(PULLS).fill("ok"));
    expect((await late).digest).toBe(images[PULLS]!.digest);
    // After the delay the port takes no new connection, while the big blob is still streaming.
    await waitFor("the port to close", () => fetch(`${cache.url}/v2/`).then(() => false, () => true), 6000);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(4000);
    expect(cache.proc.exitCode).toBeNull();
    expect(await bigDownload).toBe(bigLayer.digest);

    expect(await cache.proc.exited).toBe(0);
    const log = await cache.settledOutput();
    expect(log).toContain("shutting down: /readyz answers 503, serving 4 s more");
    expect(log).toContain("stopped");
    // Records and the size snapshot were written before the exit.
    const snapshot = JSON.parse(readFileSync(join(store, "state", "usage.json"), "utf8")) as { bytes: number };
    expect(snapshot.bytes).toBeGreaterThanOrEqual((PULLS + 1) * LAYER);
    for (let i = 0; i <= PULLS; i++) expect(existsSync(join(store, "repositories", PROXY, `app${i}`, "_tags", "v1.json"))).toBe(true);
    expect(Date.now() - t0).toBeLessThan(60_000);
  }, 90_000);

  test("a second SIGTERM exits at once, whatever is in flight", async () => {
    const { cache } = await cacheWith("30s");
    proxy.faults = { throttle: 16 * 1024 };
    const pull = skopeoCopy(`127.0.0.1:${cache.port}/${PROXY}/app0:v1`).catch((e: Error) => e);
    await waitFor("the pull to download", async () => proxy.log.some((l) => l.startsWith("GET /v2/app0/blobs/")), 15_000);
    cache.proc.kill("SIGTERM");
    await waitFor("readiness to turn 503", async () => (await status(`${cache.url}/readyz`)).status === 503, 2000);
    const t = Date.now();
    cache.proc.kill("SIGTERM");
    expect(await cache.proc.exited).toBe(1);
    expect(Date.now() - t).toBeLessThan(1000);
    expect(await cache.settledOutput()).toContain("SIGTERM again: exiting at once");
    expect(await pull).toBeInstanceOf(Error);
    proxy.faults = {};
  }, 60_000);
});
