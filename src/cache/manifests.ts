// Manifests through the cache: by digest from memory or disk (never upstream once stored), by tag
// from the tag record, revalidated with HEAD after `revalidateAfterMs`, fetched when cold or moved.
import { childrenOf } from "../oci/walk.ts";
import { digestOf, isDigest, parseDigest } from "../oci/digest.ts";
import {
  MANIFEST_TYPES, MAX_MANIFEST_BYTES, bareMediaType, detectMediaType, isSchema1, isServableManifestType, parseManifest, type ManifestShape,
} from "../oci/mediatypes.ts";
import { recordName } from "../store/record.ts";
import type { TagRecord } from "../store/types.ts";
import { isStoreFull } from "../store/usage.ts";
import { contentLength, discardBody, readBody } from "../upstream/body.ts";
import type { Target } from "../oci/reference.ts";
import { askWithinBudget } from "./bounded.ts";
import type { CacheContext, Served } from "./context.ts";
import { CacheError, fromUpstream, fromUpstreamStatus } from "./errors.ts";
import type { MemoryManifest } from "./memory.ts";
import { ManifestParts, partKey } from "./parts.ts";

/** A manifest for a client; `passedThrough` when the store had no room and it was not kept. */
export type ManifestResult = MemoryManifest & { passedThrough?: true };

/** The cache's manifests: what clients pull, and what a pull into the store teaches it. */
export interface Manifests {
  /** A manifest by tag or digest; concurrent requests for the same one share one upstream fetch. `served` learns how it was served. */
  get(target: Target, reference: string, clientAccept: string | null, served?: Served): Promise<ManifestResult>;
  /** Treats an index's manifests as parts of it in `target`: fetched by digest there, they get no record of their own. */
  adopt(target: Target, bytes: Uint8Array): void;
  /**
   * Forgets that a record of `target` covered `digest` (and, when its bytes are at hand, an
   * index's platform manifests): its record was evicted or pruned, so a pull by digest from now
   * on is a pin of its own.
   */
  uncover(target: Target, digest: string, children?: readonly string[]): void;
}

/** Blobs of one image passed through whole that are remembered as passing through (a real image names tens). */
const MAX_PASSED_BLOBS = 1000;
/** Manifests (by upstream, repository and digest) known as covered by a record or as remembered (see `parts`). */
const MAX_COVERED = 20_000;

/**
 * Manifests of one index (or one subject's referrers) the cache follows or remembers. Real indexes
 * list tens (each platform, often with an attestation beside it); thousands mean a broken or
 * hostile upstream, which must not evict what every other upstream's indexes taught the cache.
 */
export const MAX_INDEX_MANIFESTS = 1000;

/** Manifests up to this size (nearly all: an image's is a few KiB) are read outside the budget below. */
const SMALL_MANIFEST_BYTES = 256 * 1024;
/** Bytes of larger manifests read and parsed at once, process-wide: two of the largest. */
export const MANIFEST_BUDGET_BYTES = 2 * MAX_MANIFEST_BYTES;

/** A manifest's share of the budget: none when small or refused unread, the most when unannounced. */
export function manifestBudgetWeight(announced: number | null): number {
  if (announced !== null && (announced <= SMALL_MANIFEST_BYTES || announced > MAX_MANIFEST_BYTES)) return 0;
  return announced ?? MAX_MANIFEST_BYTES;
}


/** Accept header sent upstream: what the client accepts plus every type we cache. */
export function upstreamAccept(clientAccept: string | null): string {
  const types = new Set<string>();
  for (const part of (clientAccept ?? "").split(",")) {
    const t = bareMediaType(part);
    if (t && t !== "*/*" && !isSchema1(t)) types.add(t);
  }
  for (const t of MANIFEST_TYPES) types.add(t);
  return [...types].join(", ");
}

export function createManifests(ctx: CacheContext): Manifests {
  /** Fetches running, with how their first asker is served (joiners are served alike). */
  const inflight = new Map<string, { p: Promise<ManifestResult>; served: Served | undefined }>();
  /**
   * Manifests a record of an upstream covers in a repository, seen lately: its tags' targets and
   * their platform manifests. Pulled by digest through that same upstream and repository, one is
   * part of the tagged image, not a pin of its own; through any other, it is not covered.
   */
  const parts = new ManifestParts(MAX_COVERED);

  function fromBytes(digest: string, bytes: Uint8Array, contentType?: string | null, parsed = parseManifest(bytes)): ManifestResult {
    const detected = parsed ? detectMediaType(parsed) : null;
    const mediaType = detected ?? bareMediaType(contentType);
    return { bytes, mediaType, digest };
  }

  /** Notes an index's platform manifests as parts of it, for that upstream and repository only. */
  function notePlatforms(target: Target, children: ReadonlyArray<{ digest?: unknown }>) {
    for (const c of children.slice(0, MAX_INDEX_MANIFESTS)) if (typeof c?.digest === "string") parts.cover(partKey(target, c.digest));
  }

  /**
   * Remembers what a manifest that `target.upstream` vouched for (fetched from it, or its tag
   * record) declares: blob sizes, keyed by that upstream, so its downloads can be held to them;
   * and an index's platform manifests, as parts of it in that upstream's repository.
   */
  function remember(target: Target, m: ManifestResult, parsed?: ManifestShape, key = partKey(target, m.digest)) {
    // Once per upstream, repository and manifest: a warm tag must not parse its manifest on every pull.
    if (!parts.remember(key)) return;
    const shape = parsed ?? parseManifest(m.bytes);
    if (!shape) return;
    const listed = (shape.manifests ?? []).slice(0, MAX_INDEX_MANIFESTS);
    for (const d of [...listed, ...(shape.config ? [shape.config] : []), ...(shape.layers ?? [])]) {
      if (typeof d?.digest === "string" && Number.isSafeInteger(d.size) && d.size >= 0) ctx.declaredSizes.set(`${target.upstream} ${d.digest}`, d.size);
    }
    notePlatforms(target, listed);
  }

  /**
   * A pull by digest through `target` counts for that upstream, wherever the bytes came from
   * (memory, the store, a fetch): it touches the upstream's pin record, or makes one unless a
   * tag of this same upstream in this repository covers the manifest (points at it, or at an
   * index listing it). Another upstream's index or tag naming the digest changes nothing here.
   */
  async function pulledByDigest(target: Target, m: ManifestResult) {
    // An index pulled by digest makes its platform manifests parts of it here, as by tag; the
    // bytes are the digest's, so what they declare holds whoever fetched them first.
    const key = partKey(target, m.digest);
    remember(target, m, undefined, key);
    await ctx.records.pulledByDigest(target, m, parts.covered(key));
  }

  function revalidateAfter(target: Target, tag: string): number {
    if (!ctx.tagPolicies.length) return ctx.revalidateAfterMs;
    const key = recordName({ upstream: target.upstream, repository: target.repository, tag });
    return ctx.tagPolicies.find((p) => p.match.test(key))?.revalidateAfterMs ?? ctx.revalidateAfterMs;
  }

  async function stored(digest: string): Promise<ManifestResult | null> {
    const hot = ctx.memory.get(digest);
    if (hot) return hot;
    const bytes = await ctx.store.readManifest(digest);
    if (!bytes) return null;
    const m = fromBytes(digest, bytes);
    ctx.memory.set(m);
    return m;
  }

  /** GETs a manifest from upstream, verifies it and stores it. */
  async function fetchAndStore(target: Target, reference: string, clientAccept: string | null): Promise<ManifestResult> {
    const where = `${target.upstream}/${target.repository}:${reference}`;
    const ask = async () => {
      let res: Response;
      try {
        res = await ctx.upstreams.request(target.upstream, {
          method: "GET", repository: target.repository, path: `manifests/${reference}`, headers: { Accept: upstreamAccept(clientAccept) },
        });
      } catch (err) {
        throw fromUpstream(err, "manifest");
      }
      if (!res.ok) {
        discardBody(res);
        throw fromUpstreamStatus(res.status, target.upstream, where, "manifest");
      }
      return res;
    };
    // Large manifests are read and parsed a few at a time: parsing one costs several times its
    // size, and a hostile upstream can send many of the largest at once.
    const { res, release } = await askWithinBudget(ctx.manifestBudget(target.upstream), ask, (r) => manifestBudgetWeight(contentLength(r)), ctx.pullTimeoutMs);
    try {
      return await readAndStore(target, reference, res, where);
    } finally {
      // The garbage of a large parse is returned before the next one piles more on it.
      if (release) (release(), Bun.gc(true));
    }
  }

  async function readAndStore(target: Target, reference: string, res: Response, where: string): Promise<ManifestResult> {
    let bytes: Uint8Array;
    try {
      bytes = await readBody(res, target.upstream, `the manifest ${where}`, {
        maxBytes: MAX_MANIFEST_BYTES, idleMs: ctx.pullTimeoutMs, deadlineMs: ctx.pullTimeoutMs,
      });
    } catch (err) {
      throw fromUpstream(err, "manifest");
    }
    const headerDigest = res.headers.get("docker-content-digest");
    const wanted = isDigest(reference) ? reference : headerDigest && isDigest(headerDigest) ? headerDigest : null;
    const algorithm = wanted ? parseDigest(wanted)!.algorithm : "sha256";
    const digest = digestOf(bytes, algorithm);
    if (wanted && digest !== wanted) {
      throw new CacheError("invalid", "manifest", `upstream manifest for ${where} does not match digest ${wanted}`);
    }
    const parsed = parseManifest(bytes);
    const m = fromBytes(digest, bytes, res.headers.get("content-type"), parsed);
    if (isSchema1(m.mediaType)) {
      throw new CacheError("unsupported", "manifest", `${where} is a Docker schema 1 manifest, which is obsolete and not supported`);
    }
    if (!parsed || !m.mediaType) {
      throw new CacheError("invalid", "manifest", `upstream sent a manifest for ${where} that is not a JSON manifest`);
    }
    if (!isServableManifestType(m.mediaType)) {
      throw new CacheError("invalid", "manifest", `upstream sent a manifest for ${where} whose media type ${JSON.stringify(m.mediaType.slice(0, 100))} is not a manifest type`);
    }
    ctx.observe.miss?.("manifest");
    // An image the store cannot hold whole is passed through whole: no record of an image whose
    // layers were never kept. What it declares is only its upstream's word, and only a bound.
    const declared = [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])].slice(0, MAX_PASSED_BLOBS);
    const blobs = declared.map((d) => (Number.isSafeInteger(d?.size) && d.size > 0 ? d.size : 0));
    const total = bytes.byteLength + blobs.reduce((a, b) => a + b, 0);
    if (!(await ctx.quota.canHold(total, Math.max(0, ...blobs)))) {
      ctx.quota.passedThrough(where);
      // Its blobs are passed through too when clients ask for them: none is kept without its image.
      for (const d of declared) if (typeof d?.digest === "string") ctx.passingThrough.set(`${target.upstream} ${d.digest}`, true);
      return { ...m, passedThrough: true };
    }
    try {
      await ctx.store.writeManifest(digest, bytes);
    } catch (err) {
      if (!isStoreFull(err)) throw err;
      // No room: the client gets it all the same; nothing is kept, so nothing (memory, a record) may point at it.
      ctx.quota.passedThrough(`${where}`);
      return { ...m, passedThrough: true };
    }
    // Stored now: its blobs are stored when asked for (an earlier pass-through of it is over).
    if (ctx.passingThrough.size) for (const d of declared) if (typeof d?.digest === "string") ctx.passingThrough.delete(`${target.upstream} ${d.digest}`);
    ctx.memory.set(m);
    remember(target, m, parsed);
    return m;
  }

  /** Asks upstream (HEAD) whether a cached tag still points where it did. */
  async function stillCurrent(target: Target, rec: TagRecord, clientAccept: string | null): Promise<boolean | "unknown"> {
    try {
      const res = await ctx.upstreams.request(target.upstream, {
        method: "HEAD", repository: target.repository, path: `manifests/${rec.tag}`, headers: { Accept: upstreamAccept(clientAccept) },
      });
      discardBody(res);
      if (!res.ok) {
        ctx.log.warn(`serving cached ${target.upstream}/${target.repository}:${rec.tag}: upstream answered HTTP ${res.status} to revalidation`);
        return "unknown";
      }
      const d = res.headers.get("docker-content-digest");
      return d === rec.digest;
    } catch (err) {
      ctx.log.warn(`serving cached ${target.upstream}/${target.repository}:${rec.tag}: ${(err as Error).message}`);
      return "unknown";
    }
  }

  async function byTag(target: Target, tag: string, accept: string | null, served: Served | undefined): Promise<ManifestResult> {
    const rec = await ctx.records.get(target, tag);
    const nowMs = ctx.now();
    if (rec) {
      const m = await stored(rec.digest);
      if (m) {
        // A warm tag writes nothing here once known: a set on every hit churns a map of every tag.
        const key = partKey(target, m.digest);
        remember(target, m, undefined, key);
        parts.cover(key);
        const fresh = nowMs - Date.parse(rec.checked) < revalidateAfter(target, tag);
        if (fresh || ctx.airGapped) {
          ctx.records.pulled(rec, false);
          ctx.observe.hit?.("manifest");
          if (served) served.cache = "hit";
          return m;
        }
        const current = await stillCurrent(target, rec, accept);
        if (current !== false) {
          ctx.records.pulled(rec, current === true);
          ctx.observe.hit?.("manifest");
          if (served) served.cache = current === true ? "hit" : "stale";
          return m;
        }
        ctx.log.info(`tag ${target.upstream}/${target.repository}:${tag} moved upstream; fetching it again`);
      }
    }
    if (served) served.cache = "miss";
    if (ctx.airGapped) {
      throw new CacheError("air-gapped", "manifest", `${target.upstream}/${target.repository}:${tag} is not cached and the cache is air-gapped`);
    }
    const m = await fetchAndStore(target, tag, accept);
    if (m.passedThrough) {
      if (served) served.cache = "passthrough";
      return m;
    }
    await ctx.records.record(target, tag, m, rec);
    // A tag that moved no longer covers what it pointed at: pulled by digest, that is a pin now.
    if (rec && rec.digest !== m.digest) parts.uncover(partKey(target, rec.digest));
    parts.cover(partKey(target, m.digest));
    ctx.log.info(`cached ${target.upstream}/${target.repository}:${tag} (${m.digest})`);
    return m;
  }

  async function byDigest(target: Target, digest: string, accept: string | null, served: Served | undefined): Promise<ManifestResult> {
    const m = await stored(digest);
    if (m) {
      ctx.observe.hit?.("manifest");
      if (served) served.cache = "hit";
      await pulledByDigest(target, m);
      return m;
    }
    if (served) served.cache = "miss";
    if (ctx.airGapped) {
      throw new CacheError("air-gapped", "manifest", `${target.upstream}/${target.repository}@${digest} is not cached and the cache is air-gapped`);
    }
    const fetched = await fetchAndStore(target, digest, accept);
    if (fetched.passedThrough) {
      if (served) served.cache = "passthrough";
      return fetched;
    }
    // A pull by digest alone (how Kubernetes pulls pinned images) gets a record of its own, so
    // list, prune and export know it; a manifest a tag covers is part of that tag's image.
    await pulledByDigest(target, fetched);
    return fetched;
  }

  /** A joiner is served as the first asker was (a pull into the store, which has no `served`, is a fetch: miss). */
  function joined(running: { p: Promise<ManifestResult>; served: Served | undefined }, served: Served): Promise<ManifestResult> {
    const copy = () => void (served.cache = running.served ? running.served.cache : "miss");
    return running.p.then((m) => (copy(), m), (err: unknown) => {
      copy();
      throw err;
    });
  }

  return {
    uncover(target: Target, digest: string, children?: readonly string[]) {
      parts.uncover(partKey(target, digest));
      const known = children ?? (ctx.memory.get(digest) ? childrenOf(ctx.memory.get(digest)!.bytes).manifests.map((m) => m.digest) : []);
      for (const c of known) parts.uncover(partKey(target, c));
    },
    adopt(target: Target, bytes: Uint8Array) {
      notePlatforms(target, childrenOf(bytes).manifests);
    },
    get(target: Target, reference: string, clientAccept: string | null, served?: Served): Promise<ManifestResult> {
      if (isDigest(reference)) {
        const hot = ctx.memory.get(reference);
        if (hot) {
          ctx.observe.hit?.("manifest");
          if (served) served.cache = "hit";
          return pulledByDigest(target, hot).then(() => hot);
        }
      }
      const key = `${target.upstream} ${target.repository} ${reference}`;
      const running = inflight.get(key);
      if (running) return served ? joined(running, served) : running.p;
      const p = (isDigest(reference) ? byDigest(target, reference, clientAccept, served) : byTag(target, reference, clientAccept, served))
        .finally(() => inflight.delete(key));
      inflight.set(key, { p, served });
      return p;
    },
  };
}
