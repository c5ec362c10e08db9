// One upstream fetch per blob across three replicas on one bucket (a real Ceph RGW, the compiled
// binary): in ten rounds, 30 clients spread over the replicas ask for the same cold 64 MiB blob at
// once; the fault proxy in front of the upstream counts blob GETs (exactly one per round) and every
// client's bytes are hashed. In one round the replica holding the download lease is killed with
// SIGKILL mid-download: the blob still reaches every client and `verify` is clean. Each other
// replica relays the blob to all its clients over ONE internal stream (the replicas' metrics count
// the internal requests). A blob whose upload waits for its replica's clients to be quiet reaches
// another replica's client over the relay with the upstream down. The internal endpoint refuses
// unsigned and wrongly signed requests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flightName } from "../../src/cache/flight-leases.ts";
import { createS3Store } from "../../src/store/s3/store.ts";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";

const UP = "127.0.33.1";
const PROXY = "127.0.33.2";
const BUCKET = "flight";
const SECRET = "a-shared-secret-of-the-replicas-0123";
const ROUNDS = 10;
const CLIENTS = 30;
const KILL_ROUND = 4;
let dir: string;
let rgw: Rgw;
let up: Distribution;
let proxy: FaultProxy;
let img: Image;
let config: string;
const replicas: Array<RunningCache | null> = [null, null, null];
const stopped: RunningCache[] = [];

const env = () => ({ AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey, REPLICA_SECRET: SECRET });
const store = () => createS3Store({
  endpoint: rgw.endpoint, region: rgw.region, bucket: BUCKET, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
  pathStyle: true, prefix: "cache/", scratchDir: dir,
});
const layer = () => img.blobs[1]!;
const blobGets = () => proxy.log.filter((l) => l === `GET /v2/library/big/blobs/${layer().digest}`).length;

async function startReplica(i: number) {
  const c = await startCache(["--config-file", config, "--image-path", mkdtempSync(join(dir, `scratch-${i}-`))], env());
  replicas[i] = c;
  return c;
}

/** Internal-endpoint requests the running replicas answered so far (their /metrics). */
async function internalRequests(): Promise<number> {
  let n = 0;
  for (const c of replicas) {
    if (!c) continue;
    const text = await (await fetch(`${c.url}/metrics`)).text();
    for (const m of text.matchAll(/^ociregistry_http_requests_total\{[^}]*route="internal"[^}]*\} (\d+)$/gm)) n += Number(m[1]);
  }
  return n;
}

/** One client: the blob from replica `first`, hashed as it streams; on a failure, again from the next replica (as a client behind a Service would). */
async function client(first: number): Promise<{ digest: string; firstByteMs: number; tries: number }> {
  for (let tries = 1, i = first; tries <= 4; tries++, i = (i + 1) % 3) {
    const c = replicas[i];
    if (!c) continue;
    const t0 = performance.now();
    try {
      const res = await fetch(`${c.url}/v2/${PROXY}/library/big/blobs/${layer().digest}`);
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const hash = createHash("sha256");
      let firstByteMs = -1;
      let n = 0;
      for await (const chunk of res.body!) {
        if (firstByteMs < 0) firstByteMs = performance.now() - t0;
        hash.update(chunk);
        n += chunk.byteLength;
      }
      if (n !== layer().bytes.byteLength) throw new Error(`${n} bytes`);
      return { digest: `sha256:${hash.digest("hex")}`, firstByteMs, tries };
    } catch {
      await Bun.sleep(200);
    }
  }
  return { digest: "failed", firstByteMs: -1, tries: 4 };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-flight-"));
  rgw = await startRgw();
  await rgw.createBucket(BUCKET);
  up = await startDistribution({ addr: `${UP}:80` });
  img = makeImage({ content: 64 * 1024 * 1024, uncompressed: true });
  await pushImage({ base: up.base }, "library/big", "v1", img);
  proxy = await startFaultProxy({ hostname: PROXY, port: 80, target: up.base });
  config = join(dir, "replica.yml");
  writeFileSync(config, `registries:\n  - name: ${PROXY}\n    scheme: http\nstore: s3://${BUCKET}/cache\ns3:\n  endpoint: ${rgw.endpoint}\n  region: ${rgw.region}\n  forcePathStyle: true\nreplicas:\n  secretFromEnv: REPLICA_SECRET\n`);
  for (let i = 0; i < 3; i++) await startReplica(i);
}, 180_000);

afterAll(async () => {
  for (const c of [...replicas, ...stopped]) await c?.stop();
  await proxy?.stop();
  await up?.stop();
  await rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("one upstream fetch per blob across replicas", () => {
  test("ten rounds of 30 clients over three replicas: one upstream GET each, right bytes for all; the owner killed in one round", async () => {
    const s3 = store();
    for (let round = 0; round < ROUNDS; round++) {
      await s3.removeContent("blobs", layer().digest);
      const kill = round === KILL_ROUND;
      // 64 MiB at 64 MiB/s: a second of download for the others to join; the kill round slower, to kill mid-way.
      proxy.faults = { throttle: (kill ? 16 : 64) * 1024 * 1024 };
      const before = blobGets();
      const internalBefore = kill ? 0 : await internalRequests();
      const pulls = Array.from({ length: CLIENTS }, (_, i) => client(i % 3));
      if (kill) {
        let owner = -1;
        await waitFor("a download lease", async () => {
          const lease = await s3.readState(flightName(PROXY, layer().digest));
          const url = lease && (JSON.parse(new TextDecoder().decode(lease)) as { url: string }).url;
          owner = replicas.findIndex((c) => c?.url === url);
          return owner >= 0;
        }, 30_000);
        await Bun.sleep(1500);
        const victim = replicas[owner]!;
        replicas[owner] = null;
        await victim.stop("SIGKILL");
        stopped.push(victim);
        // No partial object at any moment: absent, or whole.
        const seen = await s3.statBlob(layer().digest);
        if (seen) expect(seen.size).toBe(layer().bytes.byteLength);
      }
      const got = await Promise.all(pulls);
      const gets = blobGets() - before;
      for (const g of got) expect(g.digest).toBe(layer().digest);
      if (kill) {
        // The killed owner's GET and the one taking over: never one per replica.
        expect(gets).toBeLessThanOrEqual(2);
        await startReplica(replicas.indexOf(null));
      } else {
        expect(gets).toBe(1);
        // One relay per blob per follower replica: two followers, one internal stream each, however many clients.
        expect(await internalRequests() - internalBefore).toBeLessThanOrEqual(2);
        // Clients of the replicas that did not download get bytes as they arrive, not after.
        expect(Math.max(...got.map((g) => g.firstByteMs))).toBeLessThan(3000);
      }
      // Clients get the last byte once it is verified; the upload is completed a moment later.
      await waitFor(`the blob stored after round ${round}`, async () => (await s3.statBlob(layer().digest))?.size === layer().bytes.byteLength, 20_000).catch((err) => {
        for (const c of [...replicas, ...stopped]) if (c) console.log(`--- ${c.url}\n${c.output().split("\n").filter((l) => !l.includes("/v2/") || l.includes("WARN")).slice(-40).join("\n")}`);
        throw err;
      });
      console.log(`round ${round}: ${gets} upstream GET(s), first byte after at most ${Math.round(Math.max(...got.map((g) => g.firstByteMs)))} ms, ${got.filter((g) => g.tries > 1).length} client(s) retried`);
    }
    proxy.faults = {};
    const v = await run([BINARY, "--config-file", config, "--image-path", mkdtempSync(join(dir, "cli-")), "verify"], { env: env(), allowFail: true });
    expect(v.stdout).toContain("0 problem(s) found");
    expect(v.code).toBe(0);
    // Leases are removed once their download ended.
    expect(await s3.readState(flightName(PROXY, layer().digest))).toBeNull();
  }, 600_000);

  test("a blob served but not yet uploaded (its replica's clients still busy) reaches another replica's client over the relay, with the upstream down", async () => {
    const s3 = store();
    await s3.removeContent("blobs", layer().digest);
    proxy.faults = {};
    const a = replicas[0]!;
    const before = blobGets();
    const internalBefore = await internalRequests();
    // A client of A that takes the first bytes and stops reading (a raw socket, paused: fetch would
    // buffer the whole body): its request stays in flight on A, so A's upload waits (at most 2 s)
    // once the blob is verified.
    const stalled = connect({ host: "127.0.0.1", port: a.port });
    await once(stalled, "connect");
    stalled.write(`GET /v2/${PROXY}/library/big/blobs/${layer().digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await once(stalled, "data");
    stalled.pause();
    try {
      expect((await client(0)).digest).toBe(layer().digest); // A's other client gets the whole blob
      expect(await s3.statBlob(layer().digest)).toBeNull(); // not in S3 yet
      proxy.faults = { status: 503 };
      const relayed = await client(1); // B: the lease names A, which serves it from its scratch copy
      expect(relayed.digest).toBe(layer().digest);
      expect(relayed.tries).toBe(1);
      // The stalled client cannot hold the upload back for longer than 2 s: stored while it still waits.
      await waitFor("the blob stored with a client of A still stalled", async () => (await s3.statBlob(layer().digest))?.size === layer().bytes.byteLength, 10_000);
    } finally {
      proxy.faults = {};
      stalled.destroy();
    }
    expect(blobGets() - before).toBe(1);
    expect(await internalRequests() - internalBefore).toBe(1);
  });

  test("the internal endpoint refuses requests not signed with the shared secret, and never logs it", async () => {
    const c = replicas.find((r) => r)!;
    const path = `/_internal/v1/downloads/${PROXY}/${layer().digest}`;
    for (const authorization of [undefined, `OciregistryReplica t=${Date.now()},s=${"0".repeat(64)}`, `Bearer ${SECRET}`]) {
      const res = await fetch(`${c.url}${path}`, { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(403);
      await res.body?.cancel();
    }
    expect(await c.settledOutput()).not.toContain(SECRET);
  });
});
