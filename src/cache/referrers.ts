// Referrers (OCI 1.1: signatures, SBOMs, attestations) pulled through and kept: the upstream's
// referrers index for a digest is stored as a manifest and recorded under the spec's fallback tag
// `<alg>-<hex>`, so it is served from the store when the upstream is down or the cache is
// air-gapped, travels with export, and goes with its subject in prune. An upstream without the
// referrers API is asked for that tag instead, as clients do. The artifactType filter is applied
// here, whatever the upstream did.
import { digestOf } from "../oci/digest.ts";
import { MAX_MANIFEST_BYTES, OCI_INDEX, parseManifest } from "../oci/mediatypes.ts";
import type { Target } from "../oci/reference.ts";
import { contentLength, discardBody, readBody } from "../upstream/body.ts";
import { askWithinBudget } from "./bounded.ts";
import type { CacheContext } from "./context.ts";
import { isStoreFull } from "../store/usage.ts";
import { CacheError } from "./errors.ts";
import { manifestBudgetWeight, type Manifests } from "./manifests.ts";

export const EMPTY_REFERRERS = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });

/** The tag the spec's fallback scheme gives the referrers index of a digest: `sha256-<hex>`. */
export function referrersTag(digest: string): string {
  return digest.replace(":", "-");
}

/** Tags cosign and the fallback scheme hang on a subject: the index, `.sig`, `.att`, `.sbom`. */
export function attachedTags(digest: string): string[] {
  const t = referrersTag(digest);
  return [t, `${t}.sig`, `${t}.att`, `${t}.sbom`];
}

interface Descriptor {
  digest?: unknown;
  artifactType?: unknown;
  mediaType?: unknown;
}

function filter(bytes: Uint8Array, artifactType: string | null): { body: string; filtered: boolean } {
  const index = parseManifest(bytes) as { manifests?: Descriptor[] } | null;
  if (!artifactType || !index) return { body: new TextDecoder().decode(bytes), filtered: false };
  const manifests = (Array.isArray(index.manifests) ? index.manifests : []).filter((m) => m?.artifactType === artifactType);
  return { body: JSON.stringify({ ...index, manifests }), filtered: true };
}

/** The cache's referrers of a digest (signatures, SBOMs, attestations). */
export interface Referrers {
  /** The referrers index of a digest, filtered by artifactType when one is given. */
  list(target: Target, digest: string, artifactType: string | null): Promise<{ body: string; filtered: boolean }>;
  /** Digests of a subject's referrers (for load --with-referrers). */
  digests(target: Target, digest: string): Promise<string[]>;
}

export function createReferrers(ctx: CacheContext, manifests: Manifests): Referrers {
  /** The stored referrers index of a digest, if any. */
  async function stored(target: Target, digest: string): Promise<Uint8Array | null> {
    const rec = await ctx.records.get(target, referrersTag(digest));
    return rec ? ctx.store.readManifest(rec.digest) : null;
  }

  /** Keeps an index the upstream sent, unless it is what the store holds already. */
  async function keep(target: Target, digest: string, bytes: Uint8Array) {
    const indexDigest = digestOf(bytes);
    manifests.adopt(target, bytes);
    const rec = await ctx.records.get(target, referrersTag(digest));
    if (rec?.digest === indexDigest) return ctx.records.pulled(rec, true);
    try {
      await ctx.store.writeManifest(indexDigest, bytes);
    } catch (err) {
      // No room: the client gets the index all the same, and nothing points at what was not kept.
      if (!isStoreFull(err)) throw err;
      return ctx.quota.passedThrough(`the referrers of ${target.upstream}/${target.repository}@${digest}`);
    }
    await ctx.records.record(target, referrersTag(digest), { digest: indexDigest, mediaType: OCI_INDEX, bytes }, rec);
  }

  /** The upstream's referrers of a digest: from its API, else from the fallback tag; null when it has none. */
  async function fromUpstream(target: Target, digest: string, hold: (release: () => void) => void): Promise<Uint8Array | null> {
    // A large index's share of the budget is held until the caller has stored and filtered it:
    // each parse costs several times its size.
    const ask = () => ctx.upstreams.request(target.upstream, {
      method: "GET", repository: target.repository, path: `referrers/${digest}`, headers: { Accept: OCI_INDEX },
    });
    const { res, release } = await askWithinBudget(ctx.manifestBudget(target.upstream), ask, (r) => (r.ok ? manifestBudgetWeight(contentLength(r)) : 0), ctx.pullTimeoutMs);
    if (release) hold(release);
    if (res.ok) {
      const bytes = await readBody(res, target.upstream, `the referrers of ${digest}`, { maxBytes: MAX_MANIFEST_BYTES, idleMs: ctx.pullTimeoutMs, deadlineMs: ctx.pullTimeoutMs });
      if (!Array.isArray((parseManifest(bytes) as { manifests?: unknown } | null)?.manifests)) {
        throw new CacheError("invalid", "manifest", `upstream ${target.upstream} sent referrers of ${digest} that are not an image index`);
      }
      return bytes;
    }
    discardBody(res);
    if (res.status !== 404) throw new CacheError("unreachable", "manifest", `upstream ${target.upstream} answered HTTP ${res.status} for the referrers of ${digest}`);
    // No referrers API: the fallback tag, as clients push it for such registries.
    try {
      return (await manifests.get(target, referrersTag(digest), OCI_INDEX)).bytes;
    } catch (err) {
      if (err instanceof CacheError && err.failure === "not-found") return null;
      throw err;
    }
  }

  /** See Referrers.list. */
  async function list(target: Target, digest: string, artifactType: string | null): Promise<{ body: string; filtered: boolean }> {
    if (!ctx.airGapped) {
      let release: (() => void) | null = null;
      try {
        const bytes = await fromUpstream(target, digest, (r) => (release = r));
        if (bytes) {
          await keep(target, digest, bytes);
          return filter(bytes, artifactType);
        }
      } catch (err) {
        ctx.log.debug(`referrers of ${digest} from ${target.upstream}: ${(err as Error).message}; serving what the store holds`);
      } finally {
        (release as (() => void) | null)?.();
      }
    }
    const kept = await stored(target, digest);
    return kept ? filter(kept, artifactType) : { body: EMPTY_REFERRERS, filtered: !!artifactType };
  }

  return {
    list,
    async digests(target: Target, digest: string): Promise<string[]> {
      const { body } = await list(target, digest, null);
      const index = JSON.parse(body) as { manifests?: Descriptor[] };
      return (index.manifests ?? []).map((m) => m?.digest).filter((d): d is string => typeof d === "string");
    },
  };
}
