// The chart's PrometheusRule (opt-in) and Grafana dashboard against the compiled binary: every
// expression parses as PromQL (Prometheus' own lezer grammar) and names only metrics the binary
// exports (read from its /metrics), the three alerts carry their thresholds and waits from the
// values, and nothing is rendered unless enabled.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parser } from "@prometheus-io/lezer-promql";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { CHART, helmTemplate, only, type K8sObject } from "../helpers/helm.ts";

interface Rule { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }

let cache: RunningCache;
/** Series names the binary exports (histograms as their _bucket, _sum and _count). */
let exported: Set<string>;

beforeAll(async () => {
  cache = await startCache([]);
  const text = await (await fetch(`${cache.url}/metrics`)).text();
  exported = new Set(text.split("\n").flatMap((l) => {
    const m = l.match(/^# TYPE (\S+) (\S+)$/);
    if (!m) return [];
    return m[2] === "histogram" ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!];
  }));
});

afterAll(async () => {
  await cache?.stop();
});

/** Syntax errors lezer found in a PromQL expression (Grafana's $__rate_interval taken as 5m). */
function promqlErrors(expr: string): string[] {
  const q = expr.replaceAll("$__rate_interval", "5m");
  const errors: string[] = [];
  parser.parse(q).iterate({ enter: (n) => void (n.type.isError && errors.push(`${expr}: error at ${n.from}: "${q.slice(Math.max(0, n.from - 10), n.to + 10)}"`)) });
  return errors;
}

/** Metric names an expression uses: identifiers followed by a selector, a range or an operator, not functions or labels. */
function metricsIn(expr: string): string[] {
  const names = new Set<string>();
  const q = expr.replaceAll("$__rate_interval", "5m");
  parser.parse(q).iterate({
    enter: (n) => void (n.name === "VectorSelector" && names.add(q.slice(n.from, n.to).replace(/\{.*$/s, "").trim())),
  });
  return [...names];
}

function rules(objects: K8sObject[]): Rule[] {
  const spec = only(objects, "PrometheusRule").spec as unknown as { groups: { name: string; rules: Rule[] }[] };
  return spec.groups.flatMap((g) => g.rules);
}

describe("the PrometheusRule", () => {
  test("is off by default", async () => {
    expect((await helmTemplate()).map((o) => o.kind)).not.toContain("PrometheusRule");
  });

  test("alerts on an upstream failing for 5 minutes, the store above 90% of its bound and a 5xx ratio above 1%", async () => {
    const objects = await helmTemplate(["-f", join(CHART, "ci/all-on-values.yaml")]);
    const rule = only(objects, "PrometheusRule");
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule.metadata.labels!.release).toBe("prometheus");
    const byName = new Map(rules(objects).map((r) => [r.alert, r]));
    expect([...byName.keys()]).toEqual(["OciregistryUpstreamFailing", "OciregistryStoreNearBound", "OciregistryHighErrorRatio"]);
    expect(byName.get("OciregistryUpstreamFailing")).toMatchObject({ for: "5m", labels: { severity: "warning", team: "platform" } });
    expect(byName.get("OciregistryUpstreamFailing")!.expr).toContain(`ociregistry_upstream_circuit_open{upstream!="other"}`);
    expect(byName.get("OciregistryStoreNearBound")!.expr).toMatch(/ociregistry_store_bytes \/ \(ociregistry_store_max_bytes > 0\)\) > 0\.9$/);
    expect(byName.get("OciregistryHighErrorRatio")!.expr).toMatch(/status=~"5\.\."[\s\S]*> 0\.01$/);
    for (const r of byName.values()) {
      expect(promqlErrors(r.expr)).toEqual([]);
      expect(metricsIn(r.expr).filter((m) => !exported.has(m))).toEqual([]);
      expect(metricsIn(r.expr).length).toBeGreaterThan(0);
      expect(r.annotations.summary).toBeTruthy();
    }
  });

  test("takes its thresholds and wait from the values", async () => {
    const objects = await helmTemplate(["--set", "prometheusRule.enabled=true", "--set", "prometheusRule.errorRatio=0.05",
      "--set", "prometheusRule.storeRatio=0.95", "--set", "prometheusRule.upstreamFailingFor=10m"]);
    const [up, store, errors] = rules(objects);
    expect(up!.for).toBe("10m");
    expect(store!.expr).toEndWith("> 0.95");
    expect(errors!.expr).toEndWith("> 0.05");
    expect(errors!.annotations.summary).toContain("More than 5% of requests");
    for (const r of rules(objects)) expect(promqlErrors(r.expr)).toEqual([]);
  });

  test("the check finds a broken expression and an unknown metric", () => {
    expect(promqlErrors("sum(rate(ociregistry_http_requests_total[5m])")).not.toEqual([]);
    expect(metricsIn("sum(rate(ociregistry_no_such_total[5m])) / ociregistry_store_bytes").filter((m) => !exported.has(m))).toEqual(["ociregistry_no_such_total"]);
  });
});

describe("the Grafana dashboard", () => {
  test("parses as PromQL, names only exported metrics, and has the circuit, rate-limit, latency, disk and process panels", async () => {
    const objects = await helmTemplate(["-f", join(CHART, "ci/all-on-values.yaml")]);
    const dashboard = JSON.parse(only(objects, "ConfigMap", "cache-ociregistry-dashboard").data!["ociregistry.json"]!) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    for (const e of exprs) expect(promqlErrors(e)).toEqual([]);
    const used = new Set(exprs.flatMap(metricsIn));
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
    for (const m of ["ociregistry_upstream_circuit_open", "ociregistry_upstream_ratelimit_remaining", "ociregistry_upstream_request_duration_seconds_bucket",
      "ociregistry_store_bytes", "ociregistry_store_max_bytes", "ociregistry_store_free_bytes", "ociregistry_evictions_total", "ociregistry_store_full",
      "ociregistry_build_info", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds"]) expect(used).toContain(m);
    const titles = dashboard.panels.map((p) => p.title).join("\n");
    for (const t of ["circuit", "rate limit", "latency", "Disk", "Evictions"]) expect(titles).toContain(t);
  });
});
