// `GET /v2/<name>/tags/list?n=&last=`: the upstream's tags, or the cached ones when it is down.
import type { Cache } from "../../cache/index.ts";
import { RegistryError } from "../errors.ts";
import { API_VERSION, type RequestContext } from "./common.ts";

export async function handleTags(cache: Cache, rc: RequestContext): Promise<Response> {
  const nParam = rc.url.searchParams.get("n");
  if (nParam !== null && !/^\d+$/.test(nParam)) {
    throw new RegistryError("SIZE_INVALID", `n must be a non-negative integer, got ${JSON.stringify(nParam)}`);
  }
  const n = nParam === null ? null : Number(nParam);
  const last = rc.url.searchParams.get("last");
  const list = await cache.tags.list(rc.target, rc.name, n, last);
  const body = JSON.stringify({ name: list.name, tags: list.tags });
  const headers: Record<string, string> = { ...API_VERSION, "Content-Type": "application/json" };
  if (list.next) {
    const q = new URLSearchParams({ n: String(list.next.n), last: list.next.last });
    const ns = rc.url.searchParams.get("ns");
    if (ns) q.set("ns", ns);
    headers.Link = `</v2/${rc.name}/tags/list?${q}>; rel="next"`;
  }
  return new Response(rc.method === "HEAD" ? null : body, { headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)) } });
}
