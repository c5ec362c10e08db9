// Where a blob's time goes on the S3 store, step by step and in process, against a real Ceph RGW
// and distribution: the upstream GET alone; the same bytes through the S3 blob writer (until the
// client has its last byte, and until the object is visible); S3's upload alone; a HEAD, a signed
// request's signing, a record update; a warm read through Bun's S3 client and a presigned fetch.
// Usage: bun scripts/bench/s3-profile.ts [--mib 64] [--rounds 3] [--up 127.0.34.1]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { s3Driver } from "../../src/store/s3/store.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { s3Request } from "../../src/store/s3/sigv4.ts";
import { startDistribution } from "../../test/helpers/distribution.ts";
import { makeImage, pushImage } from "../../test/helpers/images.ts";
import { startRgw } from "../../test/helpers/rgw.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const MIB = Number(arg("mib", "64"));
const ROUNDS = Number(arg("rounds", "3"));
const UP = arg("up", "127.0.34.1");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: number) => performance.now() - t0;

const dir = mkdtempSync(join(tmpdir(), "ocireg-s3-profile-"));
const rgw = await startRgw();
const up = await startDistribution({ addr: `${UP}:80` });
const rows: Array<[string, number, string]> = [];
const row = (what: string, xs: number[], unit = "ms") => rows.push([what, median(xs), unit]);
try {
  await rgw.createBucket("prof");
  const access = { endpoint: rgw.endpoint, region: rgw.region, bucket: "prof", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, pathStyle: true };
  const driver = s3Driver({ ...access, prefix: "p/", scratchDir: dir });
  const store = createLayoutStore(driver);
  await store.init();
  const t = { upstream: [] as number[], lastByte: [] as number[], visible: [] as number[], s3put: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const img = makeImage({ content: MIB * 1024 * 1024, uncompressed: true });
    await pushImage({ base: up.base }, `prof/i${r}`, "v1", img);
    const layer = img.blobs[1]!;
    const url = `${up.base}/v2/prof/i${r}/blobs/${layer.digest}`;
    let t0 = performance.now();
    await (await fetch(url)).arrayBuffer();
    t.upstream.push(ms(t0));
    // Through the writer, as a cold download does: the client has its last byte once verified.
    t0 = performance.now();
    const w = await store.createBlobWriter(layer.digest, { size: layer.bytes.byteLength });
    for await (const chunk of (await fetch(url)).body!) await w.write(chunk);
    await w.verify();
    t.lastByte.push(ms(t0));
    await w.commit();
    t.visible.push(ms(t0));
    await w.release();
    // S3 alone: the same bytes as one multipart upload through the writer from memory.
    const copy = layer.bytes.slice();
    copy[0] = copy[0]! ^ 1;
    t0 = performance.now();
    const w2 = await store.createBlobWriter(digestOf(copy));
    for (let i = 0; i < copy.byteLength; i += 1 << 20) await w2.write(copy.subarray(i, i + (1 << 20)));
    await w2.commit();
    t.s3put.push(ms(t0));
    await w2.release();
  }
  row(`upstream GET of a ${MIB} MiB blob (distribution)`, t.upstream);
  row("the same through the S3 writer: client's last byte (verified)", t.lastByte);
  row("the same through the S3 writer: object visible in S3", t.visible);
  row(`S3 upload alone of ${MIB} MiB (multipart, from memory)`, t.s3put);

  const some = (await Array.fromAsync(store.listContent("blobs")))[0]!;
  const heads: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await store.statBlob(some);
    heads.push(ms(t0));
  }
  row("statBlob (one HEAD)", heads);
  const signs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await s3Request(access, "HEAD", `p/blobs/none-${i}`).then((r) => r.body?.cancel());
  signs.push(ms(t0) / 200);
  row("signed HEAD by our sigv4 (signing + round trip)", signs);
  const place = { upstream: "up.test", repository: "prof/app", tag: "v1" };
  const updates: number[] = [];
  for (let i = 0; i < 50; i++) {
    const at = performance.now();
    await store.updateTag(place, (cur) => ({
      ...place, digest: some, mediaType: "application/vnd.oci.image.manifest.v1+json", size: 1, created: cur?.created ?? new Date().toISOString(),
      lastPulled: new Date().toISOString(), checked: new Date().toISOString(),
    }));
    updates.push(ms(at));
  }
  row("updateTag (GET + conditional PUT)", updates);
  // Warm: Bun's S3 client stream, as the store serves it, against a presigned fetch.
  const blob = (await store.statBlob(some))!;
  const viaBun: number[] = [];
  const viaFetch: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    let a = performance.now();
    let n = 0;
    for await (const c of blob.file.stream()) n += c.byteLength;
    viaBun.push((n / 1048576) / (ms(a) / 1000));
    const url = (blob.file as unknown as { presign(o: object): string }).presign({ expiresIn: 600, method: "GET" });
    a = performance.now();
    n = 0;
    for await (const c of (await fetch(url)).body!) n += c.byteLength;
    viaFetch.push((n / 1048576) / (ms(a) / 1000));
  }
  row("warm read through Bun's S3 client stream", viaBun, "MiB/s");
  row("warm read through fetch of a presigned URL", viaFetch, "MiB/s");
  console.log(`S3 profile against Ceph RGW, ${ROUNDS} rounds (medians)\n| step | median |\n|---|---|\n${rows.map(([w, v, u]) => `| ${w} | ${v.toFixed(1)} ${u} |`).join("\n")}`);
} finally {
  await up.stop();
  await rgw.stop();
  rmSync(dir, { recursive: true, force: true });
}
