// What clients and upstreams cannot get out of the server (issue 18 items 10, 12, 13): unexpected
// errors are a generic 500 and one log line a minute, malformed escapes a 400, a tag list with a
// broken Link no 500, metric series bounded by the configuration, and the public status without
// the upstreams clients named.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../src/config/resolve.ts";
import { createLogger } from "../../src/log.ts";
import { createOncePer } from "../../src/lib/bounded-map.ts";
import { createUnexpected } from "../../src/registry/errors.ts";
import { createMetrics, statusClass } from "../../src/server/metrics.ts";
import { createServer } from "../../src/server/server.ts";
import { createStatus } from "../../src/server/status.ts";
import { makeImage } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const text = async (r: Response) => await r.text();

describe("unexpected errors", () => {
  test("are a generic 500 UNKNOWN, logged once per kind of failure a minute", async () => {
    let now = 0;
    const lines: string[] = [];
    const unexpected = createUnexpected((m) => lines.push(m), createOncePer(60_000, () => now));
    // One throw site (the kind of failure is its class and where it was thrown), many messages.
    const burst = (n: number) => {
      const out: Response[] = [];
      for (let i = 0; i < n; i++) out.push(unexpected(new TypeError(`cannot read ${process.cwd()}/secret-${i}`), "GET /x"));
      return out;
    };
    for (const res of burst(50)) {
      expect(res.status).toBe(500);
      const body = await text(res);
      expect(JSON.parse(body).errors[0].code).toBe("UNKNOWN");
      expect(body).not.toContain(process.cwd());
      expect(body).not.toContain("at ");
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
    now += 30_000;
    burst(5);
    expect(lines).toHaveLength(1);
    now += 31_000;
    burst(5);
    expect(lines).toHaveLength(2);
  });

  test("a throw past every handler reaches Bun.serve's error handler: 500 JSON, never the error page", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ocireg-hardening-"));
    dirs.push(dir);
    writeFileSync(join(dir, "c.yml"), "admin:\n  tokenFromEnv: HARDENING_TOKEN\n");
    const cfg = resolveConfig({ configFile: join(dir, "c.yml"), imagePath: join(dir, "store"), port: 0, host: "127.0.0.1", metrics: false } as never, { HARDENING_TOKEN: "tok-0123456789abcdef" });
    const logFile = join(dir, "log");
    const srv = await createServer(cfg, createLogger({ level: "info", format: "text", file: logFile }).log);
    // Nothing in the code is known to throw unexpectedly, so a test double does.
    (srv.cache as { prune: unknown }).prune = () => Promise.reject(new Error(`disk ${dir} exploded`));
    const { port } = srv.start();
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/prune`, { method: "POST", headers: { Authorization: "Bearer tok-0123456789abcdef" }, body: "{}" });
        expect(res.status).toBe(500);
        expect(res.headers.get("content-type")).toBe("application/json");
        const body = await res.text();
        expect(JSON.parse(body).errors[0].code).toBe("UNKNOWN");
        expect(body).not.toContain(dir);
      }
      const malformed = await fetch(`http://127.0.0.1:${port}/api/v1/images/%E0%A4%A`, { method: "DELETE", headers: { Authorization: "Bearer tok-0123456789abcdef" } });
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as { error: string }).error).toContain("malformed percent-escape");
    } finally {
      await srv.stop(0);
    }
    const log = await Bun.file(logFile).text();
    expect(log.match(/unexpected Error/g)).toHaveLength(1);
  });
});

describe("malformed escapes and Link headers", () => {
  test.each(["/v2/x/manifests/%E0%A4%A", "/v2/%E0%A4%A/tags/list", "/v2/up.test/app/blobs/%zz"])("%s is a 400 with a JSON error", async (path) => {
    const r = await createTestRegistry();
    const res = await r.request(path);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toContain("malformed percent-escape");
  });

  test("a tag list whose Link holds a malformed escape is answered without a next page", async () => {
    const r = await createTestRegistry();
    r.upstream.add("app", "v1", makeImage());
    r.upstream.intercept = (req) => new URL(req.url).pathname.endsWith("/tags/list")
      ? Response.json({ name: "app", tags: ["v1", "v2"] }, { headers: { Link: '</v2/app/tags/list?n=2&last=%E0%A4%A>; rel="next"' } })
      : undefined;
    const res = await r.request("/v2/up.test/app/tags/list?n=2");
    expect(res.status).toBe(200);
    expect(res.headers.get("link")).toBeNull();
    expect(((await res.json()) as { tags: string[] }).tags).toEqual(["v1", "v2"]);
    expect(r.warnings.join("\n")).toContain("Link header that does not decode");
  });
});

describe("metrics", () => {
  test("status classes", () => {
    expect([200, 299, 301, 404, 429, 503, 599, 600, 999, 100, "timeout"].map(statusClass)).toEqual(
      ["2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx", "error", "error", "error", "error"]);
  });

  test("the S3 store's gauges exist only with an S3 store, and follow what it reports", async () => {
    expect(await createMetrics([]).registry.metrics()).not.toContain("ociregistry_s3_");
    const m = createMetrics([], { s3: true });
    m.s3!.localCopy(5 * 1024 * 1024, 2);
    m.s3!.uploadsWaiting(1);
    m.s3!.uploadsWaiting(1);
    m.s3!.uploadsWaiting(-1);
    const out = await m.registry.metrics();
    expect(out).toContain(`ociregistry_s3_local_copy_bytes ${5 * 1024 * 1024}\n`);
    expect(out).toContain("ociregistry_s3_local_copy_items 2\n");
    expect(out).toContain("ociregistry_s3_uploads_waiting 1\n");
  });

  test("40 client-named upstreams and a hundred status codes make a bounded number of series", async () => {
    const m = createMetrics(["docker.io", "ghcr.io"]);
    const codes = [...Array.from({ length: 100 }, (_, i) => 100 + i * 9), "timeout", "unreachable"] as Array<number | "timeout">;
    for (let u = 0; u < 40; u++) {
      const name = `secret-${u}.internal:5432`;
      for (const c of codes) m.upstream.request!(name, c, 5);
      m.upstream.bytes!(name, 10);
      m.upstream.token!(name, u % 2 === 0);
      m.upstream.breaker!(name, true);
      m.upstream.rateLimitRemaining!(name, 7);
    }
    for (const c of codes) m.upstream.request!("docker.io", c, 5);
    for (let u = 0; u < 10; u++) m.upstream.breaker!(`secret-${u}.internal:5432`, false);
    const out = await m.registry.metrics();
    expect(out).not.toContain("secret-");
    const series = out.split("\n").filter((l) => l.startsWith("ociregistry_upstream_requests_total{"));
    expect(series.length).toBeLessThanOrEqual(2 * 5);
    expect(new Set(series.map((l) => /status="([^"]+)"/.exec(l)![1]))).toEqual(new Set(["2xx", "3xx", "4xx", "5xx", "error"]));
    expect(out).toContain('ociregistry_upstream_circuit_open{upstream="other"} 30');
    expect(out).not.toContain('ociregistry_upstream_ratelimit_remaining{upstream="other"}');
    const upstreamSeries = out.split("\n").filter((l) => l.startsWith("ociregistry_upstream_") && !l.includes("_bucket"));
    expect(upstreamSeries.length).toBeLessThanOrEqual(30);
  });
});

describe("public status", () => {
  test("names the listed upstreams only; client-named ones are counted", () => {
    const metrics = createMetrics(["docker.io"]);
    const upstreams = {
      status: () => ({
        open: [{ upstream: "secret-db.internal:5432", state: "open", retryInMs: 5000 }, { upstream: "docker.io", state: "half-open", retryInMs: 0 }],
        active: { "10.0.0.7:5000": 2, "docker.io": 1, "docker.io via https://mirror.example/": 1 },
        lastError: (id: string) => (id === "docker.io" ? { at: 0, error: "unreachable: library/secret-app: connect refused" } : undefined),
      }),
    };
    const cfg = resolveConfig({} as never, {});
    const s = createStatus({ cfg, version: "t", started: Date.now(), metrics, upstreams: upstreams as never, listed: new Set(["docker.io"]),
      quota: { snapshot: () => ({ bytes: 0, maxBytes: null, freeBytes: null, minFreeBytes: null, full: false }) } as never });
    const pub = JSON.stringify(s.aggregate());
    expect(pub).not.toContain("secret-db");
    expect(pub).not.toContain("10.0.0.7");
    expect(s.aggregate().otherUpstreams).toEqual({ circuitsOpen: 1, activeRequests: 2 });
    // A last error's detail can name what a client asked for: the public view says its kind and when.
    expect(pub).not.toContain("secret-app");
    expect(s.aggregate().upstreams.find((u) => u.name === "docker.io")?.lastError).toEqual({ at: "1970-01-01T00:00:00.000Z", error: "unreachable" });
    expect(s.full().upstreams.find((u) => u.name === "docker.io")?.lastError?.error).toContain("secret-app");
    expect(s.aggregate().upstreams.map((u) => u.name).sort()).toEqual(["docker.io", "docker.io via https://mirror.example/"]);
    const full = JSON.stringify(s.full());
    expect(full).toContain("secret-db.internal:5432");
    expect(full).toContain("10.0.0.7:5000");
  });
});
