// The figures of `GET /api/v1/status` (and of `/status.json` with the admin token) and, without
// image names and without the upstreams clients named, of the public `/status.json` the status
// page reads when the admin API is off: a client-named upstream's name (`secret-db.internal:5432`)
// and circuit state tell what is inside the network, so the public view counts them only.
import type { Config } from "../config/schema.ts";
import type { Upstreams } from "../upstream/client.ts";
import type { Metrics } from "./metrics.ts";
import type { Quota } from "../cache/index.ts";

export interface UpstreamRow {
  name: string;
  scheme: string;
  auth: string;
  configured: boolean;
  circuit: string;
  retryInMs: number;
  activeRequests: number;
}

export function createStatus(o: { cfg: Config; version: string; started: number; metrics: Metrics; upstreams: Upstreams; listed: Set<string>; quota: Quota }) {
  function upstreamRows(): UpstreamRow[] {
    const s = o.upstreams.status();
    const open = new Map(s.open.map((b) => [b.upstream, b]));
    const names = new Set([...o.listed, ...open.keys(), ...Object.keys(s.active)]);
    return [...names].map((name) => {
      const r = o.cfg.registries.find((x) => x.name === name);
      const b = open.get(name);
      return {
        name, scheme: r?.scheme ?? "https", auth: r?.auth ? "basic credentials" : "anonymous", configured: !!r,
        circuit: b?.state ?? "closed", retryInMs: b?.retryInMs ?? 0, activeRequests: s.active[name] ?? 0,
      };
    });
  }

  function figures(rows: UpstreamRow[]) {
    const c = o.metrics.counts;
    return {
      version: o.version,
      uptimeSeconds: (Date.now() - o.started) / 1000,
      // Bounds and free space as last read (the metrics scrape and every download read them).
      store: { ...o.metrics.store, ...o.quota.snapshot() },
      cache: { hits: c.hits, misses: c.misses, hitRate: c.hits + c.misses ? c.hits / (c.hits + c.misses) : null, downloadsInFlight: c.downloadsInFlight },
      upstreams: rows,
    };
  }

  return {
    /** The public figures: listed upstreams by name, client-named ones only counted. */
    aggregate() {
      const rows = upstreamRows();
      // A listed upstream's mirrors appear as "<name> via <mirror>": the operator configured them.
      const listed = (r: UpstreamRow) => o.listed.has(r.name.split(" via ")[0]!);
      const others = rows.filter((r) => !listed(r));
      return {
        ...figures(rows.filter(listed)),
        /** Upstreams clients named, counted: those with an open circuit, and their requests open now. */
        otherUpstreams: {
          circuitsOpen: others.filter((r) => r.circuit !== "closed").length,
          activeRequests: others.reduce((n, r) => n + r.activeRequests, 0),
        },
      };
    },
    /** What the admin API's status shows: every upstream, plus settings an operator checks. */
    full() {
      return {
        ...figures(upstreamRows()),
        startedAt: new Date(o.started).toISOString(),
        imagePath: o.cfg.imagePath,
        airGapped: o.cfg.airGapped,
        upstreamPolicy: o.cfg.upstreams,
        inFlightPulls: o.metrics.counts.downloadsInFlight,
      };
    },
  };
}
