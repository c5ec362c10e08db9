// The S3 store against a real Ceph RGW (skipped when radosgw is not installed): a warm 64 MiB blob
// through the cache against a direct GET of the same object from RGW (a presigned URL), and a
// cold pull with skopeo through the cache into S3 against skopeo straight from the upstream.
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createS3Store } from "../../../src/store/s3/store.ts";
import { makeImage, pushImage } from "../../../test/helpers/images.ts";
import { startRgw } from "../../../test/helpers/rgw.ts";
import { median, MiB, Scope, sh, startBenchCache, startRegistry, timed, wrk, wrkRounds } from "../lib.ts";
import { atLeast, atMost, type Ctx, type Row } from "../report.ts";

/** The upstream's default address (scripts/bench/s3.ts takes --up). */
export const S3_UP = "127.0.41.2";

/** Whether the Ceph daemons test/helpers/rgw.ts starts are installed. */
export const rgwInstalled = () => ["/usr/bin/radosgw", "/usr/bin/ceph-mon", "/usr/bin/ceph-osd"].every((p) => existsSync(p));

export async function s3Store(ctx: Ctx, upAddr = S3_UP): Promise<Row[]> {
  if (!rgwInstalled()) {
    ctx.log("s3: radosgw, ceph-mon or ceph-osd not installed; skipped (apt-get install radosgw ceph-mon ceph-osd ceph-common python3-rados)");
    return [];
  }
  const s = new Scope();
  try {
    const rgw = await startRgw();
    s.add(() => rgw.stop());
    await rgw.createBucket("bench");
    const up = await startRegistry(s, upAddr);
    const dir = s.tempDir("ocireg-bench-s3-");
    const mib = ctx.quick ? 16 : 64;
    const big = makeImage({ content: mib * MiB, uncompressed: true });
    await pushImage({ base: up.base }, "bench/big", "v1", big);
    const layer = big.blobs[1]!;
    const s3Yaml = `store: s3://bench/c\ns3:\n  endpoint: ${rgw.endpoint}\n  forcePathStyle: true\n`;
    const env = { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey };
    const cache = await startBenchCache(s, { upstreams: [upAddr], extraYaml: s3Yaml, env });
    const rows: Row[] = [];

    // The store as another replica sees it: when each layer appears in S3.
    const store = createS3Store({ endpoint: rgw.endpoint, region: rgw.region, bucket: "bench", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true, prefix: "c/", scratchDir: dir, redirect: true });
    const inS3 = async (digest: string) => {
      const t0 = performance.now();
      for (let i = 0; i < 500; i++, await Bun.sleep(10)) if (await store.statBlob(digest)) return performance.now() - t0;
      throw new Error(`${digest} did not appear in the S3 store within 5 s`);
    };
    const lag: number[] = [];

    // Cold: skopeo through the cache (into S3) against skopeo from the upstream, a new image each
    // round (the cache stays: a new cache per round would time RGW's first requests too).
    const times = { cache: [] as number[], direct: [] as number[] };
    const coldMib = ctx.quick ? 8 : 32;
    ctx.log(`s3: cold pull of a ${coldMib} MiB image with skopeo, ${ctx.rounds} round(s)`);
    const skopeo = (ref: string) => timed(() => sh(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--retry-times", "0", `docker://${ref}`, `dir:${mkdtempSync(join(dir, "pull-"))}`]));
    for (let r = 0; r < ctx.rounds; r++) {
      const img = makeImage({ content: coldMib * MiB, uncompressed: true });
      await pushImage({ base: up.base }, `bench/cold${r}`, "v1", img);
      times.direct.push(await skopeo(`${upAddr}/bench/cold${r}:v1`));
      times.cache.push(await skopeo(`127.0.0.1:${cache.port}/${upAddr}/bench/cold${r}:v1`));
      // The upload goes once the clients are quiet: the next round starts once this layer is in S3,
      // so no round's pull (the direct one included) shares the machine with the last one's upload.
      lag.push(await inS3(img.blobs[1]!.digest));
    }
    const note = `rounds: cache ${times.cache.map((t) => t.toFixed(2)).join(", ")} s; direct ${times.direct.map((t) => t.toFixed(2)).join(", ")} s; the layer in S3 ${Math.round(median(lag))} ms (median) after skopeo finished`;
    rows.push(atMost(`cold pull into the S3 store (Ceph RGW), ${coldMib} MiB image, skopeo`, "s", median(times.cache), median(times.direct), "skopeo from upstream", 1.5, note));

    // Warm: the blob through the cache against a presigned GET of the same object.
    const ours = `${cache.url}/v2/${upAddr}/bench/big/blobs/${layer.digest}`;
    const res = await fetch(ours);
    if (res.status !== 200 || (await res.arrayBuffer()).byteLength !== layer.bytes.byteLength) throw new Error(`warm-up of the blob failed: ${res.status}`);
    // The client has its bytes once verified; the upload completes a moment later.
    await inS3(layer.digest);
    const stored = await store.statBlob(layer.digest);
    if (!stored?.redirect) throw new Error(`${layer.digest} did not appear in the S3 store`);
    const direct = stored.redirect(3600);
    for (const connections of [1, 4]) {
      const run = (url: string, seconds = ctx.seconds) => () => wrk(url, { connections, seconds });
      ctx.log(`s3: warm ${mib} MiB blob, ${connections} connection(s), ${ctx.rounds} round(s)`);
      if (ctx.warmup) for (const url of [ours, direct]) await run(url, ctx.warmup)();
      const r = await wrkRounds(ctx.rounds, { ours: run(ours), direct: run(direct) });
      const mibs = (x: { rps: number }) => (x.rps * layer.bytes.byteLength) / MiB;
      rows.push(atLeast(`warm ${mib} MiB blob from the S3 store (Ceph RGW), ${connections} connection${connections > 1 ? "s" : ""}`, "MiB/s", mibs(r.ours!), mibs(r.direct!), "direct GET from RGW", 0.9));
    }
    return rows;
  } finally {
    await s.close();
  }
}
