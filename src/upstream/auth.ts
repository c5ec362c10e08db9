// Upstream authentication: WWW-Authenticate challenges, and bearer tokens fetched once per scope
// and reused until shortly before they expire. The token cache is bounded in entries and bytes and
// drops expired tokens; a token response is bounded in size and time. Secrets never leave this
// module except in headers.
import { BoundedMap } from "../lib/bounded-map.ts";
import { discardBody, readBody, type BodyLimits } from "./body.ts";
import { UpstreamError } from "./errors.ts";

export interface Credentials {
  user: string;
  password: string;
}

export interface Challenge {
  scheme: "basic" | "bearer";
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (or `Basic realm=...`). */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header || header.length > 4096) return null;
  const m = header.match(/^\s*(\w+)\s*(.*)$/s);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "basic" && scheme !== "bearer") return null;
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let p; (p = re.exec(m[2] ?? "")); ) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
  return { scheme, params };
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.user}:${c.password}`).toString("base64")}`;
}

interface CachedToken {
  authorization: string;
  expiresAt: number;
}

/** Seconds before expiry at which a cached token is no longer handed out. */
const EXPIRY_MARGIN_MS = 10_000;
/** Largest token response read. Real tokens are a few KiB; a JWT with many claims stays far below this. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const MAX_TOKENS = 10_000;
const MAX_TOKEN_BYTES = 16 * 1024 * 1024;

export interface TokenRequest {
  upstream: string;
  realm: URL;
  service?: string;
  scope: string;
  /** Sent only when the realm may receive them (the caller decides). */
  credentials?: Credentials;
  tls?: Record<string, unknown>;
}

export function createTokenCache(opts: {
  fetch: typeof fetch;
  now: () => number;
  /** Headers, and each chunk and the whole of the body. */
  timeoutMs: number;
  /** Told of every token fetch and whether it produced a token. */
  onFetch?: (upstream: string, ok: boolean) => void;
}) {
  const tokens = new BoundedMap<string, CachedToken>(MAX_TOKENS, MAX_TOKEN_BYTES, (t) => t.authorization.length);
  const pending = new Map<string, Promise<string>>();
  const limits: BodyLimits = { maxBytes: MAX_TOKEN_RESPONSE_BYTES, idleMs: opts.timeoutMs, deadlineMs: opts.timeoutMs };

  /** Bumped per upstream id when its tokens are forgotten: a fetch begun before does not store its token. */
  const generation = new Map<string, number>();

  async function fetchToken(key: string, t: TokenRequest): Promise<string> {
    const gen = generation.get(t.upstream) ?? 0;
    const url = new URL(t.realm);
    if (t.service) url.searchParams.set("service", t.service);
    if (t.scope) url.searchParams.set("scope", t.scope);
    // `identity` and no decoding: a compressed token "bomb" stays the few bytes it was sent as.
    const headers: Record<string, string> = { Accept: "application/json", "Accept-Encoding": "identity" };
    if (t.credentials) headers.Authorization = basicAuthorization(t.credentials);
    let res: Response;
    try {
      res = await opts.fetch(url, { headers, signal: AbortSignal.timeout(opts.timeoutMs), tls: t.tls, redirect: "error", decompress: false });
    } catch (err) {
      const e = err as Error;
      const timedOut = e.name === "TimeoutError" || e.name === "AbortError";
      throw new UpstreamError(t.upstream, timedOut ? "timeout" : "unreachable",
        timedOut ? `token server ${url.host} did not answer within ${opts.timeoutMs} ms` : `cannot reach token server ${url.host}: ${e.message}`);
    }
    if (res.status === 401 || res.status === 403) {
      discardBody(res);
      throw new UpstreamError(t.upstream, "denied", `token server ${url.host} refused the ${t.credentials ? "configured credentials" : "anonymous request"} (HTTP ${res.status})`, res.status);
    }
    if (!res.ok) {
      discardBody(res);
      throw new UpstreamError(t.upstream, "protocol", `token server ${url.host} answered HTTP ${res.status}`);
    }
    const bytes = await readBody(res, t.upstream, `the token from ${url.host}`, limits);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new UpstreamError(t.upstream, "protocol", `token server ${url.host} sent a response that is not JSON`);
    }
    const token = typeof body?.token === "string" && body.token ? body.token : typeof body?.access_token === "string" ? body.access_token : "";
    if (!token || /[\s\x00-\x1f\x7f]/.test(token)) throw new UpstreamError(t.upstream, "protocol", `token server ${url.host} returned no usable token`);
    const ttl = (typeof body.expires_in === "number" && body.expires_in > 0 ? Math.min(body.expires_in, 86_400) : 60) * 1000;
    const authorization = `Bearer ${token}`;
    const now = opts.now();
    tokens.sweep((c) => c.expiresAt <= now);
    if ((generation.get(t.upstream) ?? 0) === gen) tokens.set(key, { authorization, expiresAt: now + ttl - EXPIRY_MARGIN_MS });
    return authorization;
  }

  return {
    /** A cached, still-valid Authorization header for (upstream, scope). */
    cached(upstream: string, scope: string): string | undefined {
      const key = `${upstream} ${scope}`;
      const t = tokens.get(key);
      if (!t) return undefined;
      if (t.expiresAt > opts.now()) return t.authorization;
      tokens.delete(key);
      return undefined;
    },
    /** Forgets a token the upstream rejected. */
    invalidate(upstream: string, scope: string) {
      tokens.delete(`${upstream} ${scope}`);
    },
    /** Forgets every token of an upstream id (its credentials changed or went away), including ones being fetched. */
    forgetUpstream(upstream: string) {
      generation.set(upstream, (generation.get(upstream) ?? 0) + 1);
      tokens.sweep((_, k) => k.startsWith(`${upstream} `));
      for (const k of [...pending.keys()]) if (k.startsWith(`${upstream} `)) pending.delete(k);
    },
    /** Fetches a token, sharing one request among concurrent callers for the same scope. */
    obtain(t: TokenRequest): Promise<string> {
      const key = `${t.upstream} ${t.scope}`;
      let p = pending.get(key);
      if (!p) {
        p = fetchToken(key, t).then(
          (a) => (opts.onFetch?.(t.upstream, true), a),
          (err) => {
            opts.onFetch?.(t.upstream, false);
            throw err;
          },
        ).finally(() => pending.delete(key));
        pending.set(key, p);
      }
      return p;
    },
    /** Cached tokens and their bytes (for tests and status). */
    stats() {
      return { tokens: tokens.size, bytes: tokens.weight };
    },
  };
}
