// Referrers (OCI 1.1): passed through from the upstream when it supports them, otherwise an
// empty index, which the spec defines as "no referrers known".
import { MAX_MANIFEST_BYTES, OCI_INDEX } from "../oci/mediatypes.ts";
import { readBody } from "../upstream/body.ts";
import type { Target } from "../oci/reference.ts";
import type { CacheContext } from "./context.ts";

export const EMPTY_REFERRERS = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });

export function createReferrers(ctx: CacheContext) {
  return {
    async list(target: Target, digest: string, artifactType: string | null): Promise<{ body: string; filtered: boolean }> {
      if (ctx.airGapped) return { body: EMPTY_REFERRERS, filtered: false };
      const qs = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "";
      try {
        const res = await ctx.upstreams.request(target.upstream, {
          method: "GET", repository: target.repository, path: `referrers/${digest}${qs}`, headers: { Accept: OCI_INDEX },
        });
        if (!res.ok) {
          res.body?.cancel().catch(() => {});
          return { body: EMPTY_REFERRERS, filtered: false };
        }
        const bytes = await readBody(res, target.upstream, `the referrers of ${digest}`, {
          maxBytes: MAX_MANIFEST_BYTES, idleMs: ctx.pullTimeoutMs, deadlineMs: ctx.pullTimeoutMs,
        });
        const body = new TextDecoder().decode(bytes);
        JSON.parse(body);
        return { body, filtered: res.headers.has("oci-filters-applied") };
      } catch (err) {
        ctx.log.debug(`referrers of ${digest} from ${target.upstream}: ${(err as Error).message}`);
        return { body: EMPTY_REFERRERS, filtered: false };
      }
    },
  };
}
