// Tag lists: from the upstream when it answers, from the cached tag records when it does not.
import { discardBody, readBody } from "../upstream/body.ts";
import type { Target } from "../oci/reference.ts";
import type { CacheContext } from "./context.ts";
import { CacheError, type CacheFailure } from "./errors.ts";

export interface TagList {
  name: string;
  tags: string[];
  /** `last` value for the next page, when there is one. */
  next?: { last: string; n: number };
}

const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;

/** Applies `n`/`last` pagination to a sorted tag list, as the spec describes. */
export function paginate(tags: string[], n: number | null, last: string | null): { tags: string[]; more: boolean } {
  let out = last ? tags.filter((t) => t > last) : tags;
  if (n === null) return { tags: out, more: false };
  const more = out.length > n;
  out = out.slice(0, n);
  return { tags: out, more };
}

/** The `last` of an upstream's `Link: <...?last=x>; rel="next"`: undefined without one, null when it does not decode. */
function nextPageLast(link: string | null): string | undefined | null {
  const raw = link?.match(/[?&]last=([^&>]+)/)?.[1];
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** The cache's tag lists. */
export interface Tags {
  /** A repository's tags from its upstream, or the cached tags when the upstream cannot say; `n`/`last` paginate. */
  list(target: Target, name: string, n: number | null, last: string | null): Promise<TagList>;
}

export function createTags(ctx: CacheContext): Tags {
  /** The cached tags, asked for because the upstream could not say (`failure`, in words `why`); throws that failure when none are cached. */
  async function cached(target: Target, name: string, n: number | null, last: string | null, failure: CacheFailure, why: string): Promise<TagList> {
    const all = await ctx.store.listTags(target.upstream, target.repository);
    if (all.length === 0) throw new CacheError(failure, "repository", `${target.upstream}/${target.repository}: ${why}, and no tags are cached`);
    const page = paginate(all, n, last);
    return { name, tags: page.tags, next: page.more ? { last: page.tags.at(-1)!, n: n! } : undefined };
  }

  return {
    async list(target: Target, name: string, n: number | null, last: string | null): Promise<TagList> {
      if (ctx.airGapped) return cached(target, name, n, last, "air-gapped", "the cache is air-gapped");
      const q = new URLSearchParams();
      if (n !== null) q.set("n", String(n));
      if (last !== null) q.set("last", last);
      const qs = q.size ? `?${q}` : "";
      let res: Response;
      try {
        res = await ctx.upstreams.request(target.upstream, { method: "GET", repository: target.repository, path: `tags/list${qs}` });
      } catch (err) {
        ctx.log.warn(`listing cached tags of ${target.upstream}/${target.repository}: ${(err as Error).message}`);
        return cached(target, name, n, last, "unreachable", "upstream unreachable");
      }
      if (!res.ok) {
        discardBody(res);
        if (res.status === 404) return cached(target, name, n, last, "not-found", "repository unknown to upstream");
        ctx.log.warn(`listing cached tags of ${target.upstream}/${target.repository}: upstream answered HTTP ${res.status}`);
        return cached(target, name, n, last, "unreachable", `upstream answered HTTP ${res.status}`);
      }
      let body: { tags?: unknown };
      try {
        const bytes = await readBody(res, target.upstream, `the tag list of ${target.upstream}/${target.repository}`, {
          maxBytes: MAX_TAG_LIST_BYTES, idleMs: ctx.pullTimeoutMs, deadlineMs: ctx.pullTimeoutMs,
        });
        body = JSON.parse(new TextDecoder().decode(bytes));
      } catch (err) {
        ctx.log.warn(`listing cached tags of ${target.upstream}/${target.repository}: ${(err as Error).message}`);
        return cached(target, name, n, last, "unreachable", "upstream sent an unreadable tag list");
      }
      const tags = Array.isArray(body.tags) ? body.tags.filter((t): t is string => typeof t === "string") : [];
      const link = res.headers.get("link");
      const nextLast = nextPageLast(link);
      if (nextLast === null) ctx.log.warn(`the tag list of ${target.upstream}/${target.repository}: upstream sent a Link header that does not decode; answering its tags without a next page`);
      const nextN = link?.match(/[?&]n=(\d+)/)?.[1];
      return {
        name, tags,
        next: nextLast ? { last: nextLast, n: Number(nextN ?? n ?? tags.length) } : undefined,
      };
    },
  };
}
