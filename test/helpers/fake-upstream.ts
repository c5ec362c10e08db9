// An in-memory upstream registry for in-process tests and fault injection: serves pushed images,
// counts requests, and lets a test replace any response. Never the only proof (see test/e2e).
import type { Image } from "./images.ts";
import { allBlobs } from "./images.ts";

export interface FakeUpstream {
  fetch: typeof fetch;
  /** `METHOD /v2/...` of every request received. */
  log: string[];
  add(repo: string, tag: string, img: Image): void;
  /** Intercepts requests: return a Response to answer with it, or undefined to serve normally. */
  intercept?: (req: Request) => Response | Promise<Response> | undefined;
}

export function createFakeUpstream(): FakeUpstream {
  const manifests = new Map<string, { bytes: Uint8Array; mediaType: string; digest: string }>();
  const blobs = new Map<string, Uint8Array>();
  const tags = new Map<string, string[]>();

  function addManifest(repo: string, ref: string, img: Image) {
    manifests.set(`${repo}@${ref}`, { bytes: img.manifest, mediaType: img.mediaType, digest: img.digest });
    manifests.set(`${repo}@${img.digest}`, { bytes: img.manifest, mediaType: img.mediaType, digest: img.digest });
    for (const c of img.children) addManifest(repo, c.digest, c);
  }

  const up: FakeUpstream = {
    log: [],
    add(repo, tag, img) {
      addManifest(repo, tag, img);
      for (const b of allBlobs(img)) blobs.set(b.digest, b.bytes);
      tags.set(repo, [...new Set([...(tags.get(repo) ?? []), tag])].sort());
    },
    fetch: (async (input: string | URL | Request, init?: RequestInit) => {
      const req = new Request(input as string, init);
      const url = new URL(req.url);
      up.log.push(`${req.method} ${url.pathname}${url.search}`);
      const custom = await up.intercept?.(req);
      if (custom) return custom;
      const m = url.pathname.match(/^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/);
      const t = url.pathname.match(/^\/v2\/(.+)\/tags\/list$/);
      const head = req.method === "HEAD";
      if (m && m[2] === "manifests") {
        const found = manifests.get(`${m[1]}@${m[3]}`);
        if (!found) return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN", message: "unknown" }] }, { status: 404 });
        return new Response(head ? null : found.bytes, {
          headers: { "Content-Type": found.mediaType, "Docker-Content-Digest": found.digest, "Content-Length": String(found.bytes.byteLength) },
        });
      }
      if (m && m[2] === "blobs") {
        const found = blobs.get(m[3]!);
        if (!found) return Response.json({ errors: [{ code: "BLOB_UNKNOWN", message: "unknown" }] }, { status: 404 });
        return new Response(head ? null : found, { headers: { "Content-Length": String(found.byteLength), "Docker-Content-Digest": m[3]! } });
      }
      if (t) {
        const list = tags.get(t[1]!);
        if (!list) return Response.json({ errors: [{ code: "NAME_UNKNOWN", message: "unknown" }] }, { status: 404 });
        // Paginated as distribution does: `n` tags after `last`, and a Link when more remain.
        const n = url.searchParams.get("n");
        const last = url.searchParams.get("last");
        const after = last ? list.filter((x) => x > last) : list;
        const page = n === null ? after : after.slice(0, Number(n));
        const more = page.length < after.length;
        const link = more ? { Link: `</v2/${t[1]}/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"` } : undefined;
        return Response.json({ name: t[1], tags: page }, { headers: link });
      }
      if (url.pathname === "/v2/") return Response.json({});
      return new Response("not found", { status: 404 });
    }) as typeof fetch,
  };
  return up;
}
