// Prometheus metrics (our own text exposition, fast-metrics.ts), named `ociregistry_*` with units in the names. The cache, the
// upstream client and the store report through hooks; nothing here walks the store on a scrape.
// Upstream names come from clients under `upstreams: any`, so the upstream label names only the
// listed upstreams (default namespace and registries entries) and says `other` for every upstream a
// client named; upstream statuses are classes (`2xx`…`5xx`, `error`). The series count is bounded
// by the configuration, whatever clients and upstreams send.
import { BoundedMap } from "../lib/bounded-map.ts";
import pkg from "../../package.json" with { type: "json" };
import { fastCounter, fastGauge, fastHistogram, MetricRegistry } from "./fast-metrics.ts";
import { registerProcessMetrics } from "./process-metrics.ts";
import type { CacheObserver, EvictionReason, EvictionReport, Quota, QuotaObserver } from "../cache/index.ts";
import type { S3Observer } from "../store/s3/store.ts";
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

export function createMetrics(listed: Iterable<string> = [], opts: { s3?: boolean } = {}) {
  const registry = new MetricRegistry();
  const known = new Set<string>(listed);
  const up = (u: string) => (known.has(u) ? u : "other");
  /** Client-named upstreams whose circuit is open now: the `other` breaker gauge is their count. */
  const openOthers = new BoundedMap<string, true>(MAX_OPEN_OTHERS);

  const requests = fastCounter(registry, "ociregistry_http_requests_total", "HTTP requests answered, by route, method and status", ["route", "method", "status"]);
  const duration = fastHistogram(registry, "ociregistry_http_request_duration_seconds", "Time to the response headers, by route and method", ["route", "method"],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  const served = fastCounter(registry, "ociregistry_served_bytes_total", "Bytes of manifests and blobs sent to clients (by Content-Length)", ["route"]);
  const hits = fastCounter(registry, "ociregistry_cache_hits_total", "Manifests and blobs served from memory or the store", ["kind"]);
  const misses = fastCounter(registry, "ociregistry_cache_misses_total", "Manifests and blobs that needed an upstream", ["kind"]);
  const hitCells = { manifest: hits.cell("manifest"), blob: hits.cell("blob") };
  const missCells = { manifest: misses.cell("manifest"), blob: misses.cell("blob") };
  const inFlight = fastGauge(registry, "ociregistry_downloads_in_flight", "Blob downloads from upstreams running now");
  const joined = fastCounter(registry, "ociregistry_download_joins_total", "Client requests that joined a download another request started");
  const downloaded = fastCounter(registry, "ociregistry_downloads_total", "Blob downloads finished, by result", ["result"]);
  const upRequests = fastCounter(registry, "ociregistry_upstream_requests_total", "Requests to upstreams, by upstream (listed ones; other for client-named) and status class (2xx to 5xx, error for no answer)", ["upstream", "status"]);
  const upErrors = fastCounter(registry, "ociregistry_upstream_errors_total", "Upstream requests that failed (no answer, or 5xx/429), by upstream", ["upstream"]);
  const upBytes = fastCounter(registry, "ociregistry_upstream_bytes_total", "Body bytes read from upstreams", ["upstream"]);
  const upLatency = fastHistogram(registry, "ociregistry_upstream_request_duration_seconds", "Time to an upstream's response headers", ["upstream"],
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
  const breaker = fastGauge(registry, "ociregistry_upstream_circuit_open", "1 while a listed upstream's circuit breaker is open; for other, how many client-named upstreams have theirs open", ["upstream"]);
  const remaining = fastGauge(registry, "ociregistry_upstream_ratelimit_remaining", "Docker Hub's ratelimit-remaining from the last answer, by upstream", ["upstream"]);
  const tokens = fastCounter(registry, "ociregistry_token_fetches_total", "Bearer token fetches, by upstream and result", ["upstream", "result"]);
  const storeBytes = fastGauge(registry, "ociregistry_store_bytes", "Bytes of blobs and manifests in the store");
  const storeMax = fastGauge(registry, "ociregistry_store_max_bytes", "The store's maxSize in bytes (0: unbounded)");
  const storeFree = fastGauge(registry, "ociregistry_store_free_bytes", "Free bytes on the store's filesystem (directory store)");
  const storeFull = fastGauge(registry, "ociregistry_store_full", "1 while the store has no room and nothing can be evicted: cold pulls are passed through without being stored");
  const evictions = fastCounter(registry, "ociregistry_evictions_total", "Images evicted to keep the store's bounds, by reason (max-size, min-free-space)", ["reason"]);
  const evicted = fastCounter(registry, "ociregistry_evicted_bytes_total", "Bytes of blobs and manifests removed by eviction");
  const storeItems = fastGauge(registry, "ociregistry_store_items", "Blobs, manifests and tag records in the store", ["kind"]);
  const pruneRuns = fastCounter(registry, "ociregistry_prune_runs_total", "Prune runs inside serve (and through the admin API)");
  const pruneFreed = fastCounter(registry, "ociregistry_prune_freed_bytes_total", "Bytes removed by prune");
  registerProcessMetrics(registry, pkg.version);
  // Only with an S3 store: a directory store has neither.
  const s3: S3Observer | undefined = opts.s3 ? (() => {
    const copyBytes = fastGauge(registry, "ociregistry_s3_local_copy_bytes", "Bytes of verified S3 blobs kept on local disk and sent from there (s3.localCopy)");
    const copyItems = fastGauge(registry, "ociregistry_s3_local_copy_items", "Blobs in the local copy");
    const waiting = fastGauge(registry, "ociregistry_s3_uploads_waiting", "Verified blobs whose upload to S3 waits for the clients to be quiet (at most 2 s each)");
    return {
      localCopy(bytes, copies) {
        copyBytes.set(bytes);
        copyItems.set(copies);
      },
      uploadsWaiting: (delta) => waiting.inc(delta),
    };
  })() : undefined;

  /** Plain figures for the status endpoint (the registry's are for scrapes). */
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
      inFlight.inc(-1);
      downloaded.inc(1, ok ? "ok" : "failed");
    },
    joined: () => joined.inc(),
  };

  const upstream: UpstreamObserver = {
    request(u, outcome, ms) {
      const name = up(u);
      upRequests.inc(1, name, statusClass(outcome));
      upLatency.observe(ms / 1000, name);
      if (typeof outcome !== "number" || outcome >= 500 || outcome === 429) upErrors.inc(1, name);
    },
    bytes: (u, n) => upBytes.inc(n, up(u)),
    token: (u, ok) => tokens.inc(1, up(u), ok ? "ok" : "failed"),
    breaker(u, open) {
      if (known.has(u)) return breaker.set(open ? 1 : 0, u);
      if (open) openOthers.set(u, true);
      else openOthers.delete(u);
      breaker.set(openOthers.size, "other");
    },
    // One upstream's remaining pulls; a sum over client-named ones would mean nothing.
    rateLimitRemaining: (u, n) => void (known.has(u) && remaining.set(n, u)),
  };

  const figures = { bytes: 0, blobs: 0, manifests: 0, tags: 0 };
  function publish() {
    storeBytes.set(figures.bytes);
    storeItems.set(figures.blobs, "blobs");
    storeItems.set(figures.manifests, "manifests");
    storeItems.set(figures.tags, "tags");
  }

  return {
    registry,
    cache,
    upstream,
    /** The S3 store's figures (undefined without an S3 store). */
    s3,
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
        evictions.inc(r.images.length, reason);
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
