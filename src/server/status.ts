// The figures of `GET /api/v1/status` and, without image names, of the public `/status.json`
// the status page reads when the admin API is off.
import type { Config } from "../config/schema.ts";
import type { Upstreams } from "../upstream/client.ts";
import type { Metrics } from "./metrics.ts";

export function createStatus(o: { cfg: Config; version: string; started: number; metrics: Metrics; upstreams: Upstreams }) {
  function upstreamRows() {
    const s = o.upstreams.status();
    const open = new Map(s.open.map((b) => [b.upstream, b]));
    const names = new Set([o.cfg.defaultNs, ...o.cfg.registries.map((r) => r.name), ...open.keys(), ...Object.keys(s.active)]);
    return [...names].map((name) => {
      const r = o.cfg.registries.find((x) => x.name === name);
      const b = open.get(name);
      return {
        name, scheme: r?.scheme ?? "https", auth: r?.auth ? "basic credentials" : "anonymous", configured: !!r,
        circuit: b?.state ?? "closed", retryInMs: b?.retryInMs ?? 0, activeRequests: s.active[name] ?? 0,
      };
    });
  }

  function aggregate() {
    const c = o.metrics.counts;
    return {
      version: o.version,
      uptimeSeconds: (Date.now() - o.started) / 1000,
      store: { ...o.metrics.store },
      cache: { hits: c.hits, misses: c.misses, hitRate: c.hits + c.misses ? c.hits / (c.hits + c.misses) : null, downloadsInFlight: c.downloadsInFlight },
      upstreams: upstreamRows(),
    };
  }

  return {
    aggregate,
    /** What the admin API's status shows: the aggregates plus settings an operator checks. */
    full() {
      return {
        ...aggregate(),
        startedAt: new Date(o.started).toISOString(),
        imagePath: o.cfg.imagePath,
        airGapped: o.cfg.airGapped,
        upstreamPolicy: o.cfg.upstreams,
        inFlightPulls: o.metrics.counts.downloadsInFlight,
      };
    },
  };
}
