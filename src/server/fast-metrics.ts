// Counters and histograms for the per-request path, registered into a prom-client Registry that
// renders them. prom-client hashes its label set on every `inc` and `observe`; these keep one
// cell per label combination in nested maps, so a request costs a few map hits and additions.
import type { Registry } from "prom-client";

/** One cell per label combination, found through one small map per label. */
class Cells<T> {
  private root = new Map<string, unknown>();
  private count = 0;
  readonly all: Array<{ labels: string[]; cell: T }> = [];
  constructor(private readonly depth: number, private readonly make: () => T, private readonly max = 5000) {}

  /** The cell of (a, b, c), as many labels as the metric has; no allocation once it exists. */
  at(a: string, b?: string, c?: string): T {
    let m = this.root;
    if (this.depth > 1) m = (m.get(a) as Map<string, unknown> | undefined) ?? this.fresh(m, a);
    if (this.depth > 2) m = (m.get(b!) as Map<string, unknown> | undefined) ?? this.fresh(m, b!);
    const last = this.depth === 1 ? a : this.depth === 2 ? b! : c!;
    return (m.get(last) as T | undefined) ?? this.get([a, b, c].slice(0, this.depth) as string[]);
  }

  private fresh(m: Map<string, unknown>, k: string): Map<string, unknown> {
    const next = new Map<string, unknown>();
    m.set(k, next);
    return next;
  }

  get(labels: string[]): T {
    let m = this.root;
    for (let i = 0; i < this.depth - 1; i++) {
      let next = m.get(labels[i]!) as Map<string, unknown> | undefined;
      if (!next) m.set(labels[i]!, (next = new Map()));
      m = next;
    }
    let cell = m.get(labels[this.depth - 1]!) as T | undefined;
    if (!cell) {
      cell = this.make();
      // Past the cap, new combinations are counted but not kept (label values are bounded anyway).
      if (this.count < this.max) {
        m.set(labels[this.depth - 1]!, cell);
        this.all.push({ labels: [...labels], cell });
        this.count++;
      }
    }
    return cell;
  }
}

type Labels = Record<string, string | number>;
const toLabels = (names: string[], values: string[]): Labels => Object.fromEntries(names.map((n, i) => [n, values[i]!]));

export function fastCounter(registry: Registry, name: string, help: string, labelNames: string[]) {
  const cells = new Cells<{ v: number }>(labelNames.length, () => ({ v: 0 }));
  registry.registerMetric({
    name, help, type: "counter",
    get: () => ({ name, help, type: "counter", aggregator: "sum", values: cells.all.map((c) => ({ labels: toLabels(labelNames, c.labels), value: c.cell.v })) }),
  } as never);
  return {
    /** The cell of one label combination; keep it to count without any look-up. */
    cell: (...labels: string[]) => cells.get(labels),
    inc: (n: number, a: string, b?: string, c?: string) => void (cells.at(a, b, c).v += n),
  };
}

export function fastHistogram(registry: Registry, name: string, help: string, labelNames: string[], buckets: number[]) {
  const make = () => ({ counts: new Float64Array(buckets.length), sum: 0, n: 0 });
  const cells = new Cells<ReturnType<typeof make>>(labelNames.length, make);
  registry.registerMetric({
    name, help, type: "histogram",
    get: () => ({
      name, help, type: "histogram", aggregator: "sum",
      values: cells.all.flatMap(({ labels, cell }) => {
        const base = toLabels(labelNames, labels);
        let cumulative = 0;
        const out: Array<{ labels: Labels; value: number; metricName: string }> = buckets.map((le, i) => {
          cumulative += cell.counts[i]!;
          return { labels: { ...base, le }, value: cumulative, metricName: `${name}_bucket` };
        });
        out.push({ labels: { ...base, le: "+Inf" }, value: cell.n, metricName: `${name}_bucket` });
        out.push({ labels: base, value: cell.sum, metricName: `${name}_sum` });
        out.push({ labels: base, value: cell.n, metricName: `${name}_count` });
        return out;
      }),
    }),
  } as never);
  return {
    observe(v: number, a: string, b?: string, c?: string) {
      const cell = cells.at(a, b, c);
      cell.n++;
      cell.sum += v;
      for (let i = 0; i < buckets.length; i++) {
        if (v <= buckets[i]!) {
          cell.counts[i]!++;
          break;
        }
      }
    },
  };
}
