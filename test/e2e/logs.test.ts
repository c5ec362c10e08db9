// The logs of the compiled binary while skopeo pulls through it from a real distribution upstream:
// every text line opens with its time and level (no blank lines), JSON lines carry time, level and
// msg; one access line per request with how the cache served it (miss, hit, archive, passthrough),
// the request id echoed and logged; audit lines for admin actions; `accessLog: false` silences
// only the access lines.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage } from "../helpers/images.ts";
import { ociArchive } from "../helpers/oci-archive.ts";
import { stopAll, waitFor } from "../helpers/procs.ts";

const UP = "127.0.24.3";
const TOKEN = "logs-admin-token-0123456789abcdef";
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG|TRACE) /;
const app = makeImage();
const other = makeImage();
const big = makeImage({ content: 256 * 1024, uncompressed: true });
const archived = makeImage();
let dir: string;
let up: Distribution;
const caches: RunningCache[] = [];

async function start(name: string, yaml: string, args: string[] = []): Promise<RunningCache> {
  const cfg = join(dir, `${name}.yml`);
  writeFileSync(cfg, `registries:\n  - name: ${UP}\n    scheme: http\nadmin:\n  token: ${TOKEN}\n${yaml}`);
  const c = await startCache(["--config-file", cfg, "--image-path", join(dir, `store-${name}`), ...args]);
  caches.push(c);
  return c;
}

const pull = (c: RunningCache, ref: string) => skopeoCopy(`127.0.0.1:${c.port}/${UP}/${ref}`).then((r) => (r.cleanup(), r.digest));
const accessLines = (log: string) => log.split("\n").filter((l) => l.includes(" [access] "));
/** The `key=value` fields of a text line with fields. */
function fields(line: string): Record<string, string> {
  return Object.fromEntries([...line.matchAll(/ ([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-logs-e2e-"));
  up = await startDistribution({ addr: `${UP}:80` });
  await pushImage({ base: up.base }, "library/app", "v1", app);
  await pushImage({ base: up.base }, "library/other", "v1", other);
  await pushImage({ base: up.base }, "library/big", "v1", big);
  mkdirSync(join(dir, "archives", "library", "arch"), { recursive: true });
  writeFileSync(join(dir, "archives", "library", "arch", "v1.oci"), ociArchive([{ image: archived }]));
}, 60_000);

afterAll(async () => {
  await stopAll(...caches.map((c) => () => c.stop()), () => up?.stop());
  rmSync(dir, { recursive: true, force: true });
});

describe("text logs", () => {
  let c: RunningCache;
  beforeAll(async () => {
    c = await start("text", "", ["--archives", join(dir, "archives")]);
  });

  test("a pull: every line opens with time and level, no blank lines; the manifest is a miss, then a hit", async () => {
    expect(await pull(c, "library/app:v1")).toBe(app.digest);
    expect(await pull(c, "library/app:v1")).toBe(app.digest);
    const log = await c.settledOutput();
    const lines = log.split("\n").slice(0, -1);
    expect(lines.length).toBeGreaterThan(5);
    for (const l of lines) expect(l).toMatch(TIME);
    expect(log).not.toContain("\n\n");
    expect(lines.some((l) => / INFO {2}\[cache\] cached 127\.0\.24\.3\/library\/app:v1 \(sha256:[a-f0-9]{64}\)$/.test(l))).toBe(true);
    const manifest = accessLines(log).map(fields).filter((f) => f.path === `/v2/${UP}/library/app/manifests/v1`);
    expect(manifest.length).toBeGreaterThanOrEqual(2);
    expect(manifest[0]).toMatchObject({ method: "GET", status: "200", cache: "miss", upstream: UP, client: "127.0.0.1" });
    expect(manifest.at(-1)).toMatchObject({ method: "GET", status: "200", cache: "hit", upstream: UP });
    const blobs = accessLines(log).map(fields).filter((f) => f.path?.startsWith(`/v2/${UP}/library/app/blobs/`) && f.method === "GET");
    expect(blobs.map((b) => b.cache)).toContain("miss");
    expect(blobs.map((b) => b.cache)).toContain("hit");
    for (const b of blobs) expect(Number(b.bytes)).toBeGreaterThan(0);
    for (const f of manifest) {
      expect(f.request_id).toMatch(/^[0-9a-z]{12}$/);
      expect(Number(f.duration_ms)).toBeGreaterThanOrEqual(0);
    }
    // Non-content routes say `-`.
    const base = accessLines(log).map(fields).find((f) => f.path === "/v2/");
    expect(base).toMatchObject({ cache: "-", upstream: "-" });
  });

  test("served from --archives: cache=archive", async () => {
    expect(await pull(c, "library/arch:v1")).toBe(archived.digest);
    const f = accessLines(await c.settledOutput()).map(fields).filter((x) => x.path?.startsWith(`/v2/${UP}/library/arch/`) && x.method === "GET");
    expect(f.length).toBeGreaterThan(1);
    for (const x of f) expect(x.cache).toBe("archive");
  });

  test("a client's X-Request-Id is echoed and logged; a bad one is replaced by one generated, echoed and logged", async () => {
    const kept = await fetch(`${c.url}/v2/${UP}/library/app/manifests/v1`, { headers: { "X-Request-Id": "e2e-logs:1.a_b" } });
    expect(kept.status).toBe(200);
    expect(kept.headers.get("x-request-id")).toBe("e2e-logs:1.a_b");
    const bad = await fetch(`${c.url}/v2/`, { headers: { "X-Request-Id": "bad id\twith tab" } });
    const generated = bad.headers.get("x-request-id")!;
    expect(generated).toMatch(/^[0-9a-z]{12}$/);
    const health = await fetch(`${c.url}/healthz`);
    expect(health.headers.get("x-request-id")).toMatch(/^[0-9a-z]{12}$/);
    const log = await c.settledOutput();
    expect(accessLines(log).map(fields).find((f) => f.request_id === "e2e-logs:1.a_b")).toMatchObject({ cache: "hit", status: "200" });
    expect(accessLines(log).map(fields).find((f) => f.request_id === generated)).toMatchObject({ path: "/v2/", status: "200" });
    expect(log).not.toContain("bad id");
  });

  test("admin actions leave audit lines: what, on what, the client's address, the result", async () => {
    const admin = (method: string, path: string, body?: unknown, token = TOKEN) =>
      fetch(`${c.url}/api/v1/${path}`, { method, headers: { Authorization: `Bearer ${token}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    expect((await admin("PUT", `pins/${UP}/library/app:v1`)).status).toBe(200);
    expect((await admin("DELETE", `pins/${UP}/library/app:v1`)).status).toBe(200);
    expect((await admin("PUT", `pins/${UP}/library/nothing:v1`)).status).toBe(404);
    const job = (await (await admin("POST", "load", { images: [`${UP}/library/other:v1`] })).json()) as { id: string };
    await waitFor("the load job", async () => ((await (await admin("GET", `jobs/${job.id}`)).json()) as { state: string }).state !== "running");
    expect((await admin("DELETE", `images/${UP}/library/other:v1`)).status).toBe(200);
    expect((await admin("POST", "prune", { olderThan: "3650d", dryRun: true })).status).toBe(200);
    expect((await admin("POST", "prune", { olderThan: "soon" })).status).toBe(400);
    expect((await admin("POST", "archives/rescan")).status).toBe(200);
    expect((await admin("GET", "status", undefined, "wrong-token")).status).toBe(401);
    const audit = (await c.settledOutput()).split("\n").filter((l) => l.includes(" [audit] "));
    for (const l of audit) expect(l).toMatch(TIME);
    const rows = audit.map(fields);
    for (const r of rows) expect(r.client).toBe("127.0.0.1");
    const row = (action: string, result?: string) => rows.find((r) => r.action === action && (!result || r.result === result));
    expect(row("pin")).toMatchObject({ target: `${UP}/library/app:v1`, result: "ok" });
    expect(row("unpin")).toMatchObject({ target: `${UP}/library/app:v1`, result: "ok" });
    expect(row("pin", "not-found")).toMatchObject({ target: `${UP}/library/nothing:v1` });
    expect(row("load.start")).toMatchObject({ target: `${UP}/library/other:v1`, result: "started", job: job.id });
    expect(row("load.end")).toMatchObject({ target: `${UP}/library/other:v1`, result: "done", job: job.id, pulled: "1", failed: "0" });
    expect(row("image.delete")).toMatchObject({ target: `${UP}/library/other:v1`, result: "ok" });
    expect(row("prune", "dry-run")).toMatchObject({ target: "*" });
    expect(row("prune", "invalid")?.reason).toContain("soon");
    expect(row("archives.rescan")).toMatchObject({ result: "ok", files: "1" });
    expect(row("auth")).toMatchObject({ target: '"GET /api/v1/status"', result: "refused", reason: '"wrong token"' });
    expect(audit.join("\n")).not.toContain("wrong-token");
  });
});

describe("--log-format json", () => {
  test("every line is one JSON object with time, level and msg; access lines carry the fields", async () => {
    const c = await start("json", "logFormat: json\n");
    expect(await pull(c, "library/app:v1")).toBe(app.digest);
    expect((await fetch(`${c.url}/v2/${UP}/library/app/manifests/v1`, { headers: { "X-Request-Id": "json-1" } })).headers.get("x-request-id")).toBe("json-1");
    const log = await c.settledOutput();
    expect(log).not.toContain("\n\n");
    const entries = log.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of entries) {
      expect(new Date(String(e.time)).toISOString()).toBe(String(e.time));
      expect(["error", "warn", "info", "debug", "trace"]).toContain(String(e.level));
      expect(typeof e.msg).toBe("string");
    }
    const access = entries.filter((e) => e.tag === "access" && e.path === `/v2/${UP}/library/app/manifests/v1`);
    expect(access[0]).toMatchObject({ level: "info", method: "GET", status: 200, cache: "miss", upstream: UP, client: "127.0.0.1" });
    expect(access.at(-1)).toMatchObject({ request_id: "json-1", cache: "hit", status: 200 });
    expect(typeof access[0]!.duration_ms).toBe("number");
    expect(typeof access[0]!.bytes).toBe("number");
  });
});

describe("pass-through", () => {
  test("a tiny maxSize with everything pinned: blobs are passed through, and the access log says so", async () => {
    const c = await start("full", `maxSize: 4KiB\npinned:\n  - "${UP}/**:*"\n`);
    expect(await pull(c, "library/big:v1")).toBe(big.digest);
    const f = accessLines(await c.settledOutput()).map(fields).filter((x) => x.path?.startsWith(`/v2/${UP}/library/big/blobs/`) && x.method === "GET");
    expect(f.map((x) => x.cache)).toContain("passthrough");
  });
});

describe("accessLog: false", () => {
  test("silences the access lines only: the pull works, other lines and the request id stay", async () => {
    const c = await start("quiet", "accessLog: false\n");
    expect(await pull(c, "library/app:v1")).toBe(app.digest);
    expect((await fetch(`${c.url}/v2/`, { headers: { "X-Request-Id": "quiet-1" } })).headers.get("x-request-id")).toBe("quiet-1");
    const log = await c.settledOutput();
    expect(accessLines(log)).toHaveLength(0);
    expect(log).toContain("[cache] cached 127.0.24.3/library/app:v1");
    for (const l of log.split("\n").slice(0, -1)) expect(l).toMatch(TIME);
  });
});
