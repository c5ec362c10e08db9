// Configuration types and defaults. Keys match the seed project's YAML (imagePath, port,
// registries[]...) so its config files keep working.

export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug", "trace"];

/** Which upstreams clients may make the cache contact (see Config.upstreams). */
export type UpstreamPolicy = "public" | "listed" | "any";
export const UPSTREAM_POLICIES: readonly UpstreamPolicy[] = ["public", "listed", "any"];

export interface RegistryTls {
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify?: boolean;
}

/** A mirror of an upstream, tried before the origin; its path becomes a repository prefix. */
export interface RegistryEndpoint {
  url: string;
  auth?: { user: string; password: string };
  tls?: RegistryTls;
}

export interface RegistryEntry {
  /** Upstream host or host:port, matched against the resolved upstream. */
  name: string;
  scheme: "http" | "https";
  auth?: { user: string; password: string };
  /** A Docker credential helper (`docker-credential-<name>`) that supplies the credentials. */
  credentialHelper?: string;
  tls?: RegistryTls;
  /** Token realm hosts, besides the upstream's own registrable domain, that may receive `auth`. */
  tokenHosts?: string[];
  /** Mirrors tried in order before the origin. */
  endpoints?: RegistryEndpoint[];
  /** Whether the origin is tried after the endpoints. */
  originFallback: boolean;
  /** User-Agent sent to this upstream (default `ociregistry/<version>`). */
  userAgent?: string;
}

export interface ServerTls {
  /** PEM text, read at startup. */
  cert: string;
  key: string;
  ca?: string;
  /** `verify`: refuse clients without a certificate signed by `ca`, at the handshake. */
  clientAuth: "none" | "verify";
}

export interface DownstreamUser {
  user: string;
  /** A bcrypt hash (`$2y$…`, as `htpasswd -B` writes) or a plain password. */
  password: string;
}

export interface TagPolicy {
  /** Regular expression matched against `<upstream>/<repository>:<tag>`. */
  match: string;
  /** How long a matching cached tag is served before it is checked upstream again, in ms. */
  revalidateAfterMs: number;
}

export interface PruneConfig {
  enabled: boolean;
  /** Images older than this are pruned, in ms. */
  olderThanMs: number;
  /** `accessed`: by last pull; `created`: by when the tag was first cached. */
  type: "accessed" | "created";
  /** How often serve prunes, in ms. */
  frequencyMs: number;
  /** At most this many images per run; -1 for no limit. */
  count: number;
  dryRun: boolean;
}

/** Where blobs, manifests and records live when not in `imagePath`. */
export interface S3Config {
  endpoint: string;
  region: string;
  bucket: string;
  /** "" or ending in "/". */
  prefix: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Bucket in the path (RGW, MinIO) rather than in the host name. */
  forcePathStyle: boolean;
  /** Warm blobs as 307 redirects to presigned URLs. */
  redirect: boolean;
  /** Incomplete multipart uploads older than this are aborted at start, in ms. */
  abortUploadsAfterMs: number;
}

export interface ArchivesConfig {
  /** A directory of `.oci` archives, served before the store and the upstreams. */
  path: string;
  /** How often the directory is scanned for added and removed files, in ms. */
  rescanMs: number;
}

/** Default for `archives.rescan`. */
export const ARCHIVES_RESCAN_MS = 10 * 60_000;

export interface Config {
  /** The store directory; with an S3 store, the local directory for temporary files. */
  imagePath: string;
  /** An S3 store instead of the directory. */
  s3?: S3Config;
  /** Address to listen on. */
  host: string;
  port: number;
  logLevel: LogLevel;
  logFormat: "text" | "json";
  /** Upstream for requests that name none. */
  defaultNs: string;
  /** Longest wait for an upstream response or the next chunk of its body, in ms. */
  pullTimeoutMs: number;
  airGapped: boolean;
  /** Age after which a cached tag is revalidated with a HEAD to its upstream, in ms. */
  revalidateAfterMs: number;
  registries: RegistryEntry[];
  /** Per-tag freshness rules, first match wins; tags matching none use revalidateAfterMs. */
  tagPolicies: TagPolicy[];
  /**
   * `public` (default): clients may name any upstream whose every address is public; internal
   * addresses (loopback, private, link-local, …) only when listed under registries. Redirects and
   * token realms follow the same rule.
   * `listed`: only upstreams with a registries entry (and the default namespace) may be contacted;
   * redirects and token realms as with `public`.
   * `any`: any http(s) host, internal services included; an explicit opt-in, warned about at start.
   */
  upstreams: UpstreamPolicy;
  /** Requests open at once to one upstream (its resolved address and port). */
  maxUpstreamConnections: number;
  /** Requests open at once to all upstreams together: below the runtime's own limit of fetches in flight. */
  maxUpstreamConnectionsTotal: number;
  /** A blob download slower than this (bytes/s), averaged over `transferRateWindowMs`, is cut; 0: never. */
  minTransferRate: number;
  transferRateWindowMs: number;
  /** Docker config.json whose `auths` supply upstream credentials. */
  dockerConfig?: string;
  /** When non-empty, clients must authenticate with HTTP basic auth. */
  users: DownstreamUser[];
  serverTlsConfig?: ServerTls;
  pruneConfig?: PruneConfig;
  /** `/metrics` on the main port (true), off (false), or on a port of its own. */
  metrics: boolean | number;
  /** `/healthz` and `/readyz` also on a port of their own. */
  healthPort?: number;
  /** The admin API's bearer token; the admin API is off without one. */
  adminToken?: string;
  /** Log to this file (reopened on SIGHUP) instead of standard error. */
  logFile?: string;
  archives?: ArchivesConfig;
}

export const DEFAULTS: Config = {
  imagePath: "/var/lib/ociregistry",
  host: "0.0.0.0",
  port: 8080,
  logLevel: "info",
  logFormat: "text",
  defaultNs: "docker.io",
  pullTimeoutMs: 60_000,
  airGapped: false,
  revalidateAfterMs: 5 * 60_000,
  registries: [],
  tagPolicies: [],
  upstreams: "public",
  maxUpstreamConnections: 32,
  maxUpstreamConnectionsTotal: 192,
  minTransferRate: 1024,
  transferRateWindowMs: 30_000,
  users: [],
  metrics: true,
};
