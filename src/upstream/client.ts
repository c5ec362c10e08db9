// The upstream client: one fetch path for every upstream request, with per-upstream scheme, TLS
// and credentials, challenge-driven auth, a cap on concurrent requests per upstream, and a
// timeout on the response headers. Redirects and token realms go through the guard: only http(s),
// never down to plain HTTP, credentials only where the configuration says.
import { rootCertificates } from "node:tls";
import { BoundedMap, createOncePer } from "../oci/bounded-map.ts";
import { basicAuthorization, createTokenCache, parseChallenge, type Challenge, type Credentials } from "./auth.ts";
import { discardBody } from "./body.ts";
import { createBreakers, type BreakerOptions, type BreakerState } from "./breaker.ts";
import { UpstreamError } from "./errors.ts";
import { createGuard, credentialsMayGoTo, GuardRefusal, type GuardOptions } from "./guard.ts";
import { createLimiter, releaseWhenDone } from "./limiter.ts";
import { upstreamEndpoint } from "./endpoint.ts";

export interface UpstreamTls {
  /** PEM text of extra CAs to trust (in addition to the system store). */
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify?: boolean;
}

export interface UpstreamSettings {
  /** Upstream namespace the settings apply to (`host` or `host:port`). */
  name: string;
  scheme: "http" | "https";
  credentials?: Credentials;
  tls?: UpstreamTls;
  /** Token realm hosts besides the upstream's own registrable domain that may receive the credentials. */
  tokenHosts?: string[];
}

export interface UpstreamRequest {
  method: "GET" | "HEAD";
  /** Repository within the upstream, for the token scope. */
  repository: string;
  /** Path after `/v2/<repository>/`, e.g. `manifests/latest`, `blobs/sha256:…`, `tags/list?n=10`. */
  path: string;
  headers?: Record<string, string>;
}

/** What the upstream client reports for metrics; every hook is optional and must be cheap. */
export interface UpstreamObserver {
  /** A request's answer (`status` as a number, or the failure) and the time to its headers. */
  request?(upstream: string, outcome: number | UpstreamError["failure"], ms: number): void;
  /** Body bytes read from an upstream. */
  bytes?(upstream: string, n: number): void;
  token?(upstream: string, ok: boolean): void;
  breaker?(upstream: string, open: boolean): void;
}

export interface UpstreamStatus {
  /** Upstreams whose circuit is open. */
  open: BreakerState[];
  /** Requests open now, per upstream. */
  active: Record<string, number>;
}

export interface Upstreams {
  /** Circuit breakers and open requests, for the status endpoint. */
  status(): UpstreamStatus;
  /**
   * Sends a request to the upstream, authenticating as it asks. Throws UpstreamError when
   * unreachable or refused. The caller must read or cancel the body: it holds one of the
   * upstream's connection slots until then.
   */
  request(upstream: string, req: UpstreamRequest): Promise<Response>;
}

export interface UpstreamOptions {
  registries: UpstreamSettings[];
  /** Time allowed until response headers arrive (and for a token response). */
  timeoutMs: number;
  /** Requests open at once to one upstream (default 32). */
  connectionsPerUpstream?: number;
  /** Where redirects and token realms may point (default: anywhere public or internal, http(s) only). */
  guard?: Omit<GuardOptions, "listed"> & { listed?: ReadonlySet<string> };
  fetch?: typeof fetch;
  now?: () => number;
  /** Told once per upstream and reason a minute when an upstream refuses our credentials or certificate. */
  onRefused?: (upstream: string, reason: string) => void;
  breaker?: BreakerOptions;
  observe?: UpstreamObserver;
}

const MAX_REDIRECTS = 5;
/** Repositories whose auth challenge is remembered. */
const MAX_CHALLENGES = 10_000;

interface Prepared {
  settings: UpstreamSettings;
  base: URL;
  tls?: Record<string, unknown>;
}

function tlsOptions(t: UpstreamTls | undefined): Record<string, unknown> | undefined {
  if (!t) return undefined;
  const o: Record<string, unknown> = {};
  // Bun, like Node, replaces the default trust store with `ca`; keep the system roots too.
  if (t.ca) o.ca = [...rootCertificates, t.ca];
  if (t.cert) o.cert = t.cert;
  if (t.key) o.key = t.key;
  if (t.insecureSkipVerify) o.rejectUnauthorized = false;
  return Object.keys(o).length ? o : undefined;
}

export function createUpstreams(opts: UpstreamOptions): Upstreams {
  const doFetch = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const observe = opts.observe ?? {};
  const tokens = createTokenCache({ fetch: doFetch, now, timeoutMs: opts.timeoutMs, onFetch: observe.token });
  /** Challenges by `upstream repository`: one repository's broken challenge cannot break another's. */
  const challenges = new BoundedMap<string, Challenge>(MAX_CHALLENGES);
  /** Per upstream, the last challenge that led to an accepted request: a first guess for its other repositories. */
  const proven = new BoundedMap<string, Challenge>(MAX_CHALLENGES);
  const prepared = new Map<string, Prepared>();
  const breakers = createBreakers({ now, onChange: observe.breaker, ...opts.breaker });
  const limiter = createLimiter({ perUpstream: opts.connectionsPerUpstream ?? 32 });
  const guard = createGuard({ listedOnly: false, ...opts.guard, listed: opts.guard?.listed ?? new Set(opts.registries.map((r) => r.name)) });
  const firstTime = createOncePer(60_000, now);

  /** Reports a refusal once per upstream and reason a minute, then throws it. */
  function refused(err: UpstreamError): never {
    if (firstTime(`${err.upstream} ${err.message}`)) opts.onRefused?.(err.upstream, err.message);
    throw err;
  }
  for (const s of opts.registries) prepared.set(s.name, prepare(s));

  function prepare(s: UpstreamSettings): Prepared {
    return { settings: s, base: new URL(`${s.scheme}://${upstreamEndpoint(s.name)}`), tls: tlsOptions(s.tls) };
  }

  /** Configured upstreams were prepared at startup; any other gets anonymous HTTPS (not kept: clients name them). */
  function settingsFor(upstream: string): Prepared {
    return prepared.get(upstream) ?? prepare({ name: upstream, scheme: "https" });
  }

  /** One HTTP exchange plus redirects. Authorization and client TLS go only to the upstream's own origin. */
  async function send(upstream: string, p: Prepared, url: URL, method: string, headers: Record<string, string>): Promise<Response> {
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === origin;
      const h: Record<string, string> = { ...headers, "Accept-Encoding": "identity" };
      if (!sameOrigin) delete h.Authorization;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
      let res: Response;
      try {
        res = await doFetch(url, {
          method,
          headers: h,
          redirect: "manual",
          signal: controller.signal,
          // Bun extensions: keep bytes exactly as sent; per-upstream TLS.
          decompress: false,
          tls: sameOrigin ? p.tls : undefined,
        });
      } catch (err) {
        if (controller.signal.aborted) {
          throw new UpstreamError(upstream, "timeout", `no response from ${url.host} within ${opts.timeoutMs} ms`);
        }
        const e = err as Error & { code?: string };
        if (sameOrigin && p.settings.scheme === "https" && (e.code === "EPROTO" || /handshake/i.test(e.message))) {
          const hint = p.settings.tls?.cert
            ? "the upstream may not accept our client certificate (registries[].tls.cert/key)"
            : "the upstream may require a client certificate (registries[].tls.cert/key)";
          refused(new UpstreamError(upstream, "unreachable", `TLS handshake with ${url.host} failed: ${hint}, or it does not speak TLS on this port`));
        }
        throw new UpstreamError(upstream, "unreachable", `cannot reach ${url.host}: ${e.code ? `${e.code}: ` : ""}${e.message}`);
      } finally {
        clearTimeout(timer);
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        discardBody(res);
        if (hop >= MAX_REDIRECTS) throw new UpstreamError(upstream, "protocol", `more than ${MAX_REDIRECTS} redirects from ${url.host}`);
        let next: URL;
        try {
          next = new URL(location, url);
          await guard.check(next, url, "redirected");
        } catch (err) {
          throw new UpstreamError(upstream, "policy", err instanceof GuardRefusal ? err.message : `redirected to an invalid URL`);
        }
        url = next;
        if (res.status === 303) method = "GET";
        continue;
      }
      return res;
    }
  }

  async function authorize(upstream: string, p: Prepared, challenge: Challenge, scope: string): Promise<string | undefined> {
    const creds = p.settings.credentials;
    // Basic credentials go back only to the origin that asked (send() strips them elsewhere).
    if (challenge.scheme === "basic") return creds ? basicAuthorization(creds) : undefined;
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm ?? "");
      await guard.check(realm, p.base, "token realm points");
    } catch (err) {
      throw new UpstreamError(upstream, "policy", err instanceof GuardRefusal ? err.message : `sent a bearer challenge without a valid realm`);
    }
    const mayHaveCreds = creds && credentialsMayGoTo(realm, p.base, p.settings.tokenHosts);
    try {
      return await tokens.obtain({
        upstream, realm, service: challenge.params.service, scope,
        credentials: mayHaveCreds ? creds : undefined,
        // The token server usually shares the upstream's CA; pass TLS only when it is the same host.
        tls: realm.host === p.base.host ? p.tls : undefined,
      });
    } catch (err) {
      if (err instanceof UpstreamError && err.failure === "denied") refused(err);
      throw err;
    }
  }

  async function attempt(upstream: string, req: UpstreamRequest): Promise<Response> {
    const p = settingsFor(upstream);
    const url = new URL(`${p.base.origin}/v2/${req.repository}/${req.path}`);
    const scope = `repository:${req.repository}:pull`;
    const challengeKey = `${upstream} ${req.repository}`;
    const headers: Record<string, string> = { ...req.headers };
    let authorization = tokens.cached(upstream, scope);
    const known = challenges.get(challengeKey);
    if (!authorization && known) authorization = await authorize(upstream, p, known, scope);
    const guess = !authorization && !known ? proven.get(upstream) : undefined;
    // A guess that fails costs nothing but the 401 round trip it was meant to save.
    if (guess) authorization = await authorize(upstream, p, guess, scope).catch(() => undefined);
    if (authorization) headers.Authorization = authorization;

    let res = await send(upstream, p, url, req.method, headers);
    if (res.status !== 401) return res;

    discardBody(res);
    const challenge = parseChallenge(res.headers.get("www-authenticate"));
    if (!challenge) refused(new UpstreamError(upstream, "denied", "answered 401 without a usable WWW-Authenticate challenge", 401));
    challenges.set(challengeKey, challenge);
    tokens.invalidate(upstream, scope);
    authorization = await authorize(upstream, p, challenge, scope);
    if (!authorization) {
      refused(new UpstreamError(upstream, "denied", "requires credentials and none are configured", 401));
    }
    res = await send(upstream, p, url, req.method, { ...req.headers, Authorization: authorization });
    if (res.status === 401 || res.status === 403) {
      discardBody(res);
      const what = p.settings.credentials ? "the configured credentials" : "an anonymous token";
      refused(new UpstreamError(upstream, "denied", `refused ${what} (HTTP ${res.status})`, res.status));
    }
    proven.set(upstream, challenge);
    return res;
  }

  return {
    status() {
      return { open: breakers.open(), active: limiter.snapshot() };
    },
    async request(upstream, req) {
      const admitted = breakers.admit(upstream);
      if (!admitted.ok) {
        throw new UpstreamError(upstream, "unreachable", `is failing; not retrying for ${Math.ceil(admitted.retryInMs / 1000)} s (circuit open)`);
      }
      const release = await limiter.acquire(upstream, opts.timeoutMs);
      if (!release) {
        breakers.release(upstream);
        throw new UpstreamError(upstream, "busy", `already has the most requests open that one upstream may have; none finished within ${opts.timeoutMs} ms`);
      }
      let res: Response;
      const started = performance.now();
      try {
        res = await attempt(upstream, req);
      } catch (err) {
        release();
        const failure = err instanceof UpstreamError ? err.failure : "unreachable";
        observe.request?.(upstream, failure, performance.now() - started);
        if (failure === "unreachable" || failure === "timeout") breakers.failure(upstream);
        else breakers.success(upstream);
        throw err;
      }
      observe.request?.(upstream, res.status, performance.now() - started);
      if (res.status >= 500 || res.status === 429) breakers.failure(upstream);
      else breakers.success(upstream);
      return releaseWhenDone(res, release, observe.bytes && ((n) => observe.bytes!(upstream, n)));
    },
  };
}
