// Where a logical upstream is served: its endpoints (mirrors such as a Harbor proxy project or
// mirror.gcr.io, each maybe with a repository prefix, credentials and TLS of its own), then its
// origin. Records, digests and listings stay keyed by the logical upstream, whichever answered.
import type { Credentials } from "./auth.ts";

export interface UpstreamTls {
  /** PEM text of extra CAs to trust (in addition to the system store). */
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify?: boolean;
}

/** Credentials that may change: a Docker credential helper's answer, cached and refreshed on a 401. */
export interface CredentialSource {
  get(): Promise<Credentials | undefined>;
  /** Forgets a cached answer (the upstream refused it). */
  refresh(): void;
}

export interface EndpointSettings {
  /** `https://harbor.corp/dockerhub-proxy`: scheme, host and an optional repository prefix. */
  url: string;
  credentials?: Credentials | CredentialSource;
  tls?: UpstreamTls;
}

export interface UpstreamSettings {
  /** Upstream namespace the settings apply to (`host` or `host:port`). */
  name: string;
  scheme: "http" | "https";
  credentials?: Credentials | CredentialSource;
  tls?: UpstreamTls;
  /** Token realm hosts besides the upstream's own registrable domain that may receive the credentials. */
  tokenHosts?: string[];
  /** Mirrors tried in order before the origin. */
  endpoints?: EndpointSettings[];
  /** Whether the origin is tried after the endpoints (default true). */
  originFallback?: boolean;
  userAgent?: string;
}

/** One place requests for a logical upstream can go. */
export interface Endpoint {
  /** The logical upstream (`docker.io`): the name of records, errors and metrics. */
  upstream: string;
  /** Unique per endpoint: breakers, connection slots, challenges and tokens are keyed by it. */
  id: string;
  /** Scheme, host and port. */
  base: URL;
  /** Repository prefix this endpoint adds (`dockerhub-proxy/`), or "". */
  prefix: string;
  credentials?: CredentialSource;
  tls?: Record<string, unknown>;
  tokenHosts: string[];
  userAgent: string;
  /** Whether this is the upstream's origin (not a mirror). */
  origin: boolean;
}

/** The host:port to connect to for an upstream namespace. */
export function upstreamEndpoint(upstream: string): string {
  return upstream === "docker.io" ? "registry-1.docker.io" : upstream;
}

export function tlsOptions(t: UpstreamTls | undefined): Record<string, unknown> | undefined {
  if (!t) return undefined;
  const o: Record<string, unknown> = {};
  // Bun, like Node, replaces the default trust store with `ca`; keep the system roots too. node:tls
  // is loaded here only: a static import would load every root certificate (~7 MiB) into every run.
  if (t.ca) o.ca = [...(require("node:tls") as typeof import("node:tls")).rootCertificates, t.ca];
  if (t.cert) o.cert = t.cert;
  if (t.key) o.key = t.key;
  if (t.insecureSkipVerify) o.rejectUnauthorized = false;
  return Object.keys(o).length ? o : undefined;
}

function source(c: Credentials | CredentialSource | undefined): CredentialSource | undefined {
  if (!c) return undefined;
  if ("get" in c) return c;
  return { get: async () => c, refresh() {} };
}

/** The endpoints of an upstream, in the order they are tried. */
export function endpointsOf(s: UpstreamSettings, defaultUserAgent: string): Endpoint[] {
  const userAgent = s.userAgent ?? defaultUserAgent;
  const common = { upstream: s.name, tokenHosts: s.tokenHosts ?? [], userAgent };
  const mirrors = (s.endpoints ?? []).map((e): Endpoint => {
    const u = new URL(e.url);
    const prefix = u.pathname.replace(/^\/+|\/+$/g, "");
    return {
      ...common, id: `${s.name} via ${u.origin}/${prefix}`, base: new URL(u.origin), prefix: prefix ? `${prefix}/` : "",
      credentials: source(e.credentials), tls: tlsOptions(e.tls), origin: false,
    };
  });
  if (mirrors.length && s.originFallback === false) return mirrors;
  return [...mirrors, {
    ...common, id: s.name, base: new URL(`${s.scheme}://${upstreamEndpoint(s.name)}`), prefix: "",
    credentials: source(s.credentials), tls: tlsOptions(s.tls), origin: true,
  }];
}
