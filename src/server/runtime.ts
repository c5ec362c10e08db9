// Builds the store, upstream client and cache from a Config: what every command that touches
// images shares, so serve, load and prune use one code path.
import { createCache, type ArchiveSource, type CacheObserver } from "../cache/index.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import { canonicalUpstream } from "../oci/names.ts";
import { createFsStore } from "../store/fs.ts";
import type { Store } from "../store/types.ts";
import { createUpstreams, type UpstreamObserver } from "../upstream/client.ts";

/** The upstreams the operator named: the default namespace and every registries entry. */
export function listedUpstreams(cfg: Config): Set<string> {
  return new Set([canonicalUpstream(cfg.defaultNs), ...cfg.registries.map((r) => r.name)]);
}

export interface RuntimeHooks {
  /** Wraps the store (metrics count what is added and removed). */
  store?: (s: Store) => Store;
  cache?: CacheObserver;
  upstream?: UpstreamObserver;
  /** Served before the store and the upstreams (`serve --archives`). */
  archives?: ArchiveSource;
}

export async function createRuntime(cfg: Config, log: Logger, hooks: RuntimeHooks = {}) {
  const fsStore = createFsStore(cfg.imagePath);
  const store = hooks.store ? hooks.store(fsStore) : fsStore;
  const removed = await store.init();
  if (removed) log.withTag("store").info(`removed ${removed} leftover temp file(s) from an interrupted run`);
  const upstreams = createUpstreams({
    timeoutMs: cfg.pullTimeoutMs,
    registries: cfg.registries.map((r) => ({ name: r.name, scheme: r.scheme, credentials: r.auth, tls: r.tls, tokenHosts: r.tokenHosts })),
    connectionsPerUpstream: cfg.maxUpstreamConnections,
    guard: { listedOnly: cfg.upstreams === "listed", listed: listedUpstreams(cfg) },
    onRefused: (upstream, reason) => log.withTag("upstream").warn(`upstream ${upstream} refused us: ${reason}`),
    observe: hooks.upstream,
  });
  const cache = createCache({
    store, upstreams, airGapped: cfg.airGapped, revalidateAfterMs: cfg.revalidateAfterMs,
    pullTimeoutMs: cfg.pullTimeoutMs, log: log.withTag("cache"),
    tagPolicies: cfg.tagPolicies.map((p) => ({ match: new RegExp(p.match), revalidateAfterMs: p.revalidateAfterMs })),
    observe: hooks.cache, archives: hooks.archives,
  });
  return { store, upstreams, cache };
}
