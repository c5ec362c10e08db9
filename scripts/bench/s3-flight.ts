// Replicas fetching each cold blob once (docs/s3.md): 30 clients spread over three replicas on one
// Ceph RGW bucket asking for one cold 64 MiB blob at once, against one client alone on one replica
// — wall time, and how many times the upstream was asked for the blob (counted by a proxy in front of it).
// Second baseline: the same 30 clients, same spread, once the blob is stored (30 clients receive 30×
// the bytes: the cold herd is judged against that too).
// Usage: bun scripts/bench/s3-flight.ts [--rounds 3]. Needs Debian's radosgw, ceph-mon, ceph-osd,
// ceph-common, python3-rados, docker-registry, curl; `bun run build` first.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createS3Store } from "../../src/store/s3/store.ts";
import { startCache, type RunningCache } from "../../test/helpers/binary.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { startFaultProxy } from "../../test/helpers/fault-proxy.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { run } from "../../test/helpers/procs.ts";
import { startRgw } from "../../test/helpers/rgw.ts";

const i = process.argv.indexOf("--rounds");
const ROUNDS = i > 0 ? Number(process.argv[i + 1]) : 3;
const CLIENTS = 30;
const UP = "127.0.33.3";
const PROXY = "127.0.33.4";
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-flight-"));
const rgw = await startRgw();
const up = await startDistribution({ addr: `${UP}:80` });
// Blob GETs counted where they leave for the upstream.
const proxy = await startFaultProxy({ hostname: PROXY, port: 80, target: up.base });
const replicas: RunningCache[] = [];
try {
  await rgw.createBucket("bench");
  const img = makeImage({ content: 64 * 1024 * 1024, uncompressed: true });
  await pushImage({ base: up.base }, "bench/flight", "v1", img);
  const layer = img.blobs[1]!;
  const cfg = join(dir, "c.yml");
  writeFileSync(cfg, `registries:\n  - name: ${PROXY}\n    scheme: http\nstore: s3://bench/c\ns3:\n  endpoint: ${rgw.endpoint}\n  forcePathStyle: true\nreplicas:\n  secretFromEnv: S\n`);
  const env = { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey, S: "bench-secret-of-the-replicas" };
  for (let r = 0; r < 3; r++) replicas.push(await startCache(["--config-file", cfg, "--image-path", mkdtempSync(join(dir, "scratch-"))], env));
  const store = createS3Store({ endpoint: rgw.endpoint, region: rgw.region, bucket: "bench", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true, prefix: "c/", scratchDir: dir });
  const path = `/v2/${PROXY}/bench/flight/blobs/${layer.digest}`;
  const gets = () => proxy.log.filter((l) => l.startsWith("GET ") && l.includes(`/blobs/${layer.digest}`)).length;
  const curl = async (c: RunningCache) => {
    const r = await run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", `${c.url}${path}`]);
    if (r.stdout !== `200 ${layer.bytes.byteLength}`) throw new Error(`${c.url}: ${r.stdout}`);
  };
  const timed = async (fn: () => Promise<unknown>, cold = true) => {
    if (cold) await store.removeContent("blobs", layer.digest);
    const t = performance.now();
    await fn();
    const took = (performance.now() - t) / 1000;
    // The owner commits once its clients are quiet (at most 2 s after the last byte): the next round's removal must come after that.
    for (let n = 0; n < 100 && !(await store.statBlob(layer.digest)); n++) await Bun.sleep(100);
    return took;
  };
  const one: number[] = [];
  const herd: number[] = [];
  const warm: number[] = [];
  const fetches: number[] = [];
  const all = () => Promise.all(Array.from({ length: CLIENTS }, (_, k) => curl(replicas[k % 3]!)));
  for (let r = 0; r < ROUNDS; r++) {
    one.push(await timed(() => curl(replicas[0]!)));
    const before = gets();
    herd.push(await timed(all));
    fetches.push(gets() - before);
    warm.push(await timed(all, false));
  }
  if (!Math.max(...fetches)) console.error(`no upstream GET of the blob counted; the proxy saw:\n${[...new Set(proxy.log)].slice(0, 20).join("\n")}`);
  const ratio = median(herd) / median(one);
  const warmRatio = median(herd) / median(warm);
  console.log(`Replicas on one RGW bucket, ${ROUNDS} round(s) (medians)
| figure | ours | baseline | ratio | target | met |
|---|---|---|---|---|---|
| ${CLIENTS} clients over 3 replicas on one cold 64 MiB blob: upstream fetches | ${Math.max(...fetches)} | — | — | 1 | ${Math.max(...fetches) === 1 ? "yes" : "no"} |
| ${CLIENTS} clients over 3 replicas on one cold 64 MiB blob: wall time | ${median(herd).toFixed(2)} s | ${median(one).toFixed(2)} s (one client alone, one replica) | ${ratio.toFixed(2)} | ≤ 1.3 | ${ratio <= 1.3 ? "yes" : "no"} |
| ${CLIENTS} clients over 3 replicas on one cold 64 MiB blob: wall time | ${median(herd).toFixed(2)} s | ${median(warm).toFixed(2)} s (the same ${CLIENTS} clients on the stored blob) | ${warmRatio.toFixed(2)} | — | — |`);
} finally {
  for (const c of replicas) await c.stop();
  await proxy.stop();
  await up.stop();
  await rgw.stop();
  rmSync(dir, { recursive: true, force: true });
}
