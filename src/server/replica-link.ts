// Replicas on one S3 store stream cold blobs to each other: `GET /_internal/v1/downloads/<upstream>/<digest>`
// on the serve port answers another replica with this one's running download (last byte held until
// verified, as for clients) or the stored blob, and nothing else. Requests are signed with the
// shared secret (HMAC-SHA256 over a timestamp, the method and the path; the secret never travels),
// compared in constant time; anything else gets 403.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Cache, PeerLink } from "../cache/index.ts";
import { isDigest } from "../oci/digest.ts";
import { parseRange } from "../registry/handlers/blobs.ts";

export const INTERNAL_PREFIX = "/_internal/v1/downloads/";
const SCHEME = "OciregistryReplica";
/** A signed request is accepted this long either side of its timestamp (clocks of nodes differ a little). */
const SKEW_MS = 300_000;

function signature(secret: string, ts: string, method: string, path: string): string {
  return createHmac("sha256", secret).update(`${ts}\n${method}\n${path}`).digest("hex");
}

/** Whether a request carries a valid signature of the shared secret; decided without leaking how close it came. */
export function signedBySecret(secret: string, req: Request, path: string, now = Date.now()): boolean {
  const m = (req.headers.get("authorization") ?? "").match(new RegExp(`^${SCHEME} t=(\\d{1,15}),s=([0-9a-f]{64})$`));
  if (!m || Math.abs(now - Number(m[1])) > SKEW_MS) return false;
  const expected = Buffer.from(signature(secret, m[1]!, req.method, path));
  return timingSafeEqual(expected, Buffer.from(m[2]!));
}

/** How this replica asks the others for a blob (the cache's PeerLink). */
export function peerLink(secret: string, self: () => string, timeoutMs: number, fetcher: typeof fetch = fetch): PeerLink {
  return {
    self,
    async open(url, upstream, digest, start, end) {
      const path = `${INTERNAL_PREFIX}${encodeURIComponent(upstream)}/${digest}`;
      const ts = String(Date.now());
      const headers: Record<string, string> = { authorization: `${SCHEME} t=${ts},s=${signature(secret, ts, "GET", path)}` };
      if (start > 0 || end !== null) headers.range = `bytes=${start}-${end ?? ""}`;
      // Bounded until the answer's headers: the owner may still be opening its upstream.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      try {
        return await fetcher(`${url.replace(/\/+$/, "")}${path}`, { headers, redirect: "manual", signal: abort.signal, decompress: false } as RequestInit);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The internal endpoint: what this replica can serve the others of a blob. */
export function internalEndpoint(secret: string, cache: Cache) {
  return async (req: Request, path: string): Promise<Response> => {
    if (req.method !== "GET" || !signedBySecret(secret, req, path)) return new Response("forbidden\n", { status: 403 });
    const rest = path.slice(INTERNAL_PREFIX.length).split("/");
    let upstream = "";
    try {
      upstream = decodeURIComponent(rest[0] ?? "");
    } catch {
      // Not an upstream this replica downloads from.
    }
    const digest = rest[1] ?? "";
    if (rest.length !== 2 || !upstream || upstream.length > 255 || !isDigest(digest)) return new Response("not found\n", { status: 404 });
    const source = await cache.blobs.local(upstream, digest);
    if (!source || (source.kind !== "download" && source.kind !== "stored")) return new Response("no such download\n", { status: 404 });
    const size = source.size;
    const range = size === null ? null : parseRange(req.headers.get("range"), size);
    if (range === "unsatisfiable") return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${size}` } });
    const headers: Record<string, string> = { "Content-Type": "application/octet-stream", "Docker-Content-Digest": digest };
    if (range) {
      headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
      headers["Content-Length"] = String(range.end - range.start + 1);
    } else if (size !== null) headers["Content-Length"] = String(size);
    const body = source.kind === "download"
      ? source.download.stream(range?.start ?? 0, range?.end ?? null)
      : (range ? source.file.slice(range.start, range.end + 1) : source.file).stream();
    return new Response(body, { status: range ? 206 : 200, headers });
  };
}
