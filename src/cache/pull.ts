// Pulling a whole image into the store (what `load` and `serve --preload-images` do): the
// manifest or index as the upstream serves it, the platform manifests asked for, and their
// config and layer blobs. It goes through the same cache functions as a client's pull.
import pLimit from "p-limit";
import { isDigest } from "../oci/digest.ts";
import { INDEX_TYPES, type Platform } from "../oci/mediatypes.ts";
import { platformMatches, platformText } from "../oci/platform.ts";
import type { Target } from "../oci/reference.ts";
import { childrenOf } from "../oci/walk.ts";
import type { Blobs } from "./blobs.ts";
import { MAX_INDEX_MANIFESTS, type Manifests } from "./manifests.ts";
import { forEachBounded } from "./bounded.ts";
import { CacheError, inPart, storeFull } from "./errors.ts";
import type { TagBook } from "./records.ts";
import { attachedTags, type Referrers } from "./referrers.ts";

export type PlatformChoice = Platform[] | "all";

export interface PullResult {
  digest: string;
  /** Platform manifests pulled (1 for a single-platform image). */
  images: number;
  blobs: number;
  /** Bytes this pull downloaded (0 when everything was already stored). */
  downloaded: number;
  /** Referrers and cosign artifacts pulled with the image. */
  referrers: number;
}

export interface PullOptions {
  onBytes?: (n: number) => void;
  /** Also every referrer of the image (signatures, attestations) and cosign's `.sig`/`.att`/`.sbom` tags. */
  withReferrers?: boolean;
  /** Pins the image pulled (its tag record, or its pin by digest): eviction never takes it. */
  pinned?: boolean;
}

/** A manifest the store had no room for cannot be part of an image pulled into the store. */
function kept<M extends { passedThrough?: true; digest: string }>(m: M): M {
  if (m.passedThrough) throw storeFull("manifest", m.digest);
  return m;
}

/** Distinct blobs one pull may name, all platforms together; a real image names tens. */
const MAX_PULL_BLOBS = 20_000;
/** Platform manifests of one index fetched at once. */
const MANIFEST_CONCURRENCY = 4;

/** An upstream's platform text, fit for a message: short, control characters escaped. */
const shown = (p: Platform) => JSON.stringify(platformText(p).slice(0, 60)).slice(1, -1);

/** Pulls a whole image (the platforms asked for, their blobs, optionally referrers) into the store. */
export type PullImage = (target: Target, reference: string, platforms: PlatformChoice, opts?: PullOptions) => Promise<PullResult>;

export function createPuller(manifests: Manifests, blobs: Blobs, records: TagBook, referrers: Referrers, blobConcurrency = 4): PullImage {
  /** Blob downloads of every image this puller pulls, together. */
  const limit = pLimit(blobConcurrency);

  /**
   * A manifest (and its platform manifests) with their blobs; `pin` records a pull by digest.
   * Returns the top manifest and the digests of the image manifests pulled.
   */
  async function pullOne(target: Target, reference: string, platforms: PlatformChoice, pin: boolean, opts: PullOptions, result: PullResult) {
    const top = kept(await manifests.get(target, reference, null));
    if (pin && isDigest(reference)) await records.pin(target, top);
    const digests = new Set<string>();
    const addBlobs = (bytes: Uint8Array) => {
      for (const b of childrenOf(bytes).blobs) digests.add(b.digest);
      if (digests.size > MAX_PULL_BLOBS) {
        throw new CacheError("invalid", "manifest", `the image ${top.digest} names more than ${MAX_PULL_BLOBS} blobs (real images name tens); the pull is refused`);
      }
    };
    let images = [top.digest];
    if (INDEX_TYPES.has(top.mediaType)) {
      const listed = childrenOf(top.bytes).manifests;
      if (listed.length > MAX_INDEX_MANIFESTS) {
        throw new CacheError("invalid", "manifest", `the index ${top.digest} lists ${listed.length} manifests; a pull follows at most ${MAX_INDEX_MANIFESTS} `
          + "from one index (real images list tens), so it is refused. Pull the platform manifest you need by digest instead");
      }
      const wanted = listed.filter((m) => platforms === "all" || platforms.some((p) => platformMatches(m.platform, p)));
      const children = [...new Map(wanted.map((c) => [c.digest, c])).values()];
      if (children.length === 0) {
        throw new Error(`no manifest for platform ${platforms === "all" ? "any" : platforms.map(platformText).join(", ")} in the index`);
      }
      // A few at a time: an index names as many children as its upstream likes.
      await forEachBounded(children, MANIFEST_CONCURRENCY, async (c) => {
        try {
          addBlobs(kept(await manifests.get(target, c.digest, null)).bytes);
        } catch (err) {
          throw inPart(err, `platform manifest ${c.digest}${c.platform ? ` (${shown(c.platform)})` : ""}`);
        }
      });
      images = children.map((c) => c.digest);
    } else {
      addBlobs(top.bytes);
    }
    result.images += images.length;
    result.blobs += digests.size;
    await forEachBounded(digests, limit, async (d) => {
      const n = await blobs.ensure(target, d);
      result.downloaded += n;
      if (n) opts.onBytes?.(n);
    });
    return { top, images };
  }

  /** Referrers of each subject and cosign's tags, whole; one level deep (a signature's own signature too). */
  async function pullReferrers(target: Target, subjects: string[], opts: PullOptions, result: PullResult, depth = 0) {
    for (const subject of subjects) {
      const found = [...new Set(await referrers.digests(target, subject))];
      if (found.length > MAX_INDEX_MANIFESTS) {
        throw new CacheError("invalid", "manifest", `${subject} has ${found.length} referrers; a pull follows at most ${MAX_INDEX_MANIFESTS}, so they are refused. `
          + "Load without --with-referrers, or pull the referrers you need by digest");
      }
      for (const d of found) {
        const { top } = await pullOne(target, d, "all", false, opts, result);
        result.referrers++;
        if (depth < 1) await pullReferrers(target, [top.digest], opts, result, depth + 1);
      }
      for (const tag of attachedTags(subject).slice(1)) {
        try {
          await pullOne(target, tag, "all", false, opts, result);
          result.referrers++;
        } catch (err) {
          if (!(err instanceof CacheError && err.failure === "not-found")) throw err;
        }
      }
    }
  }

  return async function pullImage(target: Target, reference: string, platforms: PlatformChoice, opts: PullOptions = {}): Promise<PullResult> {
    const result: PullResult = { digest: "", images: 0, blobs: 0, downloaded: 0, referrers: 0 };
    const { top, images } = await pullOne(target, reference, platforms, true, opts, result);
    result.digest = top.digest;
    if (opts.pinned) await records.setPinned(target, reference, true);
    if (opts.withReferrers) await pullReferrers(target, [...new Set([top.digest, ...images])], opts, result);
    return result;
  };
}
