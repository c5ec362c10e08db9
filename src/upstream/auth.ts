// Upstream authentication: WWW-Authenticate challenges, bearer tokens fetched once per scope and
// reused until shortly before they expire. Secrets never leave this module except in headers.

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
  if (!header) return null;
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

export interface TokenFetchInit {
  headers: Record<string, string>;
  tls?: Record<string, unknown>;
}

/** Seconds before expiry at which a cached token is no longer handed out. */
const EXPIRY_MARGIN_MS = 10_000;

export function createTokenCache(opts: {
  fetch: typeof fetch;
  now: () => number;
  timeoutMs: number;
}) {
  const tokens = new Map<string, CachedToken>();
  const pending = new Map<string, Promise<string>>();

  async function fetchToken(upstream: string, challenge: Challenge, scope: string, creds: Credentials | undefined, tls: Record<string, unknown> | undefined): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new Error("bearer challenge without a realm");
    const url = new URL(realm);
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    if (scope) url.searchParams.set("scope", scope);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (creds) headers.Authorization = basicAuthorization(creds);
    const res = await opts.fetch(url, {
      headers,
      signal: AbortSignal.timeout(opts.timeoutMs),
      tls,
    });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw Object.assign(new Error(`token server ${url.host} refused the ${creds ? "configured credentials" : "anonymous request"} (HTTP ${res.status})`), { denied: true });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`token server ${url.host} answered HTTP ${res.status}`);
    }
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token || body.access_token;
    if (!token) throw new Error(`token server ${url.host} returned no token`);
    const ttl = (typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    const authorization = `Bearer ${token}`;
    tokens.set(`${upstream} ${scope}`, { authorization, expiresAt: opts.now() + ttl - EXPIRY_MARGIN_MS });
    return authorization;
  }

  return {
    /** A cached, still-valid Authorization header for (upstream, scope). */
    cached(upstream: string, scope: string): string | undefined {
      const t = tokens.get(`${upstream} ${scope}`);
      if (t && t.expiresAt > opts.now()) return t.authorization;
      return undefined;
    },
    /** Forgets a token the upstream rejected. */
    invalidate(upstream: string, scope: string) {
      tokens.delete(`${upstream} ${scope}`);
    },
    /** Fetches a token, sharing one request among concurrent callers for the same scope. */
    obtain(upstream: string, challenge: Challenge, scope: string, creds?: Credentials, tls?: Record<string, unknown>): Promise<string> {
      const key = `${upstream} ${scope}`;
      let p = pending.get(key);
      if (!p) {
        p = fetchToken(upstream, challenge, scope, creds, tls).finally(() => pending.delete(key));
        pending.set(key, p);
      }
      return p;
    },
  };
}
