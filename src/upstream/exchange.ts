// One request to one endpoint: the HTTP exchange with its redirects (through the guard), and the
// auth dance (challenge, token or basic credentials) it needs. Challenges are remembered per
// (endpoint, repository), so one repository's broken challenge cannot break another's.
import { BoundedMap, createOncePer } from "../lib/bounded-map.ts";
import { basicAuthorization, createTokenCache, parseChallenge, type Challenge, type Credentials } from "./auth.ts";
import { discardBody } from "./body.ts";
import type { Endpoint } from "./endpoint.ts";
import { UpstreamError } from "./errors.ts";
import { credentialsMayGoTo, GuardRefusal, type Guard } from "./guard.ts";

const MAX_REDIRECTS = 5;

/** Repositories whose auth challenge is remembered. */
const MAX_CHALLENGES = 10_000;

interface Authorization {
  header: string | undefined;
  /** The realm host the configured credentials were withheld from, when they were. */
  withheldFrom?: string;
}

/** Why the upstream refused what we sent, and what the operator can do about it. */
function refusal(e: Endpoint, auth: Authorization, hadCreds: boolean, status: number): string {
  if (auth.withheldFrom) {
    return `refused the anonymous token from ${auth.withheldFrom} (HTTP ${status}): the configured credentials were withheld from ` +
      `that token realm because it is on another domain than ${e.base.host}; if ${auth.withheldFrom} is this registry's token ` +
      `service, add it to registries[].tokenHosts`;
  }
  return `refused ${hadCreds ? "the configured credentials" : "an anonymous token"} (HTTP ${status})`;
}

export interface ExchangeRequest {
  method: "GET" | "HEAD";
  repository: string;
  path: string;
  headers?: Record<string, string>;
}

export interface ExchangeOptions {
  fetch: typeof fetch;
  now: () => number;
  timeoutMs: number;
  guard: Guard;
  onRefused?: (upstream: string, reason: string) => void;
  onToken?: (upstream: string, ok: boolean) => void;
}

export function createExchange(opts: ExchangeOptions) {
  const tokens = createTokenCache({ fetch: opts.fetch, now: opts.now, timeoutMs: opts.timeoutMs, onFetch: opts.onToken });
  const challenges = new BoundedMap<string, Challenge>(MAX_CHALLENGES);
  /** Per endpoint, the last challenge that led to an accepted request: a first guess for its other repositories. */
  const proven = new BoundedMap<string, Challenge>(MAX_CHALLENGES);
  const firstTime = createOncePer(60_000, opts.now);

  /** Reports a refusal once per upstream and reason a minute, then throws it. */
  function refused(err: UpstreamError): never {
    if (firstTime(`${err.upstream} ${err.message}`)) opts.onRefused?.(err.upstream, err.message);
    throw err;
  }

  /** One HTTP exchange plus redirects. Authorization and client TLS go only to the endpoint's own origin. */
  async function send(e: Endpoint, url: URL, method: string, headers: Record<string, string>): Promise<Response> {
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === origin;
      const h: Record<string, string> = { ...headers, "Accept-Encoding": "identity", "User-Agent": e.userAgent };
      if (!sameOrigin) delete h.Authorization;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
      let res: Response;
      try {
        res = await opts.fetch(url, {
          method, headers: h, redirect: "manual", signal: controller.signal,
          // Bun extensions: keep bytes exactly as sent; per-endpoint TLS.
          decompress: false, tls: sameOrigin ? e.tls : undefined,
        });
      } catch (err) {
        if (controller.signal.aborted) throw new UpstreamError(e.upstream, "timeout", `no response from ${url.host} within ${opts.timeoutMs} ms`);
        const x = err as Error & { code?: string };
        // Bun names a failed handshake EPROTO (no client certificate, or no TLS on the port).
        if (sameOrigin && url.protocol === "https:" && x.code === "EPROTO") {
          const hint = e.tls?.cert
            ? "the upstream may not accept our client certificate (registries[].tls.cert/key)"
            : "the upstream may require a client certificate (registries[].tls.cert/key)";
          refused(new UpstreamError(e.upstream, "unreachable", `TLS handshake with ${url.host} failed: ${hint}, or it does not speak TLS on this port`));
        }
        throw new UpstreamError(e.upstream, "unreachable", `cannot reach ${url.host}: ${x.code ? `${x.code}: ` : ""}${x.message}`);
      } finally {
        clearTimeout(timer);
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        discardBody(res);
        if (hop >= MAX_REDIRECTS) throw new UpstreamError(e.upstream, "protocol", `more than ${MAX_REDIRECTS} redirects from ${url.host}`);
        let next: URL;
        try {
          next = new URL(location, url);
          await opts.guard.check(next, url, "redirected");
        } catch (err) {
          throw new UpstreamError(e.upstream, "policy", err instanceof GuardRefusal ? err.message : "redirected to an invalid URL");
        }
        url = next;
        if (res.status === 303) method = "GET";
        continue;
      }
      return res;
    }
  }

  /**
   * The Authorization header a challenge asks for. `withheldFrom` is set when credentials are
   * configured but were not sent to the token realm (another domain, not in tokenHosts).
   */
  async function authorize(e: Endpoint, challenge: Challenge, scope: string, creds: Credentials | undefined): Promise<Authorization> {
    // Basic credentials go back only to the origin that asked (send() strips them elsewhere).
    if (challenge.scheme === "basic") return { header: creds ? basicAuthorization(creds) : undefined };
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm ?? "");
      await opts.guard.check(realm, e.base, "token realm points");
    } catch (err) {
      throw new UpstreamError(e.upstream, "policy", err instanceof GuardRefusal ? err.message : "sent a bearer challenge without a valid realm");
    }
    const mayHaveCreds = creds && credentialsMayGoTo(realm, e.base, e.tokenHosts);
    try {
      const header = await tokens.obtain({
        upstream: e.id, realm, service: challenge.params.service, scope,
        credentials: mayHaveCreds ? creds : undefined,
        // The token server usually shares the endpoint's CA; pass TLS only when it is the same host.
        tls: realm.host === e.base.host ? e.tls : undefined,
      });
      return { header, withheldFrom: creds && !mayHaveCreds ? realm.host : undefined };
    } catch (err) {
      if (err instanceof UpstreamError) {
        const own = new UpstreamError(e.upstream, err.failure, err.detail, err.status);
        if (own.failure === "denied") refused(own);
        throw own;
      }
      throw err;
    }
  }

  return {
    /** A request to one endpoint, authenticating as it asks. A 401/403 after auth is an UpstreamError("denied"). */
    async attempt(e: Endpoint, req: ExchangeRequest): Promise<Response> {
      const repository = `${e.prefix}${req.repository}`;
      const url = new URL(`${e.base.origin}/v2/${repository}/${req.path}`);
      const scope = `repository:${repository}:pull`;
      const challengeKey = `${e.id} ${repository}`;
      const creds = await e.credentials?.get();
      const headers: Record<string, string> = { ...req.headers };
      let authorization = tokens.cached(e.id, scope);
      const known = challenges.get(challengeKey);
      if (!authorization && known) authorization = (await authorize(e, known, scope, creds)).header;
      const guess = !authorization && !known ? proven.get(e.id) : undefined;
      // A guess that fails costs nothing but the 401 round trip it was meant to save.
      if (guess) authorization = (await authorize(e, guess, scope, creds).catch(() => undefined))?.header;
      if (authorization) headers.Authorization = authorization;

      let res = await send(e, url, req.method, headers);
      if (res.status !== 401) return res;

      discardBody(res);
      const challenge = parseChallenge(res.headers.get("www-authenticate"));
      if (!challenge) refused(new UpstreamError(e.upstream, "denied", "answered 401 without a usable WWW-Authenticate challenge", 401));
      challenges.set(challengeKey, challenge);
      tokens.invalidate(e.id, scope);
      const auth = await authorize(e, challenge, scope, creds);
      if (!auth.header) refused(new UpstreamError(e.upstream, "denied", "requires credentials and none are configured", 401));
      res = await send(e, url, req.method, { ...req.headers, Authorization: auth.header });
      if (res.status === 401 || res.status === 403) {
        discardBody(res);
        refused(new UpstreamError(e.upstream, "denied", refusal(e, auth, !!creds, res.status), res.status));
      }
      proven.set(e.id, challenge);
      return res;
    },
    /** Forgets every token of an endpoint (its credentials changed or were removed by a reload). */
    forgetEndpoint(id: string) {
      tokens.forgetUpstream(id);
    },
    /** Forgets what was learnt about an endpoint's auth (credentials refreshed). */
    forget(e: Endpoint, repository: string) {
      tokens.invalidate(e.id, `repository:${e.prefix}${repository}:pull`);
    },
  };
}
