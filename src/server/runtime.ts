// Builds the store, upstream client and cache from a Config: what every command that touches
// images shares, so serve, load and prune use one code path.
import { join } from "node:path";
import { createCache, type ArchiveSource, type CacheObserver, type PeerLink } from "../cache/index.ts";
import type { Config } from "../config/schema.ts";
import { compilePattern } from "../config/values.ts";
import type { QuietGate } from "../lib/quiet.ts";
import type { Logger } from "../log.ts";
import { canonicalUpstream } from "../oci/names.ts";
import { createFsStore } from "../store/fs.ts";
import { ownTempPrefix } from "../store/keys.ts";
import type { S3Observer } from "../store/s3/store.ts";
import type { Store, StoreStats } from "../store/types.ts";
import type { QuotaObserver } from "../cache/index.ts";
import { ConfigError } from "../config/error.ts";
import { imagePattern } from "../oci/pattern.ts";
import { createTagIndex } from "../cache/tag-index.ts";
import { createUpstreams, type UpstreamObserver, type UpstreamSettings } from "../upstream/client.ts";
import { credentialHelper } from "../upstream/credential-helper.ts";

/** The upstreams the operator named: the default namespace and every registries entry. */
export function listedUpstreams(cfg: Config): Set<string> {
  return new Set([canonicalUpstream(cfg.defaultNs), ...cfg.registries.map((r) => r.name)]);
}

/**
 * Every host the operator named, which the upstream policy lets the cache contact even on an
 * internal address: the listed upstreams, their mirrors and token hosts, and `extra` (hosts of the
 * operator's own image lists).
 */
export function guardListed(cfg: Config, extra: Iterable<string> = []): Set<string> {
  const hosts = listedUpstreams(cfg);
  for (const r of cfg.registries) {
    for (const t of r.tokenHosts ?? []) hosts.add(t.toLowerCase());
    for (const e of r.endpoints ?? []) {
      try {
        hosts.add(new URL(e.url).host);
      } catch {
        // The config loader already refused a bad endpoint URL.
      }
    }
  }
  for (const h of extra) hosts.add(h);
  return hosts;
}

/** The upstream client's settings from the config's registries (at start and on a reload). */
export function upstreamSettings(cfg: Config, log: Logger): UpstreamSettings[] {
  return cfg.registries.map((r) => ({
    name: r.name, scheme: r.scheme, tls: r.tls, tokenHosts: r.tokenHosts, originFallback: r.originFallback, userAgent: r.userAgent,
    credentials: r.auth ?? (r.credentialHelper ? credentialHelper(r.credentialHelper, r.name, (m) => log.withTag("upstream").warn(m)) : undefined),
    endpoints: r.endpoints?.map((e) => ({ url: e.url, credentials: e.auth, tls: e.tls })),
  }));
}

export interface RuntimeHooks {
  /** Told whenever the store's figures change (metrics). */
  usage?: (figures: StoreStats) => void;
  quota?: QuotaObserver;
  cache?: CacheObserver;
  upstream?: UpstreamObserver;
  /** Served before the store and the upstreams (`serve --archives`). */
  archives?: ArchiveSource;
  /** Upstreams the operator named in an image list (load, preload): listed for the guard. */
  listed?: Iterable<string>;
  /** How this replica reaches the others on one S3 store (serve with `replicas`). */
  peers?: PeerLink;
  /** A long-running `serve` (not `load`): keeps a local copy of S3 blobs. */
  serving?: boolean;
  /** When `serve`'s clients are quiet: S3 uploads wait for it (lib/quiet.ts). */
  quiet?: QuietGate;
  /** The S3 store's figures (metrics). */
  s3?: S3Observer;
}

/**
 * The store the config names: S3 when `store`/`s3` is set, else the directory. `localCopy`: a
 * long-running `serve` keeps its local copy of S3 blobs (a command's would be dropped at its exit).
 */
export async function openStore(cfg: Config, opts: { localCopy?: boolean; log?: Logger; quiet?: QuietGate; observe?: S3Observer } = {}): Promise<Store> {
  if (!cfg.s3) return createFsStore(cfg.imagePath);
  const s = cfg.s3;
  // Loaded only for an S3 store: its client (node:crypto, http) costs ~7 MiB of RSS a directory store never uses.
  const { createS3Store } = await import("../store/s3/store.ts");
  return createS3Store({
    endpoint: s.endpoint, region: s.region, bucket: s.bucket, accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey,
    pathStyle: s.forcePathStyle, prefix: s.prefix, redirect: s.redirect, scratchDir: cfg.imagePath, staleUploadMs: s.abortUploadsAfterMs,
    ...(opts.localCopy ? { localCopyBytes: s.localCopyBytes } : {}),
    // Beside the download when the trail is 0: nothing left to wait for at its end.
    ...(opts.quiet && s.uploadTrailBytes > 0 ? { uploadWhenQuiet: opts.quiet.wait, uploadTrailBytes: s.uploadTrailBytes } : {}),
    ...(opts.log ? { debug: (m: string) => opts.log!.withTag("store").debug(m) } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
  });
}

/** Bounds the store can keep: an S3 store has no filesystem to take a share of. */
export function checkBounds(cfg: Config) {
  if (cfg.s3 && (cfg.minFreeSpace || (cfg.maxSize && "percent" in cfg.maxSize))) {
    throw new ConfigError(cfg.minFreeSpace ? "minFreeSpace" : "maxSize", "an S3 store has no filesystem: give maxSize in bytes (it bounds the bucket prefix) and leave minFreeSpace out");
  }
}

export async function createRuntime(cfg: Config, log: Logger, hooks: RuntimeHooks = {}) {
  const base = await openStore(cfg, { localCopy: hooks.serving, log, ...(hooks.quiet ? { quiet: hooks.quiet } : {}), ...(hooks.s3 ? { observe: hooks.s3 } : {}) });
  checkBounds(cfg);
  const removed = await base.init();
  if (removed) log.withTag("store").info(`removed ${removed} leftover temp file(s) or upload(s) of interrupted runs`);
  const upstreams = createUpstreams({
    timeoutMs: cfg.pullTimeoutMs,
    registries: upstreamSettings(cfg, log),
    debug: (m) => log.withTag("upstream").debug(m),
    connectionsPerUpstream: cfg.maxUpstreamConnections,
    connectionsTotal: cfg.maxUpstreamConnectionsTotal,
    guard: { policy: cfg.upstreams, listed: guardListed(cfg, hooks.listed) },
    onRefused: (upstream, reason) => log.withTag("upstream").warn(`upstream ${upstream} refused us: ${reason}`),
    observe: hooks.upstream,
  });
  // The cache writes through the index, so the admin API's pages see this process's changes at once.
  const tags = createTagIndex(base);
  const cache = createCache({
    store: tags.store, upstreams, airGapped: cfg.airGapped, revalidateAfterMs: cfg.revalidateAfterMs,
    pullTimeoutMs: cfg.pullTimeoutMs, log: log.withTag("cache"),
    tagPolicies: cfg.tagPolicies.map((p, i) => ({ match: compilePattern(p.match, `tagPolicies[${i}].match`), revalidateAfterMs: p.revalidateAfterMs })),
    observe: hooks.cache, archives: hooks.archives,
    minTransferRate: { bytesPerSecond: cfg.minTransferRate, windowMs: cfg.transferRateWindowMs },
    bounds: { maxSize: cfg.maxSize, minFreeSpace: cfg.minFreeSpace },
    pinned: cfg.pinned.map(imagePattern),
    onUsage: hooks.usage, observeQuota: hooks.quota, peers: hooks.peers,
    // Beside the S3 store's scratch copies: relays spool there too.
    relayDir: join(cfg.imagePath, ownTempPrefix(), "relays"),
  });
  // The cache's store: what the admin API, prune and list do through it is counted and bounded.
  return { store: cache.store, upstreams, cache, tags };
}
