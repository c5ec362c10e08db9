// Images served straight from a directory of `.oci` archives: the directory is scanned (at start,
// every `rescan`, and on demand), a file is indexed when first asked for (offsets and sizes of its
// entries only) and re-indexed when its inode, size or mtime changed; every request stats the
// file it uses, so a deleted file is gone at once. Blobs are byte ranges of the archive file.
// A damaged or compressed archive, or a file whose real path lies outside the directory, is
// reported once per version of the file, and skipped. A blob is served only once its bytes were
// checked against its digest (see verify.ts).
import { realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { BoundedMap } from "../lib/bounded-map.ts";
import { digestOf, isDigest, parseDigest } from "../oci/digest.ts";
import { MAX_MANIFEST_BYTES, detectMediaType, isSchema1, isServableManifestType, parseManifest } from "../oci/mediatypes.ts";
import type { Target } from "../oci/reference.ts";
import { candidates, chooseImage } from "./candidates.ts";
import { ArchiveError, readArchive, stampOf, type ArchiveIndex, type BlobLocation } from "./layout.ts";
import { archiveImages, type ArchiveListedImage } from "./list.ts";
import { isInside, scanArchives, type ArchiveListing, type ScanLimits } from "./scan.ts";
import type { TarLimits } from "./tar.ts";
import { createBlobVerifier, type BlobVerifierOptions } from "./verify.ts";

export interface ArchiveLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export interface ArchiveSourceOptions {
  log: ArchiveLogger;
  /** Archive indexes kept in memory (least recently used out first). */
  maxIndexes?: number;
  /** Entries (blobs and images) of all kept indexes together. */
  maxIndexedEntries?: number;
  scanLimits?: ScanLimits;
  tarLimits?: TarLimits;
  verify?: BlobVerifierOptions;
}

export interface ArchiveManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

export interface ArchiveBlob {
  size: number;
  file: Blob;
}

export interface ScanSummary {
  files: number;
  ms: number;
  /** Directories that could not be read, limits reached (each also logged once). */
  problems: string[];
}

/** A directory of archives: what the cache consults first (manifest, blob), plus rescan and images. */
export interface Archives {
  readonly dir: string;
  /** `.oci` files found by the last scan. */
  readonly files: number;
  /** Scans the directory again (one scan at a time); forgets indexes of files no longer there. */
  rescan(): Promise<ScanSummary>;
  /** A manifest by tag or digest from the archives `target` maps to; null when none holds it. */
  manifest(target: Target, reference: string): Promise<ArchiveManifest | null>;
  /** Any content (blob or manifest) by digest from the archives `target` maps to, as a slice of the file. */
  blob(target: Target, digest: string): Promise<ArchiveBlob | null>;
  /** Every image of every listed archive, for `list` and the admin API; damaged files are reported to `onSkipped`. */
  images(onSkipped?: (abs: string, problem: string) => void): Promise<ArchiveListedImage[]>;
}

/** An archive as it is now: its index, or why it is not served. */
export type ArchiveState = { index: ArchiveIndex; abs: string } | { index: null; abs: string; problem: string | null };

export function createArchiveSource(dir: string, opts: ArchiveSourceOptions): Archives {
  const log = opts.log;
  let listing: ArchiveListing = new Map();
  let listed = new Set<string>();
  /** The directory's real path, from the last scan: no file is served from outside it. */
  let root: string | null = null;
  const verifier = createBlobVerifier(opts.verify);
  const indexes = new BoundedMap<string, ArchiveIndex>(opts.maxIndexes ?? 64, opts.maxIndexedEntries ?? 1_000_000, (i) => i.blobs.size + i.images.length);
  /** File → the version (stamp) found bad and reported, with why, so it is reported once. */
  const refused = new BoundedMap<string, { stamp: string; problem: string }>(10_000);
  const indexing = new Map<string, Promise<ArchiveIndex | null>>();
  const scanProblems = new BoundedMap<string, true>(1000);
  let scanning: Promise<ScanSummary> | null = null;

  function refuse(rel: string, stamp: string, problem: string) {
    indexes.delete(rel);
    if (refused.get(rel)?.stamp === stamp) return;
    refused.set(rel, { stamp, problem });
    log.warn(`archive ${join(dir, rel)} ${problem}; not served until it changes`);
  }

  async function index(rel: string, abs: string, stamp: string, previous: ArchiveIndex | undefined): Promise<ArchiveIndex | null> {
    try {
      // Checked at every new version of the file: a link retargeted outside gets a new stamp.
      // The real path is what is indexed and read, so no link is followed after this check.
      const real = await realpath(abs);
      if (!root || !isInside(root, real)) {
        refuse(rel, stamp, `is a link to ${real}, outside the archives directory`);
        return null;
      }
      const idx = await readArchive(real, opts.tarLimits);
      indexes.set(rel, idx);
      refused.delete(rel);
      const what = `${idx.images.length} image(s), ${idx.blobs.size} blob(s)`;
      if (previous) log.info(`archive ${abs} changed; re-indexed: ${what}`);
      else log.debug(`indexed archive ${abs}: ${what}`);
      return idx;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT") return null;
      refuse(rel, stamp, err instanceof ArchiveError ? err.message : `cannot be read: ${e.code ?? e.message}`);
      return null;
    }
  }

  /** A listed file as it is now, re-indexed when it changed; never throws. */
  async function state(rel: string): Promise<ArchiveState> {
    const abs = join(dir, rel);
    let st;
    try {
      st = await stat(abs);
    } catch (err) {
      indexes.delete(rel);
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") refuse(rel, `stat ${code}`, `cannot be read: ${code}`);
      return { index: null, abs, problem: code === "ENOENT" ? "deleted" : `cannot be read: ${code}` };
    }
    if (!st.isFile()) return { index: null, abs, problem: "is not a regular file" };
    const stamp = stampOf(st);
    const known = indexes.get(rel);
    if (known?.stamp === stamp) return { index: known, abs };
    const bad = refused.get(rel);
    if (bad?.stamp === stamp) return { index: null, abs, problem: bad.problem };
    const key = `${rel}\n${stamp}`;
    let p = indexing.get(key);
    if (!p) {
      p = index(rel, abs, stamp, known).finally(() => indexing.delete(key));
      indexing.set(key, p);
    }
    const idx = await p;
    return idx ? { index: idx, abs } : { index: null, abs, problem: refused.get(rel)?.problem ?? null };
  }

  /** The manifest at `at`, verified; `required`: the archive is damaged when it is not a manifest. */
  async function manifestAt(rel: string, idx: ArchiveIndex, digest: string, at: BlobLocation, declared: string, required: boolean): Promise<ArchiveManifest | null> {
    if (at.size > MAX_MANIFEST_BYTES) {
      if (required) refuse(rel, idx.stamp, `holds manifest ${digest} larger than ${MAX_MANIFEST_BYTES} bytes`);
      return null;
    }
    let bytes: Uint8Array;
    try {
      bytes = await Bun.file(idx.path).slice(at.offset, at.offset + at.size).bytes();
    } catch {
      return null;
    }
    if (bytes.byteLength !== at.size || digestOf(bytes, parseDigest(digest)!.algorithm) !== digest) {
      refuse(rel, idx.stamp, `holds ${digest} with content that does not match that digest`);
      return null;
    }
    const parsed = parseManifest(bytes);
    const mediaType = (parsed && detectMediaType(parsed)) || declared;
    if (!parsed || !mediaType || isSchema1(mediaType) || !isServableManifestType(mediaType)) {
      if (required) refuse(rel, idx.stamp, `names ${digest} in index.json, which is not a manifest this cache serves`);
      return null;
    }
    return { bytes, mediaType, digest };
  }

  const source: Archives = {
    dir,
    get files(): number {
      return listed.size;
    },
    rescan(): Promise<ScanSummary> {
      scanning ??= (async () => {
        const t0 = performance.now();
        const r = await scanArchives(dir, opts.scanLimits);
        listing = r.listing;
        root = r.root;
        listed = new Set([...r.listing].flatMap(([d, fs]) => fs.map((f) => (d ? `${d}/${f}` : f))));
        indexes.sweep((_, rel) => !listed.has(rel));
        refused.sweep((_, rel) => !listed.has(rel));
        for (const p of r.problems) {
          if (!scanProblems.has(p)) log.warn(`archives: ${p}`);
          scanProblems.set(p, true);
        }
        return { files: listed.size, ms: Math.round(performance.now() - t0), problems: r.problems };
      })().finally(() => (scanning = null));
      return scanning;
    },
    async manifest(target: Target, reference: string): Promise<ArchiveManifest | null> {
      if (listed.size === 0) return null;
      const byDigest = isDigest(reference);
      for (const c of candidates(listing, target, byDigest ? null : reference)) {
        const { index: idx } = await state(c.path);
        if (!idx) continue;
        const image = byDigest ? null : chooseImage(idx.images, c, target, reference);
        const digest = byDigest ? reference : image?.digest;
        const at = digest ? idx.blobs.get(digest) : undefined;
        if (!digest || !at) continue;
        const m = await manifestAt(c.path, idx, digest, at, image?.mediaType ?? "", !byDigest);
        if (m) return m;
      }
      return null;
    },
    async blob(target: Target, digest: string): Promise<ArchiveBlob | null> {
      if (listed.size === 0) return null;
      for (const c of candidates(listing, target, null)) {
        const { index: idx } = await state(c.path);
        const at = idx?.blobs.get(digest);
        if (!idx || !at) continue;
        // Verified before anything is sent, so a mismatch goes on to the next archive, the store
        // or the upstream instead of cutting a response short. The file was stat'ed just now;
        // were it replaced before the bytes go out, the client's digest check would catch it.
        const verdict = await verifier.check(idx.path, idx.stamp, digest, at);
        if (verdict === "mismatch") refuse(c.path, idx.stamp, `holds ${digest} with content that does not match that digest`);
        if (verdict === "ok") return { size: at.size, file: Bun.file(idx.path).slice(at.offset, at.offset + at.size) };
      }
      return null;
    },
    async images(onSkipped?: (abs: string, problem: string) => void): Promise<ArchiveListedImage[]> {
      const out: ArchiveListedImage[] = [];
      for (const rel of [...listed].sort()) {
        const s = await state(rel);
        if (!s.index) {
          if (s.problem) onSkipped?.(s.abs, s.problem);
          continue;
        }
        try {
          out.push(...(await archiveImages(rel, s.abs, s.index)));
        } catch (err) {
          onSkipped?.(s.abs, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      return out;
    },
  };
  return source;
}
