// Builds the store, upstream client and cache from a Config: what every command that touches
// images shares, so serve, load and prune use one code path.
import { createCache } from "../cache/index.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import { canonicalUpstream } from "../oci/names.ts";
import { createFsStore } from "../store/fs.ts";
import { createUpstreams } from "../upstream/client.ts";

/** The upstreams the operator named: the default namespace and every registries entry. */
export function listedUpstreams(cfg: Config): Set<string> {
  return new Set([canonicalUpstream(cfg.defaultNs), ...cfg.registries.map((r) => r.name)]);
}

export async function createRuntime(cfg: Config, log: Logger) {
  const store = createFsStore(cfg.imagePath);
  const removed = await store.init();
  if (removed) log.withTag("store").info(`removed ${removed} leftover temp file(s) from an interrupted run`);
  const upstreams = createUpstreams({
    timeoutMs: cfg.pullTimeoutMs,
    registries: cfg.registries.map((r) => ({ name: r.name, scheme: r.scheme, credentials: r.auth, tls: r.tls, tokenHosts: r.tokenHosts })),
    connectionsPerUpstream: cfg.maxUpstreamConnections,
    guard: { listedOnly: cfg.upstreams === "listed", listed: listedUpstreams(cfg) },
    onRefused: (upstream, reason) => log.withTag("upstream").warn(`upstream ${upstream} refused us: ${reason}`),
  });
  const cache = createCache({
    store, upstreams, airGapped: cfg.airGapped, revalidateAfterMs: cfg.revalidateAfterMs,
    pullTimeoutMs: cfg.pullTimeoutMs, log: log.withTag("cache"),
    tagPolicies: cfg.tagPolicies.map((p) => ({ match: new RegExp(p.match), revalidateAfterMs: p.revalidateAfterMs })),
  });
  return { store, upstreams, cache };
}
