// The figures of `GET /api/v1/status` (and of `/status.json` with the admin token) and, without
// image names and without the upstreams clients named, of the public `/status.json` the status
// page reads when the admin API is off: a client-named upstream's name (`secret-db.internal:5432`)
// and circuit state tell what is inside the network, so the public view counts them only.
import type { Config } from "../config/schema.ts";
import type { Upstreams } from "../upstream/client.ts";
import type { HistoryView } from "./history.ts";
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
  /** The last failure seen (UTC) and what it was; the public view gives its kind only. */
  lastError: { at: string; error: string } | null;
}

export function createStatus(o: { cfg: Config; version: string; started: number; metrics: Metrics; upstreams: Upstreams; listed: Set<string>; quota: Quota; history?: () => HistoryView }) {
  function upstreamRows(): UpstreamRow[] {
    const s = o.upstreams.status();
    const open = new Map(s.open.map((b) => [b.upstream, b]));
    const names = new Set([...o.listed, ...open.keys(), ...Object.keys(s.active)]);
    return [...names].map((name) => {
      const r = o.cfg.registries.find((x) => x.name === name);
      const b = open.get(name);
      const e = s.lastError(name);
      return {
        name, scheme: r?.scheme ?? "https", auth: r?.auth ? "basic credentials" : "anonymous", configured: !!r,
        circuit: b?.state ?? "closed", retryInMs: b?.retryInMs ?? 0, activeRequests: s.active[name] ?? 0,
        lastError: e ? { at: new Date(e.at).toISOString(), error: e.error } : null,
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
      /** Upstreams are never contacted: the page says so instead of "healthy". */
      airGapped: o.cfg.airGapped,
      upstreams: rows,
      history: o.history?.() ?? null,
    };
  }

  return {
    /** The public figures: listed upstreams by name, client-named ones only counted. */
    aggregate() {
      const rows = upstreamRows();
      // A listed upstream's mirrors appear as "<name> via <mirror>": the operator configured them.
      const listed = (r: UpstreamRow) => o.listed.has(r.name.split(" via ")[0]!);
      const others = rows.filter((r) => !listed(r));
      // An error's detail can name a repository a client asked for: the public view keeps its kind.
      const kindOnly = (r: UpstreamRow): UpstreamRow => ({ ...r, lastError: r.lastError && { at: r.lastError.at, error: r.lastError.error.split(":")[0]! } });
      return {
        ...figures(rows.filter(listed).map(kindOnly)),
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
        upstreamPolicy: o.cfg.upstreams,
        inFlightPulls: o.metrics.counts.downloadsInFlight,
      };
    },
  };
}
