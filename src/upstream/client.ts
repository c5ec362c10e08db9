// The upstream client: every upstream request goes through here. A logical upstream is tried
// endpoint by endpoint (mirrors in order, then the origin): a connection failure, a 5xx, a 429 or
// a 404 moves on to the next. Each endpoint has its own circuit breaker (a 429 opens it for the
// upstream's Retry-After). Open requests are capped per upstream identity (resolved address and
// port) and in one fair process-wide budget (limiter.ts); a slot is held until the body is read or
// dropped, and waiting for one is never the upstream's failure. Redirects and token realms go
// through the guard (exchange.ts).
import pkg from "../../package.json" with { type: "json" };
import { BoundedMap } from "../lib/bounded-map.ts";
import { createBreakers, type BreakerOptions, type BreakerState } from "./breaker.ts";
import { discardBody } from "./body.ts";
import { endpointsOf, type Endpoint, type UpstreamSettings } from "./endpoint.ts";
import { UpstreamError } from "./errors.ts";
import { createExchange } from "./exchange.ts";
import { createGuard, GuardRefusal, type GuardOptions } from "./guard.ts";
import { identityOf, type AddressLookup } from "./identity.ts";
import { createLimiter, releaseWhenDone } from "./limiter.ts";

export type { CredentialSource, EndpointSettings, UpstreamSettings, UpstreamTls } from "./endpoint.ts";

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
  /** Docker Hub's `ratelimit-remaining`. */
  rateLimitRemaining?(upstream: string, remaining: number): void;
}

export interface UpstreamStatus {
  /** Endpoints whose circuit is open. */
  open: BreakerState[];
  /** Requests open now, per endpoint. */
  active: Record<string, number>;
  /** An endpoint's last failure (no answer, 5xx, 429, a refusal) and when, ms since the epoch; undefined when none is remembered. */
  lastError(endpoint: string): LastUpstreamError | undefined;
}

export interface LastUpstreamError {
  at: number;
  error: string;
}

export interface Upstreams {
  /** Circuit breakers and open requests, for the status endpoint. */
  status(): UpstreamStatus;
  /**
   * Sends a request to the upstream, authenticating as it asks. Throws UpstreamError when
   * unreachable or refused. The caller must read or cancel the body: it holds one of the
   * endpoint's connection slots until then.
   */
  request(upstream: string, req: UpstreamRequest): Promise<Response>;
  /** Whether the operator listed the upstream (default namespace, registries), not a client. */
  listed(upstream: string): boolean;
  /**
   * New registries settings and listed hosts (a config reload). Requests under way keep what they
   * started with; circuit breakers stay; tokens of configured upstreams are fetched anew, so
   * changed or removed credentials are not used again.
   */
  reconfigure(registries: UpstreamSettings[], listed: Iterable<string>): void;
}

export interface UpstreamOptions {
  registries: UpstreamSettings[];
  /** Time allowed until response headers arrive (and for a token response). */
  timeoutMs: number;
  /** Requests open at once to one upstream identity: its resolved address and port (default 32). */
  connectionsPerUpstream?: number;
  /** Requests open at once to all upstreams together (default 192, below Bun's 256 fetches in flight). */
  connectionsTotal?: number;
  /** Resolves host names to the addresses that identify an upstream (default: the guard's cached resolver). */
  lookup?: AddressLookup;
  /**
   * Which upstreams clients may name and where redirects and token realms may point (default
   * `any`: anywhere http(s); the config's default `public` is passed by the runtime). `listed`
   * defaults to the registries' names.
   */
  guard?: Partial<GuardOptions>;
  fetch?: typeof fetch;
  now?: () => number;
  /** Told once per upstream and reason a minute when an upstream refuses our credentials or certificate. */
  onRefused?: (upstream: string, reason: string) => void;
  breaker?: BreakerOptions;
  observe?: UpstreamObserver;
  /** Debug lines (Docker Hub's rate-limit headers). */
  debug?: (msg: string) => void;
}

/** Longest a 429's Retry-After keeps an endpoint's circuit open; without one, a minute. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;
const DEFAULT_RETRY_AFTER_MS = 60_000;
/** Last errors remembered of upstreams clients named (listed ones are always kept), and their longest text. */
const MAX_OTHER_ERRORS = 256;
const MAX_ERROR_CHARS = 300;
export const DEFAULT_USER_AGENT = `ociregistry/${pkg.version}`;

/** Milliseconds from a Retry-After header (seconds or an HTTP date), capped. */
export function retryAfterMs(header: string | null, now: number): number {
  if (!header) return DEFAULT_RETRY_AFTER_MS;
  const ms = /^\d+$/.test(header.trim()) ? Number(header) * 1000 : Date.parse(header) - now;
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(1000, ms)) : DEFAULT_RETRY_AFTER_MS;
}

export function createUpstreams(opts: UpstreamOptions): Upstreams {
  const now = opts.now ?? Date.now;
  const observe = opts.observe ?? {};
  const breakers = createBreakers({ now, onChange: observe.breaker, ...opts.breaker });
  const limiter = createLimiter({ perUpstream: opts.connectionsPerUpstream ?? 32, total: opts.connectionsTotal ?? 192 });
  const guard = createGuard({ policy: "any", ...opts.guard, listed: opts.guard?.listed ?? opts.registries.map((r) => r.name) });
  const lookup = opts.lookup ?? guard.addresses;
  /** Requests open now per endpoint, for the status page (the limiter counts per identity). */
  const open = new Map<string, number>();
  const exchange = createExchange({ fetch: opts.fetch ?? fetch, now, timeoutMs: opts.timeoutMs, guard, onRefused: opts.onRefused, onToken: observe.token });
  let configured = new Map(opts.registries.map((s) => [s.name, endpointsOf(s, DEFAULT_USER_AGENT)]));
  /** Each endpoint's last failure: listed upstreams' always, client-named ones' bounded (they choose the names). */
  const listedErrors = new Map<string, LastUpstreamError>();
  const otherErrors = new BoundedMap<string, LastUpstreamError>(MAX_OTHER_ERRORS);
  function remember(e: Endpoint, error: string) {
    (guard.listed(e.upstream) ? listedErrors : otherErrors).set(e.id, { at: now(), error: error.slice(0, MAX_ERROR_CHARS) });
  }

  /** Configured upstreams were prepared at startup; any other gets anonymous HTTPS (not kept: clients name them). */
  function endpointsFor(upstream: string): Endpoint[] {
    return configured.get(upstream) ?? endpointsOf({ name: upstream, scheme: "https" }, DEFAULT_USER_AGENT);
  }

  /** One endpoint's answer, with one retry after refreshing credentials a helper gave (they may have expired). */
  async function attempt(e: Endpoint, req: UpstreamRequest): Promise<Response> {
    try {
      return await exchange.attempt(e, req);
    } catch (err) {
      if (!(err instanceof UpstreamError && err.failure === "denied" && e.credentials)) throw err;
      e.credentials.refresh();
      exchange.forget(e, req.repository);
      return exchange.attempt(e, req);
    }
  }

  /** Tries one endpoint. Returns its response, or the reason to move on to the next one. */
  async function tryEndpoint(e: Endpoint, req: UpstreamRequest, last: boolean): Promise<Response | UpstreamError> {
    const admitted = breakers.admit(e.id);
    if (!admitted.ok) {
      const secs = Math.ceil(admitted.retryInMs / 1000);
      return admitted.rateLimited
        ? new UpstreamError(e.upstream, "rate-limited", `is rate limiting requests; not asking again for ${secs} s`, 429, admitted.retryInMs)
        : new UpstreamError(e.upstream, "unreachable", `is failing; not retrying for ${secs} s (circuit open)`);
    }
    const identity = await identityOf(e.base, lookup);
    const listed = guard.listed(e.upstream);
    const slot = await limiter.acquire(identity, opts.timeoutMs, listed);
    if (!slot) {
      // Our own queue, not the upstream's fault: its circuit is not touched.
      breakers.release(e.id);
      return new UpstreamError(e.upstream, "busy", `no upstream connection was free within ${opts.timeoutMs} ms (${limiter.active(identity, listed)} open to ${identity}, ${limiter.total()} to all upstreams${listed ? "" : ", at most half of them to upstreams clients name"}: maxUpstreamConnections, maxUpstreamConnectionsTotal)`);
    }
    open.set(e.id, (open.get(e.id) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (open.get(e.id) ?? 1) - 1;
      if (n > 0) open.set(e.id, n);
      else open.delete(e.id);
      slot();
    };
    const started = performance.now();
    let res: Response;
    try {
      res = await attempt(e, req);
    } catch (err) {
      release();
      const failure = err instanceof UpstreamError ? err.failure : "unreachable";
      observe.request?.(e.upstream, failure, performance.now() - started);
      remember(e, err instanceof UpstreamError ? `${failure}: ${err.detail}` : (err as Error).message);
      if (failure === "unreachable" || failure === "timeout") {
        breakers.failure(e.id);
        if (err instanceof UpstreamError) return err;
      } else breakers.success(e.id);
      throw err;
    }
    observe.request?.(e.upstream, res.status, performance.now() - started);
    if (res.status < 200 || res.status > 599) {
      // Not an HTTP status a registry can mean (600, 999): a protocol failure, and the body and
      // its slot are let go here (no Response can even carry such a status on).
      discardBody(res);
      release();
      breakers.failure(e.id);
      remember(e, `protocol: HTTP status ${res.status}`);
      return new UpstreamError(e.upstream, "protocol", `answered with HTTP status ${res.status}, which is not a valid status`, res.status);
    }
    const remaining = res.headers.get("ratelimit-remaining");
    if (remaining) {
      opts.debug?.(`${e.id}: ratelimit-remaining ${remaining}`);
      const n = Number.parseInt(remaining, 10);
      if (Number.isFinite(n)) observe.rateLimitRemaining?.(e.upstream, n);
    }
    const moveOn = (reason: UpstreamError) => {
      discardBody(res);
      release();
      return reason;
    };
    if (res.status === 429) {
      const wait = retryAfterMs(res.headers.get("retry-after"), now());
      breakers.openFor(e.id, wait);
      remember(e, `rate-limited: HTTP 429, retry after ${Math.ceil(wait / 1000)} s`);
      return moveOn(new UpstreamError(e.upstream, "rate-limited", `is rate limiting requests; not asking again for ${Math.ceil(wait / 1000)} s`, 429, wait));
    }
    if (res.status >= 500) {
      breakers.failure(e.id);
      remember(e, `HTTP ${res.status}`);
    } else breakers.success(e.id);
    if (!last && (res.status >= 500 || res.status === 404)) return moveOn(new UpstreamError(e.upstream, "unreachable", `${e.id} answered HTTP ${res.status}`, res.status));
    return releaseWhenDone(res, release, observe.bytes && ((n) => observe.bytes!(e.upstream, n)));
  }

  return {
    status() {
      return { open: breakers.open(), active: Object.fromEntries(open), lastError: (id) => listedErrors.get(id) ?? otherErrors.get(id) };
    },
    listed: (upstream) => guard.listed(upstream),
    reconfigure(registries, listed) {
      const before = configured;
      configured = new Map(registries.map((s) => [s.name, endpointsOf(s, DEFAULT_USER_AGENT)]));
      guard.setListed(listed);
      // A removed upstream's origin id is also its anonymous id: its tokens must go too.
      for (const endpoints of [...before.values(), ...configured.values()]) for (const e of endpoints) exchange.forgetEndpoint(e.id);
    },
    async request(upstream, req) {
      const endpoints = endpointsFor(upstream);
      // A client chose this upstream: the guard decides whether the cache may go there at all.
      if (!configured.has(upstream)) {
        await guard.checkUpstream(endpoints[0]!.base).catch((err) => {
          throw err instanceof GuardRefusal ? new UpstreamError(upstream, "policy", err.message) : err;
        });
      }
      const reasons: UpstreamError[] = [];
      for (let i = 0; i < endpoints.length; i++) {
        const r = await tryEndpoint(endpoints[i]!, req, i === endpoints.length - 1);
        if (r instanceof Response) return r;
        reasons.push(r);
      }
      // Every endpoint failed: the most telling reason (rate limits first, with the shortest wait).
      const limited = reasons.filter((r) => r.failure === "rate-limited").sort((a, b) => (a.retryAfterMs ?? 0) - (b.retryAfterMs ?? 0));
      const last = limited[0] ?? reasons.at(-1)!;
      if (reasons.length === 1) throw last;
      throw new UpstreamError(upstream, last.failure, reasons.map((r) => r.detail).join("; then "), last.status, last.retryAfterMs);
    },
  };
}
