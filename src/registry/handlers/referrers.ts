// `GET /v2/<name>/referrers/<digest>`: an image index of the artifacts that refer to a manifest.
import type { Cache } from "../../cache/index.ts";
import { isDigest } from "../../oci/digest.ts";
import { OCI_INDEX } from "../../oci/mediatypes.ts";
import { RegistryError } from "../errors.ts";
import { API_VERSION, type RequestContext } from "./common.ts";

export async function handleReferrers(cache: Cache, rc: RequestContext, digest: string): Promise<Response> {
  if (!isDigest(digest)) throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
  const artifactType = rc.url.searchParams.get("artifactType");
  const { body, filtered } = await cache.referrers.list(rc.target, digest, artifactType);
  const headers: Record<string, string> = {
    ...API_VERSION, "Content-Type": OCI_INDEX, "Content-Length": String(Buffer.byteLength(body)),
  };
  if (filtered) headers["OCI-Filters-Applied"] = "artifactType";
  return new Response(rc.method === "HEAD" ? null : body, { headers });
}
