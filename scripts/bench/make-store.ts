// Writes a store of N tag records straight into the directory layout (no network, no fsync), in
// one of two shapes. `shared` (the default): 100 tags per repository pointing at a few hundred
// distinct small manifests, each with its own config blob and two layers from a shared pool.
// `distinct` (as in a real cache): every tag is its own image, with its own manifest, its own
// config and one own small layer, plus one layer shared by each group of 20 images.
// Records are `checked` now (a cache with `revalidateAfter: 1h` serves them without asking the
// upstream) and `lastPulled` 0–59 days ago, so `prune --older-than 30d` has about half of them to
// remove and a size-bounded store has an order to evict in.
// Records carry the image summary a pull writes, unless --no-summaries (records as older versions wrote them).
// Usage: bun scripts/bench/make-store.ts N DIR [--upstream 127.0.4.9] [--distinct] [--no-own-layer] [--no-summaries]
import { mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { serializeTagRecord } from "../../src/store/record.ts";
import type { ImageSummary, TagRecord } from "../../src/store/types.ts";

export const TAGS_PER_REPO = 100;
/** Images of a distinct store that share one layer (consecutive tags: a repository's images share a base). */
export const GROUP = 20;
const MANIFESTS = 300;
const LAYERS = 200;
const DAY = 86_400_000;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = "application/vnd.oci.image.config.v1+json";

export type StoreShape = "shared" | "distinct";

export interface MadeStore {
  dir: string;
  upstream: string;
  shape: StoreShape;
  tags: number;
  manifests: number;
  blobs: number;
  /** Bytes of every blob and manifest written (what a size-bounded store counts). */
  bytes: number;
}

/** `bench/r00042` and `t00007` for record i. */
export function tagOf(i: number): { repository: string; tag: string } {
  return {
    repository: `bench/r${String(Math.floor(i / TAGS_PER_REPO)).padStart(5, "0")}`,
    tag: `t${String(i % TAGS_PER_REPO).padStart(5, "0")}`,
  };
}

/** A wrk script asking for a random tag of the first n records (seeded: every run asks the same order). */
export function randomTagsScript(n: number, upstream: string, accept: string): string {
  return `math.randomseed(1)
wrk.headers["Accept"] = "${accept}"
request = function()
  local i = math.random(0, ${n - 1})
  return wrk.format(nil, string.format("/v2/${upstream}/bench/r%05d/manifests/t%05d", math.floor(i / ${TAGS_PER_REPO}), i % ${TAGS_PER_REPO}))
end
`;
}

/** When record i was last pulled: 0–59 days ago (i modulo 60), a minute earlier than that. */
export function lastPulledOf(i: number, now: number): number {
  return now - (i % 60) * DAY - 60_000;
}

interface Described {
  digest: string;
  size: number;
}

/** A manifest written, with what its tag records say of it (the summary a pull writes). */
interface MadeManifest extends Described {
  image: ImageSummary;
}

/** Content-addressed writes, counted: no fsync (a benchmark store, made again on every run). */
class Writer {
  bytes = 0;
  blobs = 0;
  manifests = 0;
  constructor(readonly dir: string) {
    for (const d of ["blobs/sha256", "manifests/sha256", "repositories", "tmp"]) mkdirSync(join(dir, d), { recursive: true });
  }
  content(kind: "blobs" | "manifests", bytes: Uint8Array): Described {
    const digest = digestOf(bytes);
    writeFileSync(join(this.dir, kind, "sha256", digest.slice(7)), bytes);
    this.bytes += bytes.byteLength;
    this[kind]++;
    return { digest, size: bytes.byteLength };
  }
}

const enc = new TextEncoder();

function writeManifest(w: Writer, config: Described, layers: Described[], layerType: string): MadeManifest {
  const m = w.content("manifests", enc.encode(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((x) => ({ mediaType: layerType, digest: x.digest, size: x.size })),
  })));
  const blobs = [config, ...layers];
  const image = { manifest: m.digest, size: m.size + blobs.reduce((a, b) => a + b.size, 0), blobs: blobs.map((b) => b.digest), sizes: blobs.map((b) => b.size) };
  return { ...m, image };
}

/** The 300 manifests every record of a shared store points at (i modulo 300). */
function sharedManifests(w: Writer): MadeManifest[] {
  const layers = Array.from({ length: LAYERS }, (_, i) => w.content("blobs", new Uint8Array(randomBytes(1024 + (i % 8) * 1024))));
  return Array.from({ length: MANIFESTS }, (_, i) => {
    const config = w.content("blobs", enc.encode(JSON.stringify({
      architecture: "amd64", os: "linux", config: { Env: [`N=${i}`] },
      rootfs: { type: "layers", diff_ids: [digestOf(enc.encode(`a${i}`)), digestOf(enc.encode(`b${i}`))] },
    })));
    const l = [layers[i % LAYERS]!, layers[(i * 7 + 3) % LAYERS]!];
    return writeManifest(w, config, l, "application/vnd.oci.image.layer.v1.tar+gzip");
  });
}

/**
 * Image i of a distinct store: its own layer (1–4 KiB), the layer of its group (8–20 KiB), its
 * own config and manifest. Layers are written uncompressed (`.tar`) so a config's diff_ids are
 * the layers' own digests. Contents come from one random pool with the image's name in front:
 * unique per image without generating random bytes for each.
 */
function distinctImages(w: Writer, ownLayer: boolean) {
  const pool = new Uint8Array(randomBytes(32 * 1024));
  const piece = (label: string, size: number) => {
    const head = enc.encode(`${label}\n`);
    const bytes = new Uint8Array(size);
    bytes.set(head);
    bytes.set(pool.subarray(0, size - head.byteLength), head.byteLength);
    return bytes;
  };
  let shared: Described | undefined;
  return (i: number): MadeManifest => {
    if (i % GROUP === 0) shared = w.content("blobs", piece(`group ${i / GROUP}`, 8192 + ((i / GROUP) % 4) * 4096));
    const layers = ownLayer ? [shared!, w.content("blobs", piece(`image ${i}`, 1024 + (i % 4) * 1024))] : [shared!];
    const config = w.content("blobs", enc.encode(JSON.stringify({
      architecture: "amd64", os: "linux", config: { Env: [`N=${i}`] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    })));
    return writeManifest(w, config, layers, "application/vnd.oci.image.layer.v1.tar");
  };
}

/**
 * `summaries: false` writes records as versions before image summaries did (list and prune then
 * read every manifest, as they did then). `ownLayer: false` leaves out a distinct image's own
 * layer (own manifest and config, the group's layer): a quarter fewer files for the largest stores.
 */
export function makeStore(n: number, dir: string, upstream = "127.0.4.9", shape: StoreShape = "shared", opts: { summaries?: boolean; ownLayer?: boolean } = {}): MadeStore {
  const w = new Writer(dir);
  let manifestOf: (i: number) => MadeManifest;
  if (shape === "distinct") manifestOf = distinctImages(w, opts.ownLayer !== false);
  else {
    const manifests = sharedManifests(w);
    manifestOf = (i) => manifests[i % MANIFESTS]!;
  }
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
    const m = manifestOf(i);
    const rec: TagRecord = {
      upstream, repository, tag, digest: m.digest, mediaType: MANIFEST, size: m.size,
      created, lastPulled: new Date(lastPulledOf(i, now)).toISOString(), checked,
      ...(opts.summaries === false ? {} : { image: m.image }),
    };
    writeFileSync(join(repoDir, `${tag}.json`), serializeTagRecord(rec));
  }
  return { dir, upstream, shape, tags: n, manifests: w.manifests, blobs: w.blobs, bytes: w.bytes };
}

if (import.meta.main) {
  const [n, dir] = [Number(process.argv[2]), process.argv[3]];
  const i = process.argv.indexOf("--upstream");
  if (!Number.isInteger(n) || n < 1 || !dir) {
    console.error("usage: bun scripts/bench/make-store.ts N DIR [--upstream HOST] [--distinct] [--no-own-layer] [--no-summaries]");
    process.exit(2);
  }
  const t0 = performance.now();
  const s = makeStore(n, dir, i > 0 ? process.argv[i + 1] : undefined, process.argv.includes("--distinct") ? "distinct" : "shared", {
    summaries: !process.argv.includes("--no-summaries"), ownLayer: !process.argv.includes("--no-own-layer"),
  });
  console.log(`${s.tags} tag records (${s.shape}), ${s.manifests} manifests, ${s.blobs} blobs, ${s.bytes} bytes in ${s.dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
