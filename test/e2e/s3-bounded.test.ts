// A size-bounded S3 store shared by two replicas (compiled binary, Ceph RGW, distribution, skopeo):
// pulls through both at once all succeed, evictions keep the bucket prefix within maxSize (and
// within the documented bound while pulls run), the two replicas never evict at the same time
// (the lease), an image replica A is downloading from a slow upstream is not evicted by replica B,
// and verify is clean at the end.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

const UP = "127.0.22.1";
const SLOW = "127.0.22.2";
const BUCKET = "bounded";
const MiB = 1024 * 1024;
const MAX = 48 * MiB;
const REPLICAS = 2;
let dir: string;
let rgw: Rgw;
let up: Distribution;
let proxy: FaultProxy;
let s3: Bun.S3Client;
const caches: RunningCache[] = [];
const images: Image[] = [];
let slow: Image;

const env = () => ({ AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey });
function config(): string {
  const file = join(dir, "replica.yml");
  writeFileSync(file, `registries:\n  - name: ${UP}\n    scheme: http\n  - name: ${SLOW}\n    scheme: http\nstore: s3://${BUCKET}/cache\ns3:\n  endpoint: ${rgw.endpoint}\n  region: ${rgw.region}\n  forcePathStyle: true\nmaxSize: 48MiB\nlogFormat: json\n`);
  return file;
}

/** Bytes under the prefix's blobs/ and manifests/ (what maxSize bounds), from one listing. */
async function prefixBytes(): Promise<number> {
  let n = 0;
  for (const under of ["cache/blobs/", "cache/manifests/"]) {
    let token: string | undefined;
    do {
      const page = await s3.list({ prefix: under, maxKeys: 1000, ...(token ? { continuationToken: token } : {}) });
      for (const c of page.contents ?? []) n += c.size ?? 0;
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token);
  }
  return n;
}

async function exists(key: string): Promise<boolean> {
  return s3.file(key).exists();
}

/** Eviction runs a replica logged: [start, end] in ms, from the JSON log's time and the run's duration. */
function runsOf(c: RunningCache): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of c.output().split("\n")) {
    if (!line.startsWith("{")) continue;
    const l = JSON.parse(line) as { time: string; msg: string };
    const m = l.msg.match(/^evicted \d+ image\(s\), \d+ bytes in (\d+) ms/);
    if (m) out.push([Date.parse(l.time) - Number(m[1]), Date.parse(l.time)]);
  }
  return out;
}

async function evictionsTotal(c: RunningCache): Promise<number> {
  const text = await (await fetch(`${c.url}/metrics`)).text();
  return Number(text.match(/^ociregistry_evictions_total\{reason="max-size"\} (\d+)/m)?.[1] ?? 0);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-s3bounded-"));
  rgw = await startRgw();
  await rgw.createBucket(BUCKET);
  s3 = new Bun.S3Client({ endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
  up = await startDistribution({ addr: `${UP}:80` });
  for (let i = 0; i < 12; i++) {
    images.push(makeImage({ content: 8 * MiB - 4096, uncompressed: true }));
    await pushImage({ base: up.base }, `library/img${i}`, "v1", images[i]!);
  }
  slow = makeImage({ content: 6 * MiB, uncompressed: true });
  await pushImage({ base: up.base }, "library/slow", "v1", slow);
  proxy = await startFaultProxy({ hostname: SLOW, port: 80, target: up.base });
  const file = config();
  for (let i = 0; i < REPLICAS; i++) caches.push(await startCache(["--config-file", file, "--image-path", mkdtempSync(join(dir, "scratch-"))], env()));
}, 180_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  await proxy?.stop();
  await up?.stop();
  await rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("two replicas on one bounded bucket prefix: pulls succeed, the prefix stays bounded, one evictor at a time, A's download is safe from B", async () => {
  const [a, b] = caches as [RunningCache, RunningCache];
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await prefixBytes().catch(() => 0));
      await Bun.sleep(200);
    }
  })();
  const pull = async (c: RunningCache, i: number) => {
    const r = await skopeoCopy(`127.0.0.1:${c.port}/${UP}/library/img${i}:v1`);
    r.cleanup();
    expect(r.digest).toBe(images[i]!.digest);
  };

  // Replica A starts a slow download: the slow image's record, manifest and config are stored,
  // its 6 MiB layer comes at 300 KiB/s (about 20 s). It is the least recently pulled image.
  proxy.faults = { throttle: 300 * 1024 };
  const base = `${a.url}/v2/${SLOW}/library/slow`;
  const accept = { Accept: slow.mediaType };
  expect((await fetch(`${base}/manifests/v1`, { headers: accept })).status).toBe(200);
  const [config, layer] = slow.blobs as [Image["blobs"][0], Image["blobs"][0]];
  expect(new Uint8Array(await (await fetch(`${base}/blobs/${config.digest}`)).arrayBuffer())).toEqual(config.bytes);
  const slowStart = Date.now();
  let slowDone = false;
  const slowLayer = fetch(`${base}/blobs/${layer.digest}`).then(async (r) => digestOf(new Uint8Array(await r.arrayBuffer()))).finally(() => (slowDone = true));
  const record = `cache/repositories/${SLOW}/library/slow/_tags/v1.json`;
  await waitFor("replica A's downloads published", async () => (await s3.list({ prefix: "cache/state/replicas/" })).contents?.length === 1, 10_000);

  // Meanwhile replica B alone pulls 7 images, 3 at a time: past maxSize, so B evicts.
  for (let i = 0; i < 7; i += 3) await Promise.all([i, i + 1, i + 2].filter((n) => n < 7).map((n) => pull(b, n)));
  await waitFor("an eviction run by replica B", async () => runsOf(b).length > 0, 20_000).catch((err) => {
    // A rare failure seen in full runs: what each replica said about eviction and room, for the next look.
    for (const [name, c] of [["A", a], ["B", b]] as const) {
      console.error(`--- replica ${name}\n${c.output().split("\n").filter((l) => /evict|full|room|lease|count/i.test(l)).slice(-30).join("\n")}`);
    }
    throw err;
  });
  const bRunsDuringSlow = runsOf(b).filter(([, end]) => end > slowStart);
  expect(bRunsDuringSlow.length).toBeGreaterThan(0);
  // The slow image, least recently pulled, is still there while its layer downloads.
  expect(await exists(record)).toBe(true);
  expect(await exists(`cache/manifests/sha256/${slow.digest.slice(7)}`)).toBe(true);
  expect(await exists(`cache/blobs/sha256/${config.digest.slice(7)}`)).toBe(true);
  expect(slowDone).toBe(false); // the download was still running at that check

  expect(await slowLayer).toBe(layer.digest);
  proxy.faults = {};
  await waitFor("the slow layer committed by A", () => exists(`cache/blobs/sha256/${layer.digest.slice(7)}`), 15_000);
  expect(await exists(record)).toBe(true);
  expect(await exists(`cache/manifests/sha256/${slow.digest.slice(7)}`)).toBe(true);

  // Then both replicas, alternately, 4 pulls at once: the rest and the first ones again (evicted: cold).
  const order = [7, 8, 9, 10, 11, 0, 1, 2];
  for (let i = 0; i < order.length; i += 4) {
    await Promise.all(order.slice(i, i + 4).map((n, j) => pull(j % 2 ? a : b, n)));
  }

  // The prefix comes back under maxSize (each replica counts again after storing maxSize/10).
  await waitFor("the bucket prefix at or under maxSize", async () => (await prefixBytes()) <= MAX, 45_000);
  sampling = false;
  await sampler;
  const final = await prefixBytes();
  console.error(`s3-bounded: maxSize ${MAX}, peak ${peak} (${(peak / MAX).toFixed(2)}x), final ${final}`);
  expect(final).toBeLessThanOrEqual(MAX);
  // The documented bound: each replica's count misses what the others stored since it last counted,
  // so N replicas never exceed maxSize by more than (N − 1) × maxSize.
  expect(peak).toBeLessThanOrEqual(REPLICAS * MAX);
  expect(peak).toBeGreaterThan(MAX * 0.8); // the store did fill up

  expect((await evictionsTotal(a)) + (await evictionsTotal(b))).toBeGreaterThan(0);
  // One evictor at a time: no run of A overlaps a run of B.
  const [runsA, runsB] = [runsOf(a), runsOf(b)];
  for (const [s1, e1] of runsA) for (const [s2, e2] of runsB) expect(s1 >= e2 || s2 >= e1).toBe(true);

  // Both replicas gone: their files are removed; verify on the bucket prefix is clean.
  await a.stop();
  await b.stop();
  expect((await s3.list({ prefix: "cache/state/replicas/" })).contents ?? []).toEqual([]);
  expect(await exists("cache/state/evict.lease") ? await s3.file("cache/state/evict.lease").text() : "no lease").toBe("no lease");
  const v = await run([BINARY, "--config-file", join(dir, "replica.yml"), "--image-path", mkdtempSync(join(dir, "cli-")), "verify"], { env: env(), allowFail: true });
  expect(v.stdout).toContain("0 problem(s) found");
  expect(v.code).toBe(0);
}, 120_000);
