// Maps a request to its resource handler; every failure leaves through one catch as spec JSON.
import type { Cache } from "../cache/index.ts";
import { createOncePer } from "../lib/bounded-map.ts";
import type { DownstreamUser } from "../config/schema.ts";
import { createBasicAuth, type BasicAuth } from "./auth.ts";
import { StoreError } from "../store/types.ts";
import { createUnexpected, hasMalformedEscape, malformedEscape, RegistryError, toRegistryError } from "./errors.ts";
import { handleBase } from "./handlers/base.ts";
import { handleBlob } from "./handlers/blobs.ts";
import { resolveOrThrow, type Exchange, type RequestContext } from "./handlers/common.ts";

export type { Exchange } from "./handlers/common.ts";
import { handleManifest } from "./handlers/manifests.ts";
import { handleReferrers } from "./handlers/referrers.ts";
import { handleTags } from "./handlers/tags.ts";

export interface RegistryLogger {
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface RegistryOptions {
  cache: Cache;
  /** Upstream for requests that name none (Docker's registry-mirrors). */
  defaultNs: string;
  log: RegistryLogger;
  /** When given and non-empty, every request needs HTTP basic auth as one of these users. */
  users?: DownstreamUser[];
  /** The login check to use instead of one made from `users` (the server shares one, and its throttle). */
  auth?: BasicAuth | null;
  /** Whether clients may make the cache contact this upstream (the `upstreams: listed` policy). */
  allowUpstream?: (upstream: string) => boolean;
}

/**
 * Answers a request; `url` is `req.url` parsed, when the caller already did that; `client` the
 * peer's address; `exchange`, when given, learns the upstream named and how the cache served it.
 */
export type Handler = (req: Request, url?: URL, client?: string, exchange?: Exchange) => Promise<Response>;

const RESOURCE_RE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_RE = /^\/v2\/(.+)\/tags\/list$/;
const UPLOAD_RE = /^\/v2\/.+\/blobs\/uploads(\/.*)?$/;

export function createRegistry(opts: RegistryOptions): Handler {
  const { cache, defaultNs, log } = opts;
  const auth = opts.auth !== undefined ? opts.auth : opts.users?.length ? createBasicAuth(opts.users) : null;
  const firstTime = createOncePer(60_000);
  const unexpected = createUnexpected((m) => log.error(m), firstTime);

  /** Says why a pull failed upstream, once per upstream and reason a minute (digests aside, the reason is the message). */
  function logUpstreamFailure(err: RegistryError, rc: string) {
    const reason = err.message.replace(/sha(256|512):[a-f0-9]+/g, "<digest>");
    if (firstTime(`${err.status} ${reason}`)) log.warn(`${rc}: ${err.status} ${err.message}`);
  }

  function target(name: string, url: URL, exchange: Exchange | undefined) {
    const t = resolveOrThrow(name, url, defaultNs);
    if (exchange) exchange.upstream = t.upstream;
    if (opts.allowUpstream && !opts.allowUpstream(t.upstream)) {
      throw new RegistryError("DENIED", `upstream ${t.upstream} is not in this cache's registries list`);
    }
    return t;
  }

  async function route(req: Request, url: URL, client: string | undefined, exchange: Exchange | undefined): Promise<Response> {
    const path = url.pathname;
    const method = req.method;
    if (auth) await auth.check(req.headers.get("authorization"), client);
    if (hasMalformedEscape(path)) throw malformedEscape();
    if (path === "/v2" || path === "/v2/") {
      if (method !== "GET" && method !== "HEAD") throw unsupported(method);
      return handleBase(method);
    }
    if (!path.startsWith("/v2/")) {
      throw new RegistryError("NAME_UNKNOWN", `not a registry API path: ${path}`, { status: 404 });
    }
    if (method !== "GET" && method !== "HEAD") throw unsupported(method);
    if (UPLOAD_RE.test(path)) throw unsupported("upload");
    let m = RESOURCE_RE.exec(path);
    if (m) {
      const name = m[1]!;
      const rc: RequestContext = { req, url, method, name, target: target(name, url, exchange), exchange };
      switch (m[2]) {
        case "manifests":
          return handleManifest(cache, rc, m[3]!);
        case "blobs":
          return handleBlob(cache, rc, m[3]!);
        default:
          return handleReferrers(cache, rc, m[3]!);
      }
    }
    m = TAGS_RE.exec(path);
    if (m) {
      const name = m[1]!;
      return handleTags(cache, { req, url, method, name, target: target(name, url, exchange), exchange });
    }
    throw new RegistryError("NAME_UNKNOWN", `no such registry API path: ${path}`, { status: 404 });
  }

  return async (req, parsed, client, exchange) => {
    let res: Response;
    let url: URL | undefined;
    try {
      url = parsed ?? new URL(req.url);
      res = await route(req, url, client, exchange);
    } catch (err) {
      const known = toRegistryError(err);
      if (err instanceof StoreError && firstTime(`store ${err.message}`)) log.error(`${req.method} ${url?.pathname ?? req.url}: ${err.message}`);
      if (known) {
        if (known.status >= 502 && known.status <= 504) logUpstreamFailure(known, `${req.method} ${url?.pathname ?? req.url}`);
        res = known.toResponse(req.method);
      } else {
        // The detail is for the operator, not for whoever sent the request.
        res = unexpected(err, `${req.method} ${url?.pathname ?? req.url}`, req.method);
      }
    }
    return res;
  };
}

function unsupported(what: string): RegistryError {
  return new RegistryError("UNSUPPORTED", `this registry is a pull-only cache; ${what} is not supported`, {
    headers: { Allow: "GET, HEAD" },
  });
}
