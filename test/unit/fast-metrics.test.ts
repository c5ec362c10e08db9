// Our Prometheus text exposition (src/server/fast-metrics.ts): format 0.0.4 as a scraper parses it.
import { describe, expect, test } from "bun:test";
import { fastCounter, fastGauge, fastHistogram, MetricRegistry, valueText } from "../../src/server/fast-metrics.ts";

describe("fast metrics", () => {
  test("HELP and TYPE per family, label-less series at 0 from the start, labelled ones once used", async () => {
    const r = new MetricRegistry();
    const c = fastCounter(r, "t_total", "A count\nwith a \\ break", ["kind"]);
    const g = fastGauge(r, "t_gauge", "A gauge");
    expect(await r.metrics()).toBe('# HELP t_total A count\\nwith a \\\\ break\n# TYPE t_total counter\n\n# HELP t_gauge A gauge\n# TYPE t_gauge gauge\nt_gauge 0\n');
    c.inc(2, 'a"b\\c\nd');
    c.inc(1, 'a"b\\c\nd');
    g.inc(3);
    g.inc(-1);
    expect(await r.metrics()).toContain('t_total{kind="a\\"b\\\\c\\nd"} 3\n');
    expect(await r.metrics()).toContain("t_gauge 2\n");
    g.set(Number.POSITIVE_INFINITY);
    expect(await r.metrics()).toContain("t_gauge +Inf\n");
    expect(valueText(Number.NaN)).toBe("NaN");
    expect(r.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  test("a histogram's buckets are cumulative, then +Inf, _sum and _count", async () => {
    const r = new MetricRegistry();
    const h = fastHistogram(r, "t_seconds", "Time", ["route", "method"], [0.1, 1]);
    h.observe(0.05, "blob", "GET");
    h.observe(0.5, "blob", "GET");
    h.observe(5, "blob", "GET");
    const lines = (await r.metrics()).split("\n");
    expect(lines).toContain('t_seconds_bucket{route="blob",method="GET",le="0.1"} 1');
    expect(lines).toContain('t_seconds_bucket{route="blob",method="GET",le="1"} 2');
    expect(lines).toContain('t_seconds_bucket{route="blob",method="GET",le="+Inf"} 3');
    expect(lines).toContain('t_seconds_sum{route="blob",method="GET"} 5.55');
    expect(lines).toContain('t_seconds_count{route="blob",method="GET"} 3');
  });

  test("a name is registered once", () => {
    const r = new MetricRegistry();
    fastCounter(r, "t_total", "x");
    expect(() => fastGauge(r, "t_total", "y")).toThrow();
  });
});
