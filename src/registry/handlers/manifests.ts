// `GET/HEAD /v2/<name>/manifests/<reference>`: the exact upstream bytes with their digest.
import type { Cache, ManifestResult } from "../../cache/index.ts";
import { isDigest } from "../../oci/digest.ts";
import { isServableManifestType } from "../../oci/mediatypes.ts";
import { isTag } from "../../oci/names.ts";
import { RegistryError } from "../errors.ts";
import { API_VERSION, type RequestContext } from "./common.ts";

export async function handleManifest(cache: Cache, rc: RequestContext, reference: string): Promise<Response> {
  if (!isDigest(reference) && !isTag(reference)) {
    if (reference.includes(":")) throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference)}`);
    // No manifest can have an invalid tag: unknown, as distribution and the conformance suite say.
    throw new RegistryError("MANIFEST_UNKNOWN", `no manifest has the tag ${JSON.stringify(reference.slice(0, 200))}: not a valid tag`);
  }
  const m = await cache.manifests.get(rc.target, reference, rc.req.headers.get("accept"), rc.exchange);
  return new Response(rc.method === "HEAD" ? null : m.bytes, { headers: headersOf(m) });
}

/** A manifest's response headers, made once per manifest object (the same ones serve every pull of it). */
const made = new WeakMap<ManifestResult, Record<string, string>>();

function headersOf(m: ManifestResult): Record<string, string> {
  let h = made.get(m);
  if (!h) {
    h = {
      ...API_VERSION,
      // A store written before media types were checked may hold others: never let one choose how a browser reads us.
      "Content-Type": isServableManifestType(m.mediaType) ? m.mediaType : "application/octet-stream",
      "Content-Length": String(m.bytes.byteLength),
      "Docker-Content-Digest": m.digest,
      ETag: `"${m.digest}"`,
    };
    made.set(m, h);
  }
  return h;
}
