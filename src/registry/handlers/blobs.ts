// `GET/HEAD /v2/<name>/blobs/<digest>`: stored blobs as files, cold blobs streamed while they
// download; single `Range: bytes=` requests answered with 206 or 416.
import type { Cache } from "../../cache/index.ts";
import { isDigest } from "../../oci/digest.ts";
import { RegistryError } from "../errors.ts";
import { API_VERSION, type RequestContext } from "./common.ts";

export type ByteRange = { start: number; end: number };

/** How long a presigned redirect URL stays valid. */
const REDIRECT_SECONDS = 300;

/**
 * Parses a single `bytes=` range against a known size. Returns null to serve the whole blob
 * (no header, or a form we do not handle such as multiple ranges), "unsatisfiable" for 416.
 */
export function parseRange(header: string | null, size: number): ByteRange | null | "unsatisfiable" {
  if (!header) return null;
  const m = header.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== "" && Number(m[2]) < start) return null;
  }
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

export async function handleBlob(cache: Cache, rc: RequestContext, digest: string): Promise<Response> {
  if (!isDigest(digest)) throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
  const source = await cache.blobs.get(rc.target, digest, { sizeOnly: rc.method === "HEAD", served: rc.exchange });
  const headers: Record<string, string> = {
    ...API_VERSION,
    "Content-Type": "application/octet-stream",
    "Docker-Content-Digest": digest,
    "Accept-Ranges": "bytes",
    ETag: `"${digest}"`,
  };
  const size = source.size;
  // A pass-through answers the whole blob (HTTP lets a server ignore Range): a range cut from a
  // stream that is never read to its end would reach the client before its bytes were verified.
  const range = size === null || source.kind === "passthrough" ? null : parseRange(rc.req.headers.get("range"), size);
  if (range === "unsatisfiable") {
    throw new RegistryError("SIZE_INVALID", `range ${rc.req.headers.get("range")} is outside the blob's ${size} bytes`, {
      status: 416, headers: { "Content-Range": `bytes */${size}` },
    });
  }
  let status = 200;
  if (range && size !== null) {
    status = 206;
    headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
    headers["Content-Length"] = String(range.end - range.start + 1);
  } else if (size !== null) {
    headers["Content-Length"] = String(size);
  }
  if (rc.method === "HEAD") return new Response(null, { status, headers });

  switch (source.kind) {
    case "stored":
      // An S3 store with `redirect`: the client fetches the bytes from S3 itself (Range included).
      if (source.redirect) return new Response(null, { status: 307, headers: { ...API_VERSION, "Docker-Content-Digest": digest, Location: source.redirect(REDIRECT_SECONDS) } });
    {
      const body = range ? source.file.slice(range.start, range.end + 1) : source.file;
      const stream = !range && source.stream ? source.stream() : source.streamOnly ? body.stream() : null;
      return new Response(stream ?? body, { status, headers });
    }
    case "download": {
      if (source.download.error) {
        throw new RegistryError("BLOB_UNKNOWN", `download of ${digest} failed: ${source.download.error.message}`, { status: 502 });
      }
      const body = range ? source.download.stream(range.start, range.end) : source.download.stream(0, null);
      return new Response(body, { status, headers });
    }
    case "passthrough":
      // The store had no room: one upstream stream for this client, its last chunk held until verified.
      return new Response(source.body, { status, headers });
    case "remote":
      throw new Error("blob source without content for a GET");
  }
}

