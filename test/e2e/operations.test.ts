// Running it in production: health and readiness (503 from the first SIGTERM, before the drain),
// Prometheus counters that move by the right amounts after real pulls through skopeo and ctr,
// metrics and health on ports of their own, the admin API refusing requests without the token and
// with a wrong one, and the log file reopened on SIGHUP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, stopProcess, track, waitFor } from "../helpers/procs.ts";

const UP = "127.0.0.41";
const TOKEN = "admin-token-for-the-tests-0123456789";
let dir: string;
let up: Distribution;
let ctr: Containerd;
const caches: RunningCache[] = [];
const images: Record<string, Image> = {};

async function cache(extraYaml = "", args: string[] = [], env: Record<string, string> = {}) {
  const file = join(dir, `config-${caches.length}.yml`);
  writeFileSync(file, `registries:\n  - name: ${UP}\n    scheme: http\nrevalidateAfter: 1h\n${extraYaml}`);
  const c = await startCache(["--config-file", file, "--image-path", mkdtempSync(join(dir, "store-")), ...args], { ADMIN_TOKEN: TOKEN, ...env });
  caches.push(c);
  return c;
}

/** The value of one sample (`name{labels}`) in Prometheus text, 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-ops-"));
  up = await startDistribution({ addr: `${UP}:80` });
  for (const n of ["one", "two", "three"]) {
    images[n] = makeImage({ content: `${n} ${Math.random()}` });
    await pushImage({ base: up.base }, `library/${n}`, "v1", images[n]!);
  }
  ctr = await startContainerd();
}, 120_000);

afterAll(async () => {
  for (const c of caches) await c.stop();
  await ctr?.stop();
  await up?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("health", () => {
  test("/healthz and /readyz answer without credentials, with basic auth on, and never reach an upstream", async () => {
    const hash = (await run(["htpasswd", "-Bbn", "ops", "secret"])).stdout.trim().split(":")[1]!;
    const c = await cache(`users:\n  - { user: ops, password: "${hash}" }\n`);
    const before = up.requests().length;
    for (const path of ["/healthz", "/readyz"]) {
      const res = await fetch(`${c.url}${path}`);
      expect(res.status).toBe(200);
    }
    expect((await fetch(`${c.url}/v2/`)).status).toBe(401);
    expect(up.requests().length).toBe(before);
  });

  test("/readyz turns 503 as soon as SIGTERM arrives, while a download still drains", async () => {
    const c = await cache(`health: 0\n`);
    const healthPort = Number(c.output().match(/health: \/healthz, \/readyz \(also on port (\d+)\)/)![1]);
    const big = makeImage({ content: 48 * 1024 * 1024, uncompressed: true });
    await pushImage({ base: up.base }, "library/big", "v1", big);
    // A slow reader keeps the download (and the drain) going.
    const res = await fetch(`${c.url}/v2/${UP}/library/big/blobs/${big.blobs[1]!.digest}`);
    const reader = res.body!.getReader();
    await reader.read();
    expect((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status).toBe(200);
    c.proc.kill("SIGTERM");
    await waitFor("readiness to turn 503", async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 503, 5000);
    const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    expect(await r.text()).toBe("shutting down\n");
    expect(c.proc.exitCode).toBeNull(); // still draining
    while (!(await reader.read()).done);
    await c.proc.exited;
  });
});

describe("metrics", () => {
  test("counters move by the expected amounts after a cold and a warm pull through skopeo and ctr", async () => {
    const c = await cache();
    const m0 = await scrape(c.url);
    expect(sample(m0, 'ociregistry_store_items{kind="tags"}')).toBe(0);
    // Cold pull: one manifest and two blobs (config and layer) from the upstream.
    const cold = await skopeoCopy(`127.0.0.1:${c.port}/${UP}/library/one:v1`);
    expect(cold.digest).toBe(images.one!.digest);
    cold.cleanup();
    const m1 = await scrape(c.url);
    expect(sample(m1, 'ociregistry_cache_misses_total{kind="manifest"}')).toBe(1);
    expect(sample(m1, 'ociregistry_cache_misses_total{kind="blob"}')).toBe(2);
    expect(sample(m1, 'ociregistry_downloads_total{result="ok"}')).toBe(2);
    expect(sample(m1, "ociregistry_downloads_in_flight")).toBe(0);
    expect(sample(m1, `ociregistry_upstream_requests_total{upstream="${UP}",status="2xx"}`)).toBe(3);
    const bytes = images.one!.manifest.byteLength + images.one!.blobs.reduce((n, b) => n + b.bytes.byteLength, 0);
    expect(sample(m1, "ociregistry_store_bytes")).toBe(bytes);
    expect(sample(m1, 'ociregistry_store_items{kind="blobs"}')).toBe(2);
    expect(sample(m1, 'ociregistry_store_items{kind="manifests"}')).toBe(1);
    expect(sample(m1, 'ociregistry_store_items{kind="tags"}')).toBe(1);
    expect(sample(m1, `ociregistry_upstream_bytes_total{upstream="${UP}"}`)).toBe(bytes);
    // Warm pull with ctr (?ns=): hits only, nothing more from the upstream.
    expect(await ctr.pull(`${UP}/library/one:v1`, UP, c.url)).toBe(images.one!.digest);
    const m2 = await scrape(c.url);
    expect(sample(m2, 'ociregistry_cache_misses_total{kind="manifest"}')).toBe(1);
    expect(sample(m2, 'ociregistry_cache_misses_total{kind="blob"}')).toBe(2);
    expect(sample(m2, 'ociregistry_cache_hits_total{kind="blob"}')).toBe(sample(m2, 'ociregistry_http_requests_total{route="blobs",method="GET",status="200"}') - 2);
    expect(sample(m2, 'ociregistry_cache_hits_total{kind="manifest"}')).toBeGreaterThanOrEqual(1);
    expect(sample(m2, `ociregistry_upstream_requests_total{upstream="${UP}",status="2xx"}`)).toBe(3);
    expect(sample(m2, 'ociregistry_http_request_duration_seconds_count{route="manifests",method="GET"}'))
      .toBe(sample(m2, 'ociregistry_http_requests_total{route="manifests",method="GET",status="200"}'));
  });

  test("metrics on a port of their own; metrics: false turns them off", async () => {
    const separate = await cache("metrics: 0\n");
    const port = Number(separate.output().match(/metrics: \/metrics on port (\d+)/)![1]);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain("ociregistry_http_requests_total");
    expect((await fetch(`${separate.url}/metrics`)).status).toBe(404);
    const off = await cache("metrics: false\n");
    expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
  });
});

describe("admin API", () => {
  let c: RunningCache;
  const auth = { Authorization: `Bearer ${TOKEN}` };
  beforeAll(async () => {
    const hash = (await run(["htpasswd", "-Bbn", "ops", "secret"])).stdout.trim().split(":")[1]!;
    c = await cache(`admin: { tokenFromEnv: ADMIN_TOKEN }\nusers:\n  - { user: ops, password: "${hash}" }\n`);
  });

  test("refuses requests without the token, with a wrong one, and with only downstream basic auth", async () => {
    const basic = { Authorization: `Basic ${Buffer.from("ops:secret").toString("base64")}` };
    for (const headers of [{}, { Authorization: "Bearer wrong-token-wrong-token" }, basic]) {
      const res = await fetch(`${c.url}/api/v1/status`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
    expect((await fetch(`${c.url}/api/v1/status`, { headers: auth })).status).toBe(200);
  });

  test("load, jobs, images, prune and delete", async () => {
    const started = await fetch(`${c.url}/api/v1/load`, { method: "POST", headers: auth, body: JSON.stringify({ images: [`${UP}/library/two:v1`, `${UP}/library/three:v1`] }) });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as { id: string };
    let job: { state: string; progress: { done: number } } = { state: "running", progress: { done: 0 } };
    await waitFor("the load job", async () => {
      job = (await (await fetch(`${c.url}/api/v1/jobs/${id}`, { headers: auth })).json()) as typeof job;
      return job.state !== "running";
    });
    expect(job).toMatchObject({ state: "done", progress: { done: 2 } });
    const list = (await (await fetch(`${c.url}/api/v1/images`, { headers: auth })).json()) as Array<{ image: string; tag: string }>;
    expect(list.map((i) => `${i.image}:${i.tag}`)).toEqual([`${UP}/library/three:v1`, `${UP}/library/two:v1`]);
    const dry = await (await fetch(`${c.url}/api/v1/prune`, { method: "POST", headers: auth, body: JSON.stringify({ olderThan: "0s", dryRun: true }) })).json();
    expect(dry).toMatchObject({ dryRun: true, images: [`${UP}/library/three:v1`, `${UP}/library/two:v1`] });
    const del = await fetch(`${c.url}/api/v1/images/${UP}/library/two:v1`, { method: "DELETE", headers: auth });
    expect(del.status).toBe(200);
    expect(await del.json()).toMatchObject({ images: [`${UP}/library/two:v1`], blobs: 2 });
    const after = (await (await fetch(`${c.url}/api/v1/images`, { headers: auth })).json()) as unknown[];
    expect(after).toHaveLength(1);
    expect((await fetch(`${c.url}/api/v1/images/${UP}/library/two:v1`, { method: "DELETE", headers: auth })).status).toBe(404);
    expect((await fetch(`${c.url}/api/v1/prune`, { method: "POST", headers: auth, body: "[1]" })).status).toBe(400);
  });
});

describe("logs", () => {
  test("--log-file writes the log there and a SIGHUP reopens it after logrotate moved it", async () => {
    const log = join(dir, "cache.log");
    // The log goes to the file, so the port is chosen here rather than read from the output.
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = probe.port!;
    probe.stop(true);
    const file = join(dir, "config-log.yml");
    writeFileSync(file, `registries:\n  - name: ${UP}\n    scheme: http\n`);
    const proc = track(Bun.spawn([BINARY, "--config-file", file, "--image-path", mkdtempSync(join(dir, "store-")), "--log-file", log, "serve", "--host", "127.0.0.1", "--port", String(port)], { stdout: "ignore", stderr: "ignore" }));
    try {
      await waitFor("the banner in the log file", async () => existsSync(log) && readFileSync(log, "utf8").includes(`on port ${port}`));
      renameSync(log, `${log}.1`);
      proc.kill("SIGHUP");
      await waitFor("a new log file", async () => existsSync(log));
      await fetch(`http://127.0.0.1:${port}/v2/${UP}/library/one/manifests/v1`);
      await waitFor("the pull in the new file", async () => readFileSync(log, "utf8").includes(`cached ${UP}/library/one:v1`));
      expect(readFileSync(`${log}.1`, "utf8")).not.toContain(`cached ${UP}/library/one:v1`);
    } finally {
      await stopProcess(proc);
    }
  });
});
