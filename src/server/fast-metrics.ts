// Counters, gauges and histograms rendered as Prometheus text format 0.0.4: our own, not
// prom-client, whose load costs ~15 MiB of RSS (node:cluster, v8, perf_hooks). One cell per label
// combination in nested maps, its label text made once: a request costs a few map hits and additions.

/** What a scrape answers with: the Prometheus text exposition format, version 0.0.4. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Type = "counter" | "gauge" | "histogram";

/** A HELP text escaped as the format asks: backslash and newline. */
const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
/** A label value escaped as the format asks: backslash, double quote and newline. */
const escapeLabel = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** A sample value as the format writes it (NaN, +Inf, -Inf by name). */
export function valueText(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return String(v);
}

/** The `{a="x",b="y"}` of a series ("" without labels); extra pairs (a histogram's `le`) go last. */
export function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i]!)}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** The metric families of one process, rendered on a scrape in the order they were made. */
export class MetricRegistry {
  readonly contentType = CONTENT_TYPE;
  private readonly families: Array<{ head: string; lines: () => string[] }> = [];

  /** A family whose sample lines (`name{labels} value`) `lines` gives at scrape time. */
  family(name: string, help: string, type: Type, lines: () => string[]): void {
    if (this.families.some((f) => f.head.startsWith(`# HELP ${name} `))) throw new Error(`metric ${name} is registered twice: give each metric one name`);
    this.families.push({ head: `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}`, lines });
  }

  /** The whole exposition: every family's HELP, TYPE and samples, a blank line between families. */
  async metrics(): Promise<string> {
    return this.families.map((f) => [f.head, ...f.lines()].join("\n")).join("\n\n") + "\n";
  }
}

/** One cell per label combination, found through one small map per label. */
class Cells<T> {
  private root = new Map<string, unknown>();
  readonly all: Array<{ labels: string; cell: T; values: string[] }> = [];
  private readonly single: T | null = null;
  constructor(private readonly names: readonly string[], private readonly make: () => T, private readonly max = 5000) {
    // Without labels the one series exists from the start (at 0), as Prometheus clients show it.
    if (names.length === 0) {
      this.single = make();
      this.all.push({ labels: "", cell: this.single, values: [] });
    }
  }

  /** The cell of (a, b, c), as many labels as the metric has; no allocation once it exists. */
  at(a?: string, b?: string, c?: string): T {
    const depth = this.names.length;
    if (this.single) return this.single;
    let m = this.root;
    if (depth > 1) m = (m.get(a!) as Map<string, unknown> | undefined) ?? this.fresh(m, a!);
    if (depth > 2) m = (m.get(b!) as Map<string, unknown> | undefined) ?? this.fresh(m, b!);
    const last = depth === 1 ? a : depth === 2 ? b : c;
    return (m.get(last!) as T | undefined) ?? this.get([a, b, c].slice(0, depth) as string[]);
  }

  private fresh(m: Map<string, unknown>, k: string): Map<string, unknown> {
    const next = new Map<string, unknown>();
    m.set(k, next);
    return next;
  }

  get(labels: string[]): T {
    if (this.single) return this.single;
    const depth = this.names.length;
    let m = this.root;
    for (let i = 0; i < depth - 1; i++) {
      let next = m.get(labels[i]!) as Map<string, unknown> | undefined;
      if (!next) m.set(labels[i]!, (next = new Map()));
      m = next;
    }
    let cell = m.get(labels[depth - 1]!) as T | undefined;
    if (!cell) {
      cell = this.make();
      // Past the cap, new combinations are counted but not kept (label values are bounded anyway).
      if (this.all.length < this.max) {
        m.set(labels[depth - 1]!, cell);
        this.all.push({ labels: labelText(this.names, labels), cell, values: [...labels] });
      }
    }
    return cell;
  }
}

/** A counter or gauge: `inc`, `set` and `cell` take the label values in labelNames' order. */
function scalar(registry: MetricRegistry, type: "counter" | "gauge", name: string, help: string, labelNames: string[]) {
  const cells = new Cells<{ v: number }>(labelNames, () => ({ v: 0 }));
  registry.family(name, help, type, () => cells.all.map((c) => `${name}${c.labels} ${valueText(c.cell.v)}`));
  return {
    /** The cell of one label combination; keep it to count without any look-up. */
    cell: (...labels: string[]) => cells.get(labels),
    inc: (n = 1, a?: string, b?: string, c?: string) => void (cells.at(a, b, c).v += n),
    set: (v: number, a?: string, b?: string, c?: string) => void (cells.at(a, b, c).v = v),
  };
}

export function fastCounter(registry: MetricRegistry, name: string, help: string, labelNames: string[] = []) {
  const { cell, inc } = scalar(registry, "counter", name, help, labelNames);
  return { cell, inc };
}

export function fastGauge(registry: MetricRegistry, name: string, help: string, labelNames: string[] = []) {
  return scalar(registry, "gauge", name, help, labelNames);
}

export function fastHistogram(registry: MetricRegistry, name: string, help: string, labelNames: string[], buckets: number[]) {
  const make = () => ({ counts: new Float64Array(buckets.length), sum: 0, n: 0 });
  const cells = new Cells<ReturnType<typeof make>>(labelNames, make);
  const les = buckets.map((b) => `le="${valueText(b)}"`);
  registry.family(name, help, "histogram", () =>
    cells.all.flatMap(({ labels, cell, values }) => {
      let cumulative = 0;
      const out = les.map((le, i) => {
        cumulative += cell.counts[i]!;
        return `${name}_bucket${labelText(labelNames, values, le)} ${cumulative}`;
      });
      out.push(`${name}_bucket${labelText(labelNames, values, 'le="+Inf"')} ${cell.n}`);
      out.push(`${name}_sum${labels} ${valueText(cell.sum)}`, `${name}_count${labels} ${cell.n}`);
      return out;
    }),
  );
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
