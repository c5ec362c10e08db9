// What clients and upstreams cannot get out of the server (issue 18 items 10, 12, 13), against the
// compiled binary: malformed percent-escapes are a 400 with a JSON error (never the runtime's error
// page), a tag list whose Link does not decode is no 500 and no stack in the log, metric series stay
// bounded with 40 client-named upstreams answering odd statuses, and the public /status.json names
// no client-named upstream. Upstreams: 127.0.11.2 (hostile, listed, plain HTTP), 127.0.11.3 (40 TLS
// ports answering the status the path asks for), 127.0.11.4:5432 (accepts, never answers).
// (The generic 500 of an unexpected error is tested in-process: test/unit/server-hardening.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttps, type Server } from "node:https";
import { createServer as createTcp, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningCache } from "../helpers/binary.ts";
import { startHostile, watchMemory, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { rawRequest } from "../helpers/raw-http.ts";
import { waitFor } from "../helpers/procs.ts";
import { cacheFactory, get } from "../helpers/security.ts";

const HOSTILE = "127.0.11.2";
const CODES_HOST = "127.0.11.3";
const TARPIT = "127.0.11.4";
const TOKEN_ENV = "OCIREG_SERVER_TOKEN";
const TOKEN = "server-e2e-admin-token-9a2b";
const MB = 1024 * 1024;
/** Statuses the 40 upstreams answer, odd ones included. */
const CODES = [200, 201, 204, 299, 300, 301, 304, 307, 399, 400, 401, 402, 403, 404, 405, 409, 410, 418, 422, 429, 451, 499,
  500, 501, 502, 503, 504, 507, 520, 599, 600, 799, 999];

let dir: string;
let pki: Pki;
let hostile: HostileUpstream;
let caches: ReturnType<typeof cacheFactory>;
let open: RunningCache;
let withAdmin: RunningCache;
const codeServers: Server[] = [];
const codePorts: number[] = [];
const held = new Set<Socket>();
let tarpit: ReturnType<typeof createTcp>;

const registries = `upstreams: any\nregistries:\n  - { name: ${HOSTILE}, scheme: http }\n`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-server-"));
  pki = await makePki([CODES_HOST]);
  hostile = await startHostile({ host: HOSTILE });
  hostile.add("badlink/app", "v1", hostile.fixture);
  // A tag list whose pagination Link holds a malformed escape.
  hostile.behave("badlink", (x) => {
    const body = Buffer.from(JSON.stringify({ name: x.repo, tags: ["v1", "v2"] }));
    x.res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(body.length), Link: `</v2/${x.repo}/tags/list?n=2&last=%E0%A4%A>; rel="next"` });
    x.res.end(body);
  });
  const tls = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) };
  for (let i = 0; i < 40; i++) {
    const s = createHttps(tls, (req, res) => {
      req.resume();
      const code = Number(/^\/v2\/c(\d+)\//.exec(req.url ?? "")?.[1] ?? 200);
      const body = Buffer.from(JSON.stringify({ errors: [{ code: "UNKNOWN", message: `answering ${code}` }] }));
      res.writeHead(code, { "Content-Type": "application/json", "Content-Length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
    });
    await new Promise<void>((r) => s.listen(0, CODES_HOST, () => r()));
    codeServers.push(s);
    codePorts.push((s.address() as { port: number }).port);
  }
  tarpit = createTcp((sock) => {
    held.add(sock);
    sock.on("close", () => held.delete(sock));
  });
  await new Promise<void>((r) => tarpit.listen(5432, TARPIT, () => r()));
  caches = cacheFactory(dir);
  // The cache trusts the test CA, so the 40 TLS upstreams' statuses reach it.
  process.env.NODE_EXTRA_CA_CERTS = pki.ca;
  process.env[TOKEN_ENV] = TOKEN;
  ({ cache: open } = await caches.start(registries));
  ({ cache: withAdmin } = await caches.start(`${registries}admin:\n  tokenFromEnv: ${TOKEN_ENV}\n`));
}, 120_000);

afterAll(async () => {
  await caches?.stopAll();
  await hostile?.stop();
  for (const s of held) s.destroy();
  tarpit?.close();
  for (const s of codeServers) s.close();
  delete process.env.NODE_EXTRA_CA_CERTS;
  delete process.env[TOKEN_ENV];
  rmSync(dir, { recursive: true, force: true });
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
}, 120_000);

/** What an error body must never hold: a stack, the working directory, the runtime's file system. */
function leaks(text: string): string[] {
  return [/\n\s+at /, /\bat .*:\d+:\d+/, new RegExp(process.cwd().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), /\$bunfs/, /node_modules/, /<html/i]
    .filter((re) => re.test(text)).map(String);
}

describe("malformed percent-escapes", () => {
  test.each([
    ["DELETE", "/api/v1/images/%E0%A4%A", "error"],
    ["DELETE", "/api/v1/images/docker.io%2Flibrary%2Fx%3A%ZZ", "error"],
    ["GET", "/v2/x/manifests/%E0%A4%A", "errors"],
    ["GET", `/v2/${HOSTILE}/app/manifests/%C0%AF`, "errors"],
    ["GET", "/v2/%E0%A4%A/tags/list", "errors"],
    ["GET", `/v2/${HOSTILE}/app/blobs/%zz`, "errors"],
    ["GET", `/v2/${HOSTILE}/%ED%A0%80/referrers/sha256:${"a".repeat(64)}`, "errors"],
  ])("%s %s is a 400 with a JSON error", async (method, path, field) => {
    const raw = await rawRequest("127.0.0.1", withAdmin.port, `${method} ${path} HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}`);
    expect(raw).toStartWith("HTTP/1.1 400");
    const body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
    expect(JSON.parse(body)).toHaveProperty(field);
    expect(body).toContain("malformed percent-escape");
    expect(leaks(raw)).toEqual([]);
  });

  test("a HEAD with one is a 400 without a body; so is a path outside the API with one, as JSON", async () => {
    const head = await rawRequest("127.0.0.1", open.port, "HEAD /v2/x/manifests/%E0%A4%A HTTP/1.1");
    expect(head).toStartWith("HTTP/1.1 400");
    const outside = await rawRequest("127.0.0.1", open.port, "GET /%E0%A4%A HTTP/1.1");
    expect(outside).toStartWith("HTTP/1.1 400");
    expect(outside).toContain("application/json");
    expect(leaks(outside)).toEqual([]);
    const log = await withAdmin.settledOutput();
    expect(leaks(log)).toEqual([]);
  });
});

describe("a tag list whose Link does not decode", () => {
  test("is answered with the upstream's tags and no next page, every time, with no stack in the log", async () => {
    for (let i = 0; i < 5; i++) {
      const got = await get(`${open.url}/v2/${HOSTILE}/badlink/app/tags/list?n=2`);
      expect(got.status).toBe(200);
      expect(got.headers.get("link")).toBeNull();
      expect(JSON.parse(new TextDecoder().decode(got.body!)).tags).toEqual(["v1", "v2"]);
    }
    const log = await open.settledOutput();
    expect(log).toContain("Link header that does not decode");
    expect(log).not.toContain("URIError");
    expect(leaks(log)).toEqual([]);
  });
});

describe("metrics", () => {
  test("40 client-named upstreams answering 33 different statuses make a bounded set of series", async () => {
    const memory = watchMemory(open.proc.pid, 400 * MB);
    const jobs = codePorts.flatMap((port) => CODES.map((code) => `${open.url}/v2/${CODES_HOST}:${port}/c${code}/app/manifests/v1`));
    for (let i = 0; i < jobs.length; i += 32) await Promise.all(jobs.slice(i, i + 32).map((u) => get(u, {}, 30_000)));
    memory.stop();
    const text = (await (await fetch(`${open.url}/metrics`)).text());
    expect(text).not.toContain(CODES_HOST);
    const requests = text.split("\n").filter((l) => l.startsWith("ociregistry_upstream_requests_total{"));
    const labels = requests.map((l) => ({ upstream: /upstream="([^"]*)"/.exec(l)![1], status: /status="([^"]*)"/.exec(l)![1], n: Number(l.split(" ").at(-1)) }));
    console.log(`upstream request series: ${labels.map((l) => `${l.upstream}/${l.status}=${l.n}`).join(" ")}`);
    // Only the listed upstream (which other tests here pulled from) and `other`.
    for (const l of labels) expect([HOSTILE, "other"]).toContain(l.upstream!);
    for (const l of labels) expect(["2xx", "3xx", "4xx", "5xx", "error"]).toContain(l.status!);
    // The statuses did arrive (TLS worked): more than one class is counted for the client-named upstreams.
    expect(labels.filter((l) => l.n > 0 && l.status !== "error").length).toBeGreaterThanOrEqual(2);
    const upstreamSeries = text.split("\n").filter((l) => l.startsWith("ociregistry_upstream_") && !l.includes("_bucket"));
    expect(upstreamSeries.length).toBeLessThanOrEqual(25);
    expect(memory.peak()).toBeLessThan(150 * MB);
  }, 120_000);
});

describe("/status.json", () => {
  test("without the admin token names only listed upstreams; with it, everything", async () => {
    const pending = [open, withAdmin].map((c) => {
      const abort = new AbortController();
      const done = fetch(`${c.url}/v2/${TARPIT}:5432/app/manifests/v1`, { signal: abort.signal }).catch(() => null);
      return { abort, done };
    });
    for (const c of [open, withAdmin]) await get(`${c.url}/v2/secret-db.internal:5432/app/manifests/v1`);
    await get(`${open.url}/v2/${HOSTILE}/fixture/manifests/v1`);
    const status = async (c: RunningCache, headers: Record<string, string> = {}) => new TextDecoder().decode((await get(`${c.url}/status.json`, { headers })).body!);
    await waitFor("both tarpit requests to be open", async () => (JSON.parse(await status(open)) as { otherUpstreams: { activeRequests: number } })
      .otherUpstreams.activeRequests >= 1 && (await status(withAdmin, { Authorization: `Bearer ${TOKEN}` })).includes(`${TARPIT}:5432`));
    try {
      const pub = await get(`${open.url}/status.json`);
      expect(pub.status).toBe(200);
      const text = new TextDecoder().decode(pub.body!);
      for (const secret of [TARPIT, "secret-db", CODES_HOST]) expect(text).not.toContain(secret);
      const s = JSON.parse(text) as { upstreams: Array<{ name: string }>; otherUpstreams: { activeRequests: number } };
      expect(s.upstreams.map((u) => u.name)).toContain(HOSTILE);
      expect(s.otherUpstreams.activeRequests).toBeGreaterThanOrEqual(1);
      // The page it feeds has no names of its own.
      const page = await get(`${open.url}/`);
      expect(new TextDecoder().decode(page.body!)).not.toContain(TARPIT);
      expect((await get(`${withAdmin.url}/status.json`)).status).toBe(404);
      const full = await get(`${withAdmin.url}/status.json`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(full.status).toBe(200);
      expect(new TextDecoder().decode(full.body!)).toContain(`${TARPIT}:5432`);
      expect((await get(`${withAdmin.url}/status.json`, { headers: { Authorization: "Bearer wrong-token-value-123" } })).status).toBe(401);
    } finally {
      for (const p of pending) p.abort.abort();
      await Promise.all(pending.map((p) => p.done));
    }
  }, 60_000);
});
