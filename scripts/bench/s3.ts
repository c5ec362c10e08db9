// The S3 store's cost: a warm 64 MiB blob through the cache (S3 store) against a direct GET of the
// same object from the S3 service (a presigned URL), and a cold pull with skopeo through the cache
// against skopeo straight from the upstream — all in one run, against a real Ceph RGW.
// Usage: bun scripts/bench/s3.ts [--rounds 3] [--duration 8] [--up 127.0.0.50 (the upstream's address)]. Needs Debian's radosgw, ceph-mon,
// ceph-osd, ceph-common, python3-rados, docker-registry, skopeo, wrk.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createS3Store } from "../../src/store/s3/store.ts";
import { startCache } from "../../test/helpers/binary.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { run } from "../../test/helpers/procs.ts";
import { startRgw } from "../../test/helpers/rgw.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 3);
const DURATION = arg("duration", 8);
const UP = process.argv.includes("--up") ? process.argv[process.argv.indexOf("--up") + 1]! : "127.0.0.50";

async function wrkMiBps(url: string, connections: number): Promise<number> {
  const r = await run(["wrk", "-t1", `-c${connections}`, `-d${DURATION}s`, url]);
  if (/Non-2xx or 3xx responses/.test(r.stdout)) throw new Error(`${url}: error responses`);
  const m = r.stdout.match(/Transfer\/sec:\s+([\d.]+)(\w+)/)!;
  return Number(m[1]) * ({ KB: 1 / 1024, MB: 1, GB: 1024 } as Record<string, number>)[m[2]!]!;
}

async function seconds(cmd: string[]): Promise<number> {
  const t = performance.now();
  await run(cmd);
  return (performance.now() - t) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dir = mkdtempSync(join(tmpdir(), "ocireg-bench-s3-"));
const rgw = await startRgw();
const up = await startDistribution({ addr: `${UP}:80` });
try {
  await rgw.createBucket("bench");
  const big = makeImage({ content: 64 * 1024 * 1024, uncompressed: true });
  await pushImage({ base: up.base }, "bench/big", "v1", big);
  const layer = big.blobs[1]!;
  const cfg = join(dir, "c.yml");
  writeFileSync(cfg, `registries:\n  - name: ${UP}\n    scheme: http\nstore: s3://bench/c\ns3:\n  endpoint: ${rgw.endpoint}\n  forcePathStyle: true\nrevalidateAfter: 1h\n`);
  const env = { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey };
  const cache = await startCache(["--config-file", cfg, "--image-path", join(dir, "scratch")], env);
  try {
    // Cold: skopeo through the cache (into S3) against skopeo from the upstream.
    const cold: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const img = makeImage({ content: 32 * 1024 * 1024, uncompressed: true });
      await pushImage({ base: up.base }, `bench/cold${i}`, "v1", img);
      direct.push(await seconds(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", `docker://${UP}/bench/cold${i}:v1`, `dir:${mkdtempSync(join(dir, "d-"))}`]));
      cold.push(await seconds(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", `docker://127.0.0.1:${cache.port}/${UP}/bench/cold${i}:v1`, `dir:${mkdtempSync(join(dir, "c-"))}`]));
    }
    // Warm: the 64 MiB blob through the cache against a presigned GET of the same object.
    const blobUrl = `${cache.url}/v2/${UP}/bench/big/blobs/${layer.digest}`;
    await (await fetch(blobUrl)).arrayBuffer();
    const store = createS3Store({ endpoint: rgw.endpoint, region: rgw.region, bucket: "bench", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true, prefix: "c/", scratchDir: dir, redirect: true });
    // The client has its bytes once verified; the upload completes a moment later.
    let stored = await store.statBlob(layer.digest);
    for (let i = 0; !stored && i < 100; i++) stored = await Bun.sleep(100).then(() => store.statBlob(layer.digest));
    const presigned = stored!.redirect!(3600);
    const rows: string[] = [];
    for (const c of [1, 4]) {
      const ours: number[] = [];
      const base: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        ours.push(await wrkMiBps(blobUrl, c));
        base.push(await wrkMiBps(presigned, c));
      }
      const r = median(ours) / median(base);
      rows.push(`| warm 64 MiB blob from S3, ${c} connection(s) | ${median(ours).toFixed(0)} MiB/s | ${median(base).toFixed(0)} MiB/s (direct GET from RGW) | ${r.toFixed(2)} | ≥ 0.9 | ${r >= 0.9 ? "yes" : "no"} |`);
    }
    const cr = median(cold) / median(direct);
    rows.push(`| cold pull of a 32 MiB image with skopeo | ${median(cold).toFixed(2)} s | ${median(direct).toFixed(2)} s (skopeo from the upstream) | ${cr.toFixed(2)} | ≤ 1.5 | ${cr <= 1.5 ? "yes" : "no"} |`);
    console.log(`S3 store against Ceph RGW, ${ROUNDS} rounds (medians)\n| figure | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n${rows.join("\n")}`);
  } finally {
    await cache.stop();
  }
} finally {
  await up.stop();
  await rgw.stop();
  rmSync(dir, { recursive: true, force: true });
}
