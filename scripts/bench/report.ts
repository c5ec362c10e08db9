// Result rows, the ratio each target is judged by, and the printed tables.

export interface Row {
  figure: string;
  unit: string;
  ours: number;
  baseline?: number;
  baselineName?: string;
  /** ours / baseline; whether higher or lower is better depends on the target. */
  ratio?: number;
  target: string;
  met: boolean;
  note?: string;
}

export interface ScalingRow {
  tags: number;
  /** What the tags point at: `distinct` images (as in a real cache) or `shared` (300 manifests for all). */
  store?: string;
  startupS: number;
  rssStartMiB: number;
  /** Absent where every tag is not pulled (the largest store: start-up, idle memory and list only). */
  rssPulledMiB?: number;
  listS: number;
  p50Ms?: number;
  p99Ms?: number;
  rps?: number;
}

export interface Ctx {
  quick: boolean;
  /** Seconds of each wrk measurement, and of the wrk warm-up before a series (0: none, for --quick). */
  seconds: number;
  warmup: number;
  /** Rounds of each comparison (alternating order), the median reported. */
  rounds: number;
  scaling: ScalingRow[];
  log(msg: string): void;
}

/** Throughput-like: higher is better, ratio = ours / baseline ≥ min. */
export function atLeast(figure: string, unit: string, ours: number, baseline: number, baselineName: string, min: number, note?: string): Row {
  const ratio = ours / baseline;
  return { figure, unit, ours, baseline, baselineName, ratio, target: `≥ ${min}× ${baselineName}`, met: ratio >= min, note };
}

/** Time-like: lower is better, ratio = ours / baseline ≤ max. */
export function atMost(figure: string, unit: string, ours: number, baseline: number, baselineName: string, max: number, note?: string): Row {
  const ratio = ours / baseline;
  return { figure, unit, ours, baseline, baselineName, ratio, target: `≤ ${max}× ${baselineName}`, met: ratio <= max, note };
}

/** An absolute ceiling; the baseline, when there is one, only for the ratio. */
export function ceiling(figure: string, unit: string, ours: number, max: number, base?: { value: number; name: string }, note?: string): Row {
  return {
    figure, unit, ours, baseline: base?.value, baselineName: base?.name, ratio: base ? ours / base.value : undefined,
    target: `≤ ${max} ${unit}`, met: ours <= max, note,
  };
}

const fmt = (x: number | undefined, unit = "") => {
  if (x === undefined || Number.isNaN(x)) return "—";
  if (!unit && Number.isInteger(x)) return String(x); // a count
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3;
  return `${x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })}${unit ? ` ${unit}` : ""}`;
};

function table(header: string[], rows: string[][], markdown: boolean): string {
  if (markdown) return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
  const w = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd()).join("\n");
}

export function resultsTable(rows: Row[], markdown = false): string {
  return table(["figure", "ours", "baseline", "ratio", "target", "met?"], rows.map((r) => [
    r.figure, fmt(r.ours, r.unit), r.baseline === undefined ? "—" : `${fmt(r.baseline, r.unit)} (${r.baselineName})`,
    r.ratio === undefined ? "—" : `${fmt(r.ratio)}×`, r.target, r.met ? "yes" : markdown ? "**no**" : "NO",
  ]), markdown);
}

export function scalingTable(rows: ScalingRow[], markdown = false): string {
  return table(["tags", "images", "start-up to ready", "RSS at start", "RSS, every tag pulled once", "list", "warm GET p50", "p99", "req/s"], rows.map((r) => [
    r.tags.toLocaleString("en-US"), r.store ?? "shared", fmt(r.startupS, "s"), fmt(r.rssStartMiB, "MiB"), fmt(r.rssPulledMiB, "MiB"), fmt(r.listS, "s"),
    fmt(r.p50Ms, "ms"), fmt(r.p99Ms, "ms"), fmt(r.rps),
  ]), markdown);
}
