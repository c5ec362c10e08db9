// Tag records shared by two replicas on one S3 bucket (a real Ceph RGW, the compiled binary):
// 1,000 concurrent updates of one record through both (a pull, then the admin API's pin, which
// writes the pull's time with the pin) lose nothing, and a pin set on one replica survives the
// other's flush and its new fetch of the tag after the tag moved upstream.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createS3Store } from "../../src/store/s3/store.ts";
import type { Store } from "../../src/store/types.ts";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage } from "../helpers/images.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

const UP = "127.0.34.2";
const BUCKET = "records";
const TOKEN = "s3-records-admin-token-0123456789";
const UPDATES = 1000;
let dir: string;
let rgw: Rgw;
let up: Distribution;
let store: Store;
const caches: RunningCache[] = [];

async function replica(): Promise<RunningCache> {
  const file = join(dir, `replica-${caches.length}.yml`);
  writeFileSync(file, `registries:\n  - name: ${UP}\n    scheme: http\nstore: s3://${BUCKET}/cache\ns3:\n  endpoint: ${rgw.endpoint}\n  region: ${rgw.region}\n  forcePathStyle: true\nrevalidateAfter: 0s\nadmin:\n  token: ${TOKEN}\n`);
  const c = await startCache(["--config-file", file, "--image-path", mkdtempSync(join(dir, "scratch-"))], { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey });
  caches.push(c);
  return c;
}

const admin = (c: RunningCache, method: string, path: string) =>
  fetch(`${c.url}/api/v1/${path}`, { method, headers: { Authorization: `Bearer ${TOKEN}` } });
const pull = async (c: RunningCache, repo: string) => {
  const res = await fetch(`${c.url}/v2/${UP}/${repo}/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
  await res.arrayBuffer();
  return res.status;
};
const stored = (repo: string) => store.readTag(UP, repo, "v1");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-s3records-"));
  rgw = await startRgw();
  await rgw.createBucket(BUCKET);
  up = await startDistribution({ addr: `${UP}:80` });
  for (const repo of ["team/hot", "team/moving"]) await pushImage({ base: up.base }, repo, "v1", makeImage({ content: `${repo} ${Math.random()}` }));
  store = createS3Store({
    endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
    pathStyle: true, prefix: "cache/", scratchDir: dir,
  });
}, 180_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  await up?.stop();
  await rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("tag records shared by two replicas on S3", () => {
  test(`${UPDATES} concurrent updates of one record through two replicas lose no pull time and no pin`, async () => {
    const a = await replica();
    const b = await replica();
    expect(await pull(a, "team/hot")).toBe(200);
    expect((await admin(a, "PUT", `pins/${UP}/team/hot:v1`)).status).toBe(200);
    let lastPullStarted = "";
    const statuses: number[] = [];
    // Four clients per replica, each pulling then pinning: every pin writes the pull's time.
    const worker = async (c: RunningCache, rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        const started = new Date().toISOString();
        statuses.push(await pull(c, "team/hot"));
        if (started > lastPullStarted) lastPullStarted = started;
        statuses.push((await admin(c, "PUT", `pins/${UP}/team/hot:v1`)).status);
      }
    };
    await Promise.all([a, b].flatMap((c) => Array.from({ length: 4 }, () => worker(c, UPDATES / 8))));
    expect(statuses.length).toBe(2 * UPDATES);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const rec = (await stored("team/hot"))!;
    expect(rec.pinned).toBe(true);
    // The latest pull of all, on either replica, is the one stored (times are ms; the server's
    // clock is this machine's).
    expect(rec.lastPulled >= lastPullStarted).toBe(true);
    expect(Date.parse(rec.lastPulled)).toBeLessThanOrEqual(Date.now());
    for (const c of [a, b]) expect(await c.settledOutput()).not.toContain("cannot record");
  }, 180_000);

  test("a pin set on one replica survives the other's flush and its new fetch of the moved tag", async () => {
    const [a, b] = caches.length >= 2 ? [caches[0]!, caches[1]!] : [await replica(), await replica()];
    expect(await pull(b, "team/moving")).toBe(200);
    expect((await admin(a, "PUT", `pins/${UP}/team/moving:v1`)).status).toBe(200);
    for (let i = 0; i < 20; i++) expect(await pull(b, "team/moving")).toBe(200); // B's pull times, in memory
    // The tag moves upstream; B fetches it again (a record write), then stops (its flush).
    const moved = makeImage({ content: `moved ${Math.random()}` });
    await pushImage({ base: up.base }, "team/moving", "v1", moved);
    const res = await fetch(`${b.url}/v2/${UP}/team/moving/manifests/v1`, { method: "HEAD" });
    expect(res.status).toBe(200);
    await b.stop();
    caches.splice(caches.indexOf(b), 1);
    const rec = (await stored("team/moving"))!;
    expect(rec.pinned).toBe(true);
    expect(rec.digest).toBe(moved.digest);
  }, 120_000);
});
