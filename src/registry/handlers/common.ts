// Headers and request parsing shared by the resource handlers.
import { RegistryError } from "../errors.ts";
import type { Target } from "../../oci/reference.ts";
import { resolveTarget } from "../target.ts";

/** Headers of every registry response; nosniff keeps browsers from reading an upstream's bytes as a page. */
export const API_VERSION = { "Docker-Distribution-API-Version": "registry/2.0", "X-Content-Type-Options": "nosniff" } as const;

export interface RequestContext {
  req: Request;
  url: URL;
  method: "GET" | "HEAD";
  /** `<name>` exactly as the client sent it in the path. */
  name: string;
  target: Target;
}

export function resolveOrThrow(name: string, url: URL, defaultNs: string): Target {
  const r = resolveTarget(name, url.searchParams.get("ns"), defaultNs);
  if (!r.ok) throw new RegistryError("NAME_INVALID", r.reason);
  return r.target;
}
