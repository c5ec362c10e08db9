// The one definition of the configuration file: every key with its type, default, description
// and the flag that mirrors it. The TypeScript types, the validation, the CLI flags, the JSON
// Schema and the reference table all come from here. Keys match the seed project's YAML
// (imagePath, port, registries[], serverTlsConfig, pruneConfig...) so its files keep working.
import * as v from "valibot";
import { isHost } from "../oci/names.ts";
import { registries, type RegistryFile, type RegistryTls } from "./registries.ts";
import { admin, archives, pruneConfig, replicas, s3, serverTlsConfig, storeUrl, tagPolicies, users } from "./sections.ts";
import { bool, doc, duration, imagePattern, mapping, millis, oneOf, port, rate, size, str, whole, type KeyDoc } from "./values.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const UPSTREAM_POLICIES = ["public", "listed", "any"] as const;
/** Which upstreams clients may make the cache contact (see the `upstreams` key). */
export type UpstreamPolicy = (typeof UPSTREAM_POLICIES)[number];

const got = (problem: string) => (issue: v.BaseIssue<unknown>) => `${problem}, got ${JSON.stringify(issue.input)}`;
const flag = (group: NonNullable<KeyDoc["flag"]>["group"], hint: string, help?: string, sets?: string): KeyDoc => ({ flag: { group, hint, help, sets } });

/** Top-level keys, in the order the reference table lists them. */
export const entries = {
  imagePath: doc(v.optional(str(), "/var/lib/ociregistry"), "the store directory (with an S3 store: the local directory for temporary files)", flag("global", "DIR")),
  store: doc(v.optional(storeUrl), "`s3://BUCKET/PREFIX` keeps the store in S3 (the `s3` section gives the endpoint and keys; `imagePath` then holds temporary files)", flag("global", "URL")),
  s3: doc(v.optional(s3), "the S3 service and where in it (with `store`)"),
  replicas: doc(v.optional(replicas), "replicas on one S3 store: one upstream fetch per cold blob among them (docs/s3.md)"),
  port: doc(v.optional(port(), 8080), "port `serve` listens on", flag("serve", "PORT")),
  host: doc(v.optional(v.pipe(str(), v.check((h) => isHost(h) && (!h.includes(":") || h.startsWith("[")), got("must be an IP address or host name"))), "0.0.0.0"),
    "address `serve` listens on", flag("serve", "ADDR")),
  logLevel: doc(v.optional(oneOf(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(", ")}`), "info"), "`error`, `warn`, `info`, `debug` or `trace`", flag("global", "LEVEL")),
  logFormat: doc(v.optional(oneOf(["text", "json"], "must be text or json"), "text"), "`text`, or `json`: one JSON object per line for log shippers", flag("global", "FORMAT")),
  logFile: doc(v.optional(str()), "append logs to this file (reopened on SIGHUP) instead of standard error", flag("global", "FILE")),
  accessLog: doc(v.optional(bool(), true), "one line per request at `info` on the serve port: request id, client address, method, path, status, bytes, duration, how the cache served it (`hit`, `miss`, `stale`, `passthrough`, `archive`) and the upstream; `false` turns it off"),
  defaultNs: doc(v.optional(v.pipe(str(), v.check(isHost, got("must be a registry host")), v.transform((h) => h.toLowerCase())), "docker.io"),
    "upstream for requests without `?ns=` or an in-path host", flag("serve", "HOST")),
  pullTimeout: doc(v.optional(millis(), 60_000), "milliseconds (or a duration such as `90s`) to wait for upstream data", flag("upstream", "MS")),
  revalidateAfter: doc(v.optional(duration(), "5m"), "age after which a cached tag is checked upstream again with `HEAD`", flag("serve", "DURATION")),
  airGapped: doc(v.optional(bool(), false), "never contact an upstream; serve only the store", flag("serve", "")),
  tagPolicies: doc(v.optional(tagPolicies, []), "per-tag freshness: the first rule whose `match` matches sets how long that tag is served before it is checked again"),
  alwaysPullLatest: doc(v.optional(bool(), false), "the seed's switch; same as a first rule `{match: \":latest$\", revalidateAfter: 0s}`"),
  upstreams: doc(v.optional(oneOf(UPSTREAM_POLICIES, got("must be public, listed or any")), "public"),
    "which upstreams the cache contacts. `public`: any host a client names, as long as **every** address it resolves to is public (globally routable unicast); loopback, private, link-local, unique-local, CGNAT, multicast, reserved and documentation addresses and IPv4-mapped/compatible, NAT64, 6to4 and Teredo forms of them are refused unless the host is listed (the default namespace, a `registries` entry, one of its mirror `endpoints` or `tokenHosts`). `listed`: only the default namespace and `registries` entries (others get `403 DENIED`). `any`: every http(s) host, internal services included — an explicit opt-in, warned about in the start-up banner. Under `public` and `listed`, redirects and token realms follow the `public` rule",
    flag("upstream", "POLICY", "public: any upstream on public addresses, internal ones only when listed (default); listed: registries entries only; any: every host, internal services included")),
  maxUpstreamConnections: doc(v.optional(whole(1, 1024, "must be a whole number from 1 to 1024"), 32),
    "requests open at once to one upstream, counted per resolved address and port (every spelling of an address, and every name resolving to it, share one cap); more wait (up to `pullTimeout`) for a slot, so one slow upstream cannot take every connection"),
  maxUpstreamConnectionsTotal: doc(v.optional(whole(1, 224, "must be a whole number from 1 to 224 (the runtime allows 256 fetches in flight)"), 192),
    "requests open at once to all upstreams together (1–224: Bun keeps at most 256 fetches in flight and would queue the rest where no timeout sees them). Upstreams clients name (not the default namespace or a `registries` entry) hold at most half of it together, so listed upstreams always find room. When it is spent, a freed slot goes to the waiting upstream that holds the fewest. Waiting for a slot is a `503` after `pullTimeout`, never counted against the upstream's circuit"),
  minTransferRate: doc(v.optional(rate(), "1KiB/s"), "a blob download slower than this on average over `transferRateWindow` is cut like a stalled one (the client's pull fails and can be retried; nothing is stored), so a drip cannot hold a connection slot for ever; `0` turns it off"),
  transferRateWindow: doc(v.optional(duration({ ms: 1000, text: "1s" }), "30s"), "the window `minTransferRate` is averaged over; at least `1s`"),
  maxSize: doc(v.optional(size()), "the most the store may hold (blobs and manifests): `500MiB`, `20GiB`, `1TiB`, or `80%` of the filesystem it lives on (directory store). Past it, the least recently pulled images are evicted down to 90% of it; pinned images and images being downloaded stay. Unset: no bound", flag("global", "SIZE")),
  minFreeSpace: doc(v.optional(size()), "keep at least this much free on the store's filesystem (`5GiB` or `10%`), whatever else writes to it: images are evicted, and when nothing can be, pulls are served without being stored (pass-through). Directory store only", flag("global", "SIZE")),
  pinned: doc(v.optional(v.array(imagePattern(), "must be a list of image patterns"), []), "images never evicted, as patterns of `upstream/repository:tag` (`registry.k8s.io/pause:*`, `docker.io/library/*:*`; `*` matches within one path component, `**` across them); `load --pin` and the admin API pin single images"),
  registries: doc(v.optional(registries, []), "one entry per upstream that needs settings; others get anonymous HTTPS with the system trust store"),
  dockerConfig: doc(v.optional(str()), "Docker `config.json`; its `auths`, `credHelpers` and `credsStore` fill in credentials for upstreams without `auth`", flag("upstream", "FILE")),
  serverTlsConfig: doc(v.optional(serverTlsConfig), "serve HTTPS"),
  pruneConfig: doc(v.optional(pruneConfig), "background pruning inside `serve` (as the `prune` command)"),
  metrics: doc(v.optional(v.union([bool(), port()], got("must be true, false or a port number 0-65535")), true),
    "`/metrics` on the serve port; a port number serves it on that port instead; `false` turns metrics (and their bookkeeping) off"),
  health: doc(v.optional(port()), "also serve `/healthz` and `/readyz` on this port (they are always on the serve port)"),
  admin: doc(v.optional(admin), "the admin API (off without a token)"),
  archives: doc(v.optional(archives), "serve images from the `.oci` archives under a directory first", flag("archives", "DIR", "Serve images from the .oci archives under this directory first (config archives.path)", "path")),
  users: doc(v.optional(users, []), "clients must log in with HTTP basic auth"),
  htpasswd: doc(v.optional(str()), "an htpasswd file of bcrypt entries (`htpasswd -Bbn user pass`), same effect as `users`"),
  shutdownDelay: doc(v.optional(duration(), "5s"), "on SIGTERM, keep serving this long while `/readyz` answers `503` (on every port that serves it), so load balancers stop sending clients before the port closes; `0s` stops accepting at once", flag("serve", "DURATION")),
  drainTimeout: doc(v.optional(duration(), "30s"), "after `shutdownDelay`, how long requests and downloads in flight get to finish before they are cut"),
};

/** The configuration file. */
export const configSchema = mapping(entries, "must be a YAML mapping of keys");
export type ConfigKey = keyof typeof entries;
/** A config file's values, checked, with defaults and durations in milliseconds. */
export type ConfigFile = v.InferOutput<typeof configSchema>;

export interface Credentials { user: string; password: string }
export type { RegistryTls };
/** A mirror of an upstream, tried before the origin; its path becomes a repository prefix. */
export interface RegistryEndpoint { url: string; auth?: Credentials; tls?: RegistryTls }
/** A `registries` entry with its files read and its password looked up. */
export type RegistryEntry = Omit<RegistryFile, "auth" | "endpoints"> & {
  auth?: Credentials;
  /** A Docker credential helper (`docker-credential-<name>`) that supplies the credentials. */
  credentialHelper?: string;
  endpoints?: RegistryEndpoint[];
};
export type DownstreamUser = v.InferOutput<typeof users>[number];
export type TagPolicy = v.InferOutput<typeof tagPolicies>[number];
export type PruneConfig = v.InferOutput<typeof pruneConfig>;
export type ServerTls = v.InferOutput<typeof serverTlsConfig>;
export type ArchivesConfig = v.InferOutput<typeof archives>;
/** Where blobs, manifests and records live when not in `imagePath`. */
export type S3Config = Required<Omit<v.InferOutput<typeof s3>, "abortUploadsAfter" | "localCopy" | "uploadTrail">> & { abortUploadsAfterMs: number; localCopyBytes: number; uploadTrailBytes: number };

/** Keys the program gets in another form than the file's: renamed to say their unit, or resolved (files read, secrets looked up). */
type Resolved = "pullTimeout" | "revalidateAfter" | "transferRateWindow" | "shutdownDelay" | "drainTimeout" | "health" | "admin" | "htpasswd" | "alwaysPullLatest" | "store" | "s3" | "registries" | "replicas";

/** What the program runs with. */
export type Config = Omit<ConfigFile, Resolved> & {
  /** Longest wait for an upstream response or the next chunk of its body. */
  pullTimeoutMs: number;
  /** Age after which a cached tag is revalidated with a HEAD to its upstream. */
  revalidateAfterMs: number;
  transferRateWindowMs: number;
  /** SIGTERM: how long to keep serving with readiness 503, then how long in-flight work gets. */
  shutdownDelayMs: number;
  drainTimeoutMs: number;
  healthPort?: number;
  /** The admin API's bearer token; the admin API is off without one. */
  adminToken?: string;
  registries: RegistryEntry[];
  s3?: S3Config;
  /** Replicas on one S3 store: the shared secret of their internal endpoint, and this one's address there. */
  replicas?: { secret: string; advertise?: string };
};
