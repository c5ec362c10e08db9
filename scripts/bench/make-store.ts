// Writes a store of N tag records straight into the directory layout (no network, no fsync):
// 100 tags per repository, pointing at a few hundred distinct small manifests, each with its own
// config blob and two layers from a shared pool. Records are `checked` now (a cache with
// `revalidateAfter: 1h` serves them without asking the upstream) and `lastPulled` 0–59 days ago,
// so `prune --older-than 30d` has about half of them to remove.
// Usage: bun scripts/bench/make-store.ts N DIR [--upstream 127.0.4.9]
import { mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { serializeTagRecord } from "../../src/store/record.ts";
import type { TagRecord } from "../../src/store/types.ts";

export const TAGS_PER_REPO = 100;
const MANIFESTS = 300;
const LAYERS = 200;
const DAY = 86_400_000;

export interface MadeStore {
  dir: string;
  upstream: string;
  tags: number;
  manifests: number;
  blobs: number;
}

/** `bench/r00042` and `t00007` for record i. */
export function tagOf(i: number): { repository: string; tag: string } {
  return {
    repository: `bench/r${String(Math.floor(i / TAGS_PER_REPO)).padStart(5, "0")}`,
    tag: `t${String(i % TAGS_PER_REPO).padStart(5, "0")}`,
  };
}

export function makeStore(n: number, dir: string, upstream = "127.0.4.9"): MadeStore {
  for (const d of ["blobs/sha256", "manifests/sha256", "repositories", "tmp"]) mkdirSync(join(dir, d), { recursive: true });
  const writeContent = (kind: "blobs" | "manifests", bytes: Uint8Array) => {
    const digest = digestOf(bytes);
    writeFileSync(join(dir, kind, "sha256", digest.slice(7)), bytes);
    return digest;
  };
  const layers = Array.from({ length: LAYERS }, (_, i) => {
    const bytes = new Uint8Array(randomBytes(1024 + (i % 8) * 1024));
    return { digest: writeContent("blobs", bytes), size: bytes.byteLength };
  });
  const enc = new TextEncoder();
  const manifests = Array.from({ length: MANIFESTS }, (_, i) => {
    const config = enc.encode(JSON.stringify({
      architecture: "amd64", os: "linux", config: { Env: [`N=${i}`] },
      rootfs: { type: "layers", diff_ids: [digestOf(enc.encode(`a${i}`)), digestOf(enc.encode(`b${i}`))] },
    }));
    const l = [layers[i % LAYERS]!, layers[(i * 7 + 3) % LAYERS]!];
    const bytes = enc.encode(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: writeContent("blobs", config), size: config.byteLength },
      layers: l.map((x) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: x.digest, size: x.size })),
    }));
    return { digest: writeContent("manifests", bytes), size: bytes.byteLength };
  });
  const now = Date.now();
  const checked = new Date(now).toISOString();
  const created = new Date(now - 60 * DAY).toISOString();
  let repoDir = "";
  for (let i = 0; i < n; i++) {
    const { repository, tag } = tagOf(i);
    if (i % TAGS_PER_REPO === 0) {
      repoDir = join(dir, "repositories", upstream, repository, "_tags");
      mkdirSync(repoDir, { recursive: true });
    }
    const m = manifests[i % MANIFESTS]!;
    const rec: TagRecord = {
      upstream, repository, tag, digest: m.digest, mediaType: "application/vnd.oci.image.manifest.v1+json", size: m.size,
      created, lastPulled: new Date(now - (i % 60) * DAY - 60_000).toISOString(), checked,
    };
    writeFileSync(join(repoDir, `${tag}.json`), serializeTagRecord(rec));
  }
  return { dir, upstream, tags: n, manifests: MANIFESTS, blobs: MANIFESTS + LAYERS };
}

if (import.meta.main) {
  const [n, dir] = [Number(process.argv[2]), process.argv[3]];
  const i = process.argv.indexOf("--upstream");
  if (!Number.isInteger(n) || n < 1 || !dir) {
    console.error("usage: bun scripts/bench/make-store.ts N DIR [--upstream HOST]");
    process.exit(2);
  }
  const t0 = performance.now();
  const s = makeStore(n, dir, i > 0 ? process.argv[i + 1] : undefined);
  console.log(`${s.tags} tag records, ${s.manifests} manifests, ${s.blobs} blobs in ${s.dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
