// Several replicas on one S3 bucket (a real Ceph RGW), with skopeo and ctr: what one replica stored
// the other serves with the upstream stopped; concurrent cold pulls across both stay correct;
// Range on a blob only one fetched; a cold blob goes up after its download and is there once
// serve stopped; kill -9 in the middle of an upload leaves no visible object and the next start
// aborts the upload; list, prune, verify, export and load --archive on S3;
// presigned redirects; clear errors for a wrong endpoint, bucket or key.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { once } from "node:events";
import { connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createS3Store } from "../../src/store/s3/store.ts";
import { incompleteUploads } from "../../src/store/s3/multipart.ts";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

const UP = "127.0.0.47";
const SLOW = "127.0.0.48";
const BUCKET = "replicas";
let dir: string;
let rgw: Rgw;
let up: Distribution;
let proxy: FaultProxy;
let ctr: Containerd;
const caches: RunningCache[] = [];
const img: Record<string, Image> = {};

function s3Yaml(extra = "") {
  return `registries:\n  - name: ${UP}\n    scheme: http\n  - name: ${SLOW}\n    scheme: http\nstore: s3://${BUCKET}/cache\ns3:\n  endpoint: ${rgw.endpoint}\n  region: ${rgw.region}\n  forcePathStyle: true\n${extra}`;
}

async function replica(extra = "") {
  const file = join(dir, `replica-${caches.length}.yml`);
  writeFileSync(file, s3Yaml(extra));
  const c = await startCache(["--config-file", file, "--image-path", mkdtempSync(join(dir, "scratch-"))], { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey });
  caches.push(c);
  return { c, file };
}

async function cli(args: string[], config: string) {
  return run([BINARY, "--config-file", config, "--image-path", mkdtempSync(join(dir, "cli-")), ...args], {
    env: { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey }, allowFail: true,
  });
}

const s3 = () => createS3Store({
  endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
  pathStyle: true, prefix: "cache/", scratchDir: dir,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-s3e2e-"));
  rgw = await startRgw();
  await rgw.createBucket(BUCKET);
  up = await startDistribution({ addr: `${UP}:80` });
  for (const n of ["shared", "one", "two", "three", "four"]) {
    img[n] = makeImage({ content: n === "shared" ? 3 * 1024 * 1024 : `${n} ${Math.random()}` });
    await pushImage({ base: up.base }, `library/${n}`, "v1", img[n]!);
  }
  img.big = makeImage({ content: 40 * 1024 * 1024, uncompressed: true });
  await pushImage({ base: up.base }, "library/big", "v1", img.big);
  proxy = await startFaultProxy({ hostname: SLOW, port: 80, target: up.base });
  ctr = await startContainerd();
}, 180_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  await ctr?.stop();
  await proxy?.stop();
  await up?.stop();
  await rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("replicas on one bucket", () => {
  test("what replica A stored, replica B serves with the upstream stopped (skopeo and ctr); Range on a blob only A fetched", async () => {
    const { c: a } = await replica();
    const { c: b } = await replica();
    expect((await skopeoCopy(`127.0.0.1:${a.port}/${UP}/library/shared:v1`)).digest).toBe(img.shared!.digest);
    await up.stop();
    try {
      expect((await skopeoCopy(`127.0.0.1:${b.port}/${UP}/library/shared:v1`)).digest).toBe(img.shared!.digest);
      expect(await ctr.pull(`${UP}/library/shared:v1`, UP, b.url)).toBe(img.shared!.digest);
      const layer = img.shared!.blobs[1]!;
      const res = await fetch(`${b.url}/v2/${UP}/library/shared/blobs/${layer.digest}`, { headers: { Range: "bytes=1000-1999" } });
      expect(res.status).toBe(206);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(layer.bytes.subarray(1000, 2000));
    } finally {
      await up.restart();
    }
  });

  test("8 concurrent cold pulls across two replicas: every client gets the right digest, verify finds nothing wrong", async () => {
    const { c: a, file } = await replica();
    const { c: b } = await replica();
    const pulls = ["one", "two", "three", "four"].flatMap((n) => [a, b].map((c) => skopeoCopy(`127.0.0.1:${c.port}/${UP}/library/${n}:v1`).then((r) => [n, r.digest])));
    for (const [n, digest] of await Promise.all(pulls)) expect(digest).toBe(img[n!]!.digest);
    const v = await cli(["verify"], file);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("0 problem(s) found");
    const list = JSON.parse((await cli(["list", "--json"], file)).stdout) as Array<{ image: string }>;
    expect(list.map((i) => i.image)).toEqual(expect.arrayContaining(["one", "two", "three", "four"].map((n) => `${UP}/library/${n}`)));
  });

  test("a cold blob goes up to S3 after its download, not beside it, and at once on SIGTERM though a client still holds a request", async () => {
    const { c: a } = await replica("shutdownDelay: 0s\ndrainTimeout: 5s\n");
    const later = makeImage({ content: 24 * 1024 * 1024, uncompressed: true });
    await pushImage({ base: up.base }, "library/later", "v1", later);
    const layer = later.blobs[1]!;
    const path = `/v2/${SLOW}/library/later/blobs/${layer.digest}`;
    // A client that takes the first bytes and stops reading (a paused socket): a request in flight,
    // so the upload waits for quiet (at most 2 s) once the blob is verified.
    const stalled = connect({ host: "127.0.0.1", port: a.port });
    await once(stalled, "connect");
    proxy.faults = { throttle: 12 * 1024 * 1024 };
    try {
      stalled.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await once(stalled, "data");
      stalled.pause();
      const pull = fetch(`${a.url}${path}`).then((r) => r.arrayBuffer());
      await Bun.sleep(1000);
      // Half-way: the client gets its bytes, S3 none yet (the default trail is 256 MiB).
      expect(await incompleteUploads({ ...rgwAccess(), bucket: BUCKET }, "cache/blobs/")).toEqual([]);
      expect(await s3().statBlob(layer.digest)).toBeNull();
      expect(new Bun.CryptoHasher("sha256").update(await pull).digest("hex")).toBe(layer.digest.slice(7));
      await Bun.sleep(300);
      expect(await s3().statBlob(layer.digest)).toBeNull(); // verified, waiting for the stalled client
      // SIGTERM: the upload goes at once, not when the 2 s are over, while the drain waits for the stalled client.
      const t0 = performance.now();
      a.proc.kill("SIGTERM");
      await waitFor("the blob in S3 right after SIGTERM", async () => (await s3().statBlob(layer.digest))?.size === layer.bytes.byteLength, 5000);
      expect(performance.now() - t0).toBeLessThan(1200);
    } finally {
      proxy.faults = {};
      stalled.destroy();
    }
    await a.stop();
    expect(await incompleteUploads({ ...rgwAccess(), bucket: BUCKET }, "cache/blobs/")).toEqual([]);
  });

  test("kill -9 during an upload leaves no visible object; the next start aborts the upload", async () => {
    // A small trail: the parts go up beside the slow download, as they do for blobs past s3.uploadTrail.
    const { c: a } = await replica("  abortUploadsAfter: 1s\n  uploadTrail: 5MiB\n");
    const layer = img.big!.blobs[1]!;
    proxy.faults = { throttle: 8 * 1024 * 1024 };
    const pull = fetch(`${a.url}/v2/${SLOW}/library/big/blobs/${layer.digest}`).then((r) => r.arrayBuffer()).catch(() => null);
    await waitFor("a multipart upload under way", async () => (await incompleteUploads({ ...rgwAccess(), bucket: BUCKET }, "cache/blobs/")).length > 0, 30_000);
    await a.stop("SIGKILL");
    await pull;
    proxy.faults = {};
    expect(await s3().statBlob(layer.digest)).toBeNull();
    await Bun.sleep(1100); // the threshold is 1 s: let the upload become that old
    const { c: again } = await replica("  abortUploadsAfter: 1s\n");
    expect(again.output()).toMatch(/removed \d+ leftover temp file\(s\) or upload\(s\)/);
    expect(await incompleteUploads({ ...rgwAccess(), bucket: BUCKET }, "cache/blobs/")).toEqual([]);
  });

  test("with redirect on, skopeo and ctr follow the 307 to a presigned URL", async () => {
    const { c: a } = await replica();
    expect((await skopeoCopy(`127.0.0.1:${a.port}/${UP}/library/one:v1`)).digest).toBe(img.one!.digest);
    const { c: r } = await replica("  redirect: true\n");
    const res = await fetch(`${r.url}/v2/${UP}/library/one/blobs/${img.one!.blobs[1]!.digest}`, { redirect: "manual" });
    expect(res.status).toBe(307);
    expect(res.headers.get("location")).toContain(rgw.endpoint);
    expect((await skopeoCopy(`127.0.0.1:${r.port}/${UP}/library/one:v1`)).digest).toBe(img.one!.digest);
    expect(await ctr.pull(`${UP}/library/one:v1`, UP, r.url)).toBe(img.one!.digest);
  });
});

describe("commands on S3", () => {
  test("prune, and moving a store between back-ends with export and load --archive", async () => {
    const { c: a, file } = await replica();
    expect((await skopeoCopy(`127.0.0.1:${a.port}/${UP}/library/two:v1`)).digest).toBe(img.two!.digest);
    await a.stop();
    // S3 → directory.
    const tar = join(dir, "from-s3.tar");
    expect((await cli(["export", "--out", tar], file)).code).toBe(0);
    const local = mkdtempSync(join(dir, "local-"));
    expect((await run([BINARY, "--image-path", local, "load", "--archive", tar])).code).toBe(0);
    const listed = JSON.parse((await run([BINARY, "--image-path", local, "list", "--json"])).stdout) as Array<{ image: string }>;
    expect(listed.map((i) => i.image)).toContain(`${UP}/library/two`);
    // Directory → another prefix on S3.
    const back = join(dir, "to-s3.yml");
    writeFileSync(back, s3Yaml().replace(`s3://${BUCKET}/cache`, `s3://${BUCKET}/moved`));
    const tar2 = join(dir, "from-dir.tar");
    await run([BINARY, "--image-path", local, "export", "--out", tar2]);
    expect((await cli(["load", "--archive", tar2], back)).code).toBe(0);
    expect((await cli(["verify"], back)).stdout).toContain("0 problem(s) found");
    const moved = JSON.parse((await cli(["list", "--json"], back)).stdout) as Array<{ image: string }>;
    expect(moved.map((i) => i.image)).toContain(`${UP}/library/two`);
    // Prune on S3 removes the records and the content only they used.
    const pruned = await cli(["prune", "--older-than", "0s"], back);
    expect(pruned.stdout).toContain(`removed ${UP}/library/two:v1`);
    expect(JSON.parse((await cli(["list", "--json"], back)).stdout)).toEqual([]);
    const store = createS3Store({ ...rgwAccess(), bucket: BUCKET, pathStyle: true, prefix: "moved/", scratchDir: dir });
    expect(await store.statBlob(img.two!.blobs[1]!.digest)).toBeNull();
  });

  test("load of an image list into S3, and verify --repair there", async () => {
    const file = join(dir, "load-s3.yml");
    writeFileSync(file, s3Yaml().replace(`s3://${BUCKET}/cache`, `s3://${BUCKET}/loaded`));
    const list = join(dir, "load-s3.txt");
    writeFileSync(list, `${UP}/library/three:v1\n${UP}/library/four:v1\n`);
    expect((await cli(["load", "--image-file", list], file)).code).toBe(0);
    const listed = JSON.parse((await cli(["list", "--json"], file)).stdout) as Array<{ image: string }>;
    expect(listed.map((i) => i.image).sort()).toEqual([`${UP}/library/four`, `${UP}/library/three`]);
    // Damage one blob in S3: verify finds it, --repair removes it, the next verify is clean.
    const store = createS3Store({ ...rgwAccess(), bucket: BUCKET, pathStyle: true, prefix: "loaded/", scratchDir: dir });
    const layer = img.three!.blobs[1]!;
    const client = new Bun.S3Client({ endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
    await client.write(`loaded/blobs/sha256/${layer.digest.slice(7)}`, "not the layer");
    const found = await cli(["verify"], file);
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(`corrupt: blobs ${layer.digest}`);
    expect((await cli(["verify", "--repair"], file)).code).toBe(0);
    const clean = await cli(["verify"], file);
    expect(clean.stdout).toContain("0 problem(s) found");
    expect(await store.statBlob(layer.digest)).toBeNull();
  });

  test("a wrong endpoint, bucket or key stops the start with a message naming it", async () => {
    for (const [yaml, env, message] of [
      [s3Yaml().replace(rgw.endpoint, "http://127.0.0.1:1"), {}, "127.0.0.1:1"],
      [s3Yaml().replace(`s3://${BUCKET}/`, "s3://no-such-bucket/"), {}, "no-such-bucket"],
      [s3Yaml(), { AWS_SECRET_ACCESS_KEY: "wrong" }, "access key"],
    ] as const) {
      const file = join(dir, "bad.yml");
      writeFileSync(file, yaml);
      const r = await run([BINARY, "--config-file", file, "--image-path", mkdtempSync(join(dir, "bad-")), "serve", "--port", "0"], {
        env: { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey, ...env }, allowFail: true,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain(rgw.secretAccessKey);
    }
  });
});

function rgwAccess() {
  return { endpoint: rgw.endpoint, region: rgw.region, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true, bucket: BUCKET };
}
