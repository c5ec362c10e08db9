// Prometheus metrics (prom-client), named `ociregistry_*` with units in the names. The cache, the
// upstream client and the store report through hooks; nothing here walks the store on a scrape.
// Upstream names come from clients under `upstreams: any`, so the upstream label names only the
// listed upstreams (default namespace and registries entries) and says `other` for every upstream a
// client named; upstream statuses are classes (`2xx`…`5xx`, `error`). The series count is bounded
// by the configuration, whatever clients and upstreams send.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { BoundedMap } from "../lib/bounded-map.ts";
import pkg from "../../package.json" with { type: "json" };
import { fastCounter, fastHistogram } from "./fast-metrics.ts";
import { registerProcessMetrics } from "./process-metrics.ts";
import type { CacheObserver, EvictionReason, EvictionReport, Quota, QuotaObserver } from "../cache/index.ts";
import type { StoreStats } from "../store/types.ts";
import type { UpstreamObserver } from "../upstream/client.ts";

/** How many client-named upstreams with an open circuit are remembered for the `other` gauge. */
const MAX_OPEN_OTHERS = 10_000;
/** Status labels made once, not per request. */
const STATUS: Record<number, string> = Object.fromEntries([200, 206, 304, 400, 401, 403, 404, 405, 416, 429, 500, 502, 503, 504].map((s) => [s, String(s)]));

export type Metrics = ReturnType<typeof createMetrics>;

/** The label of an upstream answer: its status class, or `error` for no answer (or a status outside 200-599). */
export function statusClass(outcome: number | string): "2xx" | "3xx" | "4xx" | "5xx" | "error" {
  if (typeof outcome !== "number" || outcome < 200 || outcome > 599) return "error";
  return outcome < 300 ? "2xx" : outcome < 400 ? "3xx" : outcome < 500 ? "4xx" : "5xx";
}

export function createMetrics(listed: Iterable<string> = []) {
  const registry = new Registry();
  const reg = { registers: [registry] };
  const known = new Set<string>(listed);
  const up = (u: string) => (known.has(u) ? u : "other");
  /** Client-named upstreams whose circuit is open now: the `other` breaker gauge is their count. */
  const openOthers = new BoundedMap<string, true>(MAX_OPEN_OTHERS);

  // The per-request metrics are the fast kind (fast-metrics.ts); the rest are prom-client's own.
  const requests = fastCounter(registry, "ociregistry_http_requests_total", "HTTP requests answered, by route, method and status", ["route", "method", "status"]);
  const duration = fastHistogram(registry, "ociregistry_http_request_duration_seconds", "Time to the response headers, by route and method", ["route", "method"],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  const served = fastCounter(registry, "ociregistry_served_bytes_total", "Bytes of manifests and blobs sent to clients (by Content-Length)", ["route"]);
  const hits = fastCounter(registry, "ociregistry_cache_hits_total", "Manifests and blobs served from memory or the store", ["kind"]);
  const misses = fastCounter(registry, "ociregistry_cache_misses_total", "Manifests and blobs that needed an upstream", ["kind"]);
  const hitCells = { manifest: hits.cell("manifest"), blob: hits.cell("blob") };
  const missCells = { manifest: misses.cell("manifest"), blob: misses.cell("blob") };
  const inFlight = new Gauge({ name: "ociregistry_downloads_in_flight", help: "Blob downloads from upstreams running now", ...reg });
  const joined = new Counter({ name: "ociregistry_download_joins_total", help: "Client requests that joined a download another request started", ...reg });
  const downloaded = new Counter({ name: "ociregistry_downloads_total", help: "Blob downloads finished, by result", labelNames: ["result"], ...reg });
  const upRequests = new Counter({ name: "ociregistry_upstream_requests_total", help: "Requests to upstreams, by upstream (listed ones; other for client-named) and status class (2xx to 5xx, error for no answer)", labelNames: ["upstream", "status"], ...reg });
  const upErrors = new Counter({ name: "ociregistry_upstream_errors_total", help: "Upstream requests that failed (no answer, or 5xx/429), by upstream", labelNames: ["upstream"], ...reg });
  const upBytes = new Counter({ name: "ociregistry_upstream_bytes_total", help: "Body bytes read from upstreams", labelNames: ["upstream"], ...reg });
  const upLatency = new Histogram({
    name: "ociregistry_upstream_request_duration_seconds", help: "Time to an upstream's response headers", labelNames: ["upstream"],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], ...reg,
  });
  const breaker = new Gauge({ name: "ociregistry_upstream_circuit_open", help: "1 while a listed upstream's circuit breaker is open; for other, how many client-named upstreams have theirs open", labelNames: ["upstream"], ...reg });
  const remaining = new Gauge({ name: "ociregistry_upstream_ratelimit_remaining", help: "Docker Hub's ratelimit-remaining from the last answer, by upstream", labelNames: ["upstream"], ...reg });
  const tokens = new Counter({ name: "ociregistry_token_fetches_total", help: "Bearer token fetches, by upstream and result", labelNames: ["upstream", "result"], ...reg });
  const storeBytes = new Gauge({ name: "ociregistry_store_bytes", help: "Bytes of blobs and manifests in the store", ...reg });
  const storeMax = new Gauge({ name: "ociregistry_store_max_bytes", help: "The store's maxSize in bytes (0: unbounded)", ...reg });
  const storeFree = new Gauge({ name: "ociregistry_store_free_bytes", help: "Free bytes on the store's filesystem (directory store)", ...reg });
  const storeFull = new Gauge({ name: "ociregistry_store_full", help: "1 while the store has no room and nothing can be evicted: cold pulls are passed through without being stored", ...reg });
  const evictions = new Counter({ name: "ociregistry_evictions_total", help: "Images evicted to keep the store's bounds, by reason (max-size, min-free-space)", labelNames: ["reason"], ...reg });
  const evicted = new Counter({ name: "ociregistry_evicted_bytes_total", help: "Bytes of blobs and manifests removed by eviction", ...reg });
  const storeItems = new Gauge({ name: "ociregistry_store_items", help: "Blobs, manifests and tag records in the store", labelNames: ["kind"], ...reg });
  const pruneRuns = new Counter({ name: "ociregistry_prune_runs_total", help: "Prune runs inside serve (and through the admin API)", ...reg });
  const pruneFreed = new Counter({ name: "ociregistry_prune_freed_bytes_total", help: "Bytes removed by prune", ...reg });
  registerProcessMetrics(registry, pkg.version);

  /** Plain figures for the status endpoint (prom-client's are for scrapes). */
  const counts = { hits: 0, misses: 0, downloadsInFlight: 0, requests: 0, servedBytes: 0, serverErrors: 0 };
  const cache: CacheObserver = {
    hit: (kind) => {
      counts.hits++;
      hitCells[kind].v++;
    },
    miss: (kind) => {
      counts.misses++;
      missCells[kind].v++;
    },
    downloadStarted: () => {
      counts.downloadsInFlight++;
      inFlight.inc();
    },
    downloadEnded: (_bytes, ok) => {
      counts.downloadsInFlight--;
      inFlight.dec();
      downloaded.labels(ok ? "ok" : "failed").inc();
    },
    joined: () => joined.inc(),
  };

  const upstream: UpstreamObserver = {
    request(u, outcome, ms) {
      const name = up(u);
      upRequests.labels(name, statusClass(outcome)).inc();
      upLatency.labels(name).observe(ms / 1000);
      if (typeof outcome !== "number" || outcome >= 500 || outcome === 429) upErrors.labels(name).inc();
    },
    bytes: (u, n) => upBytes.labels(up(u)).inc(n),
    token: (u, ok) => tokens.labels(up(u), ok ? "ok" : "failed").inc(),
    breaker(u, open) {
      if (known.has(u)) return breaker.labels(u).set(open ? 1 : 0);
      if (open) openOthers.set(u, true);
      else openOthers.delete(u);
      breaker.labels("other").set(openOthers.size);
    },
    // One upstream's remaining pulls; a sum over client-named ones would mean nothing.
    rateLimitRemaining: (u, n) => void (known.has(u) && remaining.labels(u).set(n)),
  };

  const figures = { bytes: 0, blobs: 0, manifests: 0, tags: 0 };
  function publish() {
    storeBytes.set(figures.bytes);
    storeItems.labels("blobs").set(figures.blobs);
    storeItems.labels("manifests").set(figures.manifests);
    storeItems.labels("tags").set(figures.tags);
  }

  return {
    registry,
    cache,
    upstream,
    /** Store figures as this process knows them (counted at start, then kept up to date). */
    store: figures,
    counts,
    request(route: string, method: string, status: number, seconds: number, bytes: number | null) {
      requests.inc(1, route, method, STATUS[status] ?? String(status));
      counts.requests++;
      if (status >= 500) counts.serverErrors++;
      if (bytes) counts.servedBytes += bytes;
      duration.observe(seconds, route, method);
      if (bytes) served.inc(bytes, route);
    },
    pruned(bytes: number) {
      pruneRuns.inc();
      pruneFreed.inc(bytes);
    },
    /** The store's figures changed (see store/usage.ts): they are published as they are. */
    usage(f: StoreStats) {
      Object.assign(figures, f);
      publish();
    },
    /** Eviction and the store's bounds. */
    quota: {
      evicted(r: EvictionReport, reason: EvictionReason) {
        evictions.labels(reason).inc(r.images.length);
        evicted.inc(r.bytes);
      },
      full: (v: boolean) => storeFull.set(v ? 1 : 0),
    } satisfies QuotaObserver,
    /** Bounds and free space, read at scrape time (a statfs at most once a second). */
    async bounds(quota: Quota) {
      const q = await quota.status();
      storeMax.set(q.maxBytes ?? 0);
      if (q.freeBytes !== null) storeFree.set(q.freeBytes);
      storeFull.set(q.full ? 1 : 0);
    },
  };
}
