// The last hour of traffic for the status page's charts: one sample every 10 s (360 kept) of
// requests, cache hits and misses, bytes served and 5xx answers, taken as differences of the
// counters the metrics keep. In memory only: a restart begins an empty hour.
export const SAMPLE_MS = 10_000;
export const SAMPLES = 360;

/** The counters a sample is taken from (metrics.counts). */
export interface TrafficCounts {
  requests: number;
  hits: number;
  misses: number;
  servedBytes: number;
  serverErrors: number;
}

const SERIES = ["requests", "hits", "misses", "bytes", "errors"] as const;
type Series = (typeof SERIES)[number];

/** Oldest sample first; the last one is the interval running now (partial). Compact: one array per series. */
export type HistoryView = { stepSeconds: number; end: string } & Record<Series, number[]>;

export function createHistory(counts: Readonly<TrafficCounts>, now: () => number = Date.now) {
  const rings = Object.fromEntries(SERIES.map((s) => [s, new Float64Array(SAMPLES)])) as Record<Series, Float64Array>;
  let head = 0;
  let filled = 0;
  const read = (c: Readonly<TrafficCounts>): Record<Series, number> => ({
    requests: c.requests, hits: c.hits, misses: c.misses, bytes: c.servedBytes, errors: c.serverErrors,
  });
  let last = read(counts);

  return {
    /** Closes the running interval as a sample (called every SAMPLE_MS). */
    take() {
      const cur = read(counts);
      for (const s of SERIES) rings[s][head] = cur[s] - last[s];
      last = cur;
      head = (head + 1) % SAMPLES;
      filled = Math.min(SAMPLES, filled + 1);
    },
    view(): HistoryView {
      const cur = read(counts);
      const out = { stepSeconds: SAMPLE_MS / 1000, end: new Date(now()).toISOString() } as HistoryView;
      for (const s of SERIES) {
        const a: number[] = [];
        for (let i = filled; i > 0; i--) a.push(rings[s][(head - i + SAMPLES) % SAMPLES]!);
        a.push(cur[s] - last[s]);
        out[s] = a;
      }
      return out;
    },
  };
}
