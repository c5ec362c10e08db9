// `GET/HEAD /v2/<name>/manifests/<reference>`: the exact upstream bytes with their digest.
import type { Cache } from "../../cache/index.ts";
import { isDigest } from "../../oci/digest.ts";
import { isTag } from "../../oci/names.ts";
import { RegistryError } from "../errors.ts";
import { API_VERSION, type RequestContext } from "./common.ts";

export async function handleManifest(cache: Cache, rc: RequestContext, reference: string): Promise<Response> {
  if (!isDigest(reference) && !isTag(reference)) {
    if (reference.includes(":")) throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference)}`);
    throw new RegistryError("MANIFEST_INVALID", `invalid tag ${JSON.stringify(reference)}`, { status: 400 });
  }
  const m = await cache.manifests.get(rc.target, reference, rc.req.headers.get("accept"));
  return new Response(rc.method === "HEAD" ? null : m.bytes, {
    headers: {
      ...API_VERSION,
      "Content-Type": m.mediaType,
      "Content-Length": String(m.bytes.byteLength),
      "Docker-Content-Digest": m.digest,
      ETag: `"${m.digest}"`,
    },
  });
}
