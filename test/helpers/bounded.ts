// Helpers for the size-bounded store's e2e tests: a tmpfs of a given size, the store's real byte
// count (sampled while pulls run), a filesystem filled by another file, slow readers, and light
// fixture images (pushed, then only their digests kept in memory).
import { closeSync, mkdirSync, openSync, readdirSync, statfsSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { BINARY } from "./binary.ts";
import type { Containerd } from "./clients.ts";
import { makeImage, pushImage } from "./images.ts";
import { run, waitFor } from "./procs.ts";

export const MiB = 1024 * 1024;

/** Mounts a fresh tmpfs of `size` (like `256m`) on `dir`; returns a function that unmounts it. */
export async function mountTmpfs(dir: string, size: string): Promise<() => Promise<void>> {
  mkdirSync(dir, { recursive: true });
  await run(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  return async () => {
    const r = await run(["umount", dir], { allowFail: true });
    if (r.code !== 0) await run(["umount", "-l", dir], { allowFail: true });
  };
}

/**
 * Committed store bytes: the sizes of the files under blobs/ and manifests/ (not tmp/, not the
 * tag records). Both directories are listed before any file is measured, and a file removed
 * in between counts nothing, so a sample taken while eviction runs can only undercount.
 */
export function storeBytes(store: string): number {
  const files: string[] = [];
  for (const top of ["blobs", "manifests"]) {
    try {
      for (const e of readdirSync(join(store, top), { recursive: true, withFileTypes: true })) {
        if (e.isFile()) files.push(join(e.parentPath, e.name));
      }
    } catch {
      // not created yet
    }
  }
  let sum = 0;
  for (const f of files) {
    try {
      sum += statSync(f).size;
    } catch {
      // evicted since it was listed
    }
  }
  return sum;
}

/** Digests (`sha256:<hex>`) of the files under `<store>/<kind>/sha256`. */
export function storedDigests(store: string, kind: "blobs" | "manifests"): Set<string> {
  try {
    return new Set(readdirSync(join(store, kind, "sha256")).map((h) => `sha256:${h}`));
  } catch {
    return new Set();
  }
}

export interface Sampler {
  /** Stops sampling; the largest sample, how many were taken and the longest gap between two. */
  stop(): { max: number; samples: number; longestGapMs: number };
}

/** Samples storeBytes(store) every `everyMs`. */
export function sampleStoreBytes(store: string, everyMs = 100): Sampler {
  let max = 0;
  let samples = 0;
  let last = performance.now();
  let longestGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestGapMs = Math.max(longestGapMs, now - last);
    last = now;
    max = Math.max(max, storeBytes(store));
    samples++;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      max = Math.max(max, storeBytes(store));
      return { max, samples: samples + 1, longestGapMs };
    },
  };
}

/** Free bytes of the filesystem holding `path`, as an unprivileged writer sees them. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

/** Writes `file` until the filesystem holding it has about `leave` bytes free; returns its size. */
export function fillFilesystem(file: string, leave: number): number {
  const chunk = Buffer.alloc(MiB, 0x5a);
  const fd = openSync(file, "w");
  let written = 0;
  try {
    for (let free = freeBytes(file); free > leave; free = freeBytes(file)) {
      const n = Math.min(chunk.byteLength, free - leave);
      written += writeSync(fd, chunk, 0, n);
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** The value of one sample (`name{labels}`) in Prometheus text; null when absent. */
export function metric(text: string, series: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

export const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

/** Waits until the cache's ociregistry_store_bytes equals the bytes really under blobs/ and manifests/; returns them. */
export async function settledBytes(cacheUrl: string, store: string, timeoutMs = 8000): Promise<number> {
  let seen = { metric: null as number | null, real: 0 };
  await waitFor("ociregistry_store_bytes to equal the bytes on disk", async () => {
    seen = { metric: metric(await scrape(cacheUrl), "ociregistry_store_bytes"), real: storeBytes(store) };
    return seen.metric === seen.real;
  }, timeoutMs).catch(() => {
    throw new Error(`ociregistry_store_bytes ${seen.metric} != ${seen.real} bytes under blobs/ and manifests/`);
  });
  return seen.real;
}

export interface ListedRow {
  image: string;
  tag: string;
  digest: string;
  size: number;
  lastPulled: string;
  pinned?: boolean;
}

/** `ociregistry list --json` on a store. */
export async function listStore(store: string, extra: string[] = []): Promise<ListedRow[]> {
  const r = await run([BINARY, "list", "--image-path", store, "--json", ...extra]);
  return JSON.parse(r.stdout) as ListedRow[];
}

/** `ociregistry verify` on a store: exit code and output, never throws. */
export async function verify(store: string) {
  const r = await run([BINARY, "verify", "--image-path", store], { allowFail: true });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** What a test keeps of a pushed image: names and digests, not the bytes. */
export interface Fixture {
  repo: string;
  tag: string;
  digest: string;
  /** Digests of the config and the layer. */
  blobs: string[];
  layer: string;
  layerSize: number;
  /** Bytes of the manifest, config and layer. */
  size: number;
}

/** Makes one image with a random `layerBytes` layer, pushes it as `repo:tag`, keeps its digests. */
export async function pushFixture(base: string, repo: string, layerBytes: number, tag = "v1"): Promise<Fixture> {
  const img = makeImage({ content: layerBytes, uncompressed: true });
  await pushImage({ base }, repo, tag, img);
  return {
    repo, tag, digest: img.digest, blobs: img.blobs.map((b) => b.digest), layer: img.blobs[1]!.digest, layerSize: img.blobs[1]!.bytes.byteLength,
    size: img.manifest.byteLength + img.blobs.reduce((n, b) => n + b.bytes.byteLength, 0),
  };
}

/** Whether the store holds the image completely: manifest, config and layer files. */
export function holds(store: string, f: Fixture): boolean {
  const blobs = storedDigests(store, "blobs");
  return storedDigests(store, "manifests").has(f.digest) && f.blobs.every((d) => blobs.has(d));
}

/** ctr pull through the mirror, then removes the image and its content again (sync GC), so the next pull of it is cold for containerd. */
export async function ctrPullCold(ctr: Containerd, ref: string, upstreamHost: string, mirrorUrl: string): Promise<string> {
  const digest = await ctr.pull(ref, upstreamHost, mirrorUrl);
  await run(["ctr", "--address", ctr.address, "-n", "test", "images", "rm", "--sync", ref]);
  return digest;
}

/**
 * Reads a response body slowly (a pause of `pauseMs` after every MiB) and hashes it; `onProgress`
 * hears the bytes read so far.
 */
export async function slowSha256(res: Response, pauseMs: number, onProgress?: (read: number) => void): Promise<{ digest: string; bytes: number }> {
  const h = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  let nextPause = MiB;
  for await (const c of res.body!) {
    h.update(c);
    bytes += c.byteLength;
    onProgress?.(bytes);
    while (bytes >= nextPause) {
      nextPause += MiB;
      await Bun.sleep(pauseMs);
    }
  }
  return { digest: `sha256:${h.digest("hex")}`, bytes };
}

/** Runs `jobs` with at most `n` at a time, in order of the array; rejects with the first failure after all ran. */
export async function inBatches<T>(n: number, jobs: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += n) out.push(...await Promise.all(jobs.slice(i, i + n).map((j) => j())));
  return out;
}
