// Headers and request parsing shared by the resource handlers.
import { RegistryError } from "../errors.ts";
import type { Served } from "../../cache/index.ts";
import type { Target } from "../../oci/reference.ts";
import { BoundedMap } from "../../lib/bounded-map.ts";
import { resolveTarget } from "../target.ts";

/** Headers of every registry response; nosniff keeps browsers from reading an upstream's bytes as a page. */
export const API_VERSION = { "Docker-Distribution-API-Version": "registry/2.0", "X-Content-Type-Options": "nosniff" } as const;

/** What the registry learns of one request for the access log: how the cache served it, and the upstream it named. */
export interface Exchange extends Served {
  upstream?: string;
}

export interface RequestContext {
  req: Request;
  url: URL;
  method: "GET" | "HEAD";
  /** `<name>` exactly as the client sent it in the path. */
  name: string;
  target: Target;
  /** Filled in for the access log when the server asks for it. */
  exchange?: Exchange;
}

/** Resolutions of recent names: clients repeat the same few, and they cost a few regular expressions each. */
const resolved = new BoundedMap<string, ReturnType<typeof resolveTarget>>(4096);

export function resolveOrThrow(name: string, url: URL, defaultNs: string): Target {
  const ns = url.search ? url.searchParams.get("ns") : null;
  const key = `${defaultNs} ${ns ?? ""} ${name}`;
  let r = resolved.get(key);
  if (!r) resolved.set(key, (r = resolveTarget(name, ns, defaultNs)));
  if (!r.ok) throw new RegistryError("NAME_INVALID", r.reason);
  return r.target;
}
