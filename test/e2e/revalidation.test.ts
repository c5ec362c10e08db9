// Tags move: the binary revalidates a cached tag with HEAD once it is older than
// --revalidate-after, refetches only when the digest changed, and serves it stale when the
// upstream is down.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage } from "../helpers/images.ts";

const HOST = "127.0.0.4";
let up: Distribution;
let cache: RunningCache;
let store: string;

beforeAll(async () => {
  up = await startDistribution({ addr: `${HOST}:80` });
  store = mkdtempSync(join(tmpdir(), "ocireg-store-"));
  // Without a registries entry an upstream is https; this one is named on the command line via a config.
  const cfg = join(store, "..", `${store.split("/").pop()}.yml`);
  await Bun.write(cfg, `registries:\n  - name: ${HOST}\n    scheme: http\n`);
  cache = await startCache(["--config-file", cfg, "--image-path", store, "--revalidate-after", "1s"]);
}, 120_000);

afterAll(async () => {
  await cache?.stop();
  await up?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
}, 120_000);

const manifestRequests = () => up.requests().filter((r) => r.includes("/manifests/"));

test("an unchanged tag costs one HEAD; a moved tag is fetched again", async () => {
  const v1 = makeImage();
  await pushImage({ base: up.base }, "app", "latest", v1);
  const ref = `127.0.0.1:${cache.port}/${HOST}/app:latest`;
  expect((await skopeoCopy(ref)).digest).toBe(v1.digest);
  await Bun.sleep(1100);
  let before = manifestRequests().length;
  expect((await skopeoCopy(ref)).digest).toBe(v1.digest);
  expect(manifestRequests().slice(before)).toEqual(["HEAD /v2/app/manifests/latest"]);

  const v2 = makeImage();
  await pushImage({ base: up.base }, "app", "latest", v2);
  await Bun.sleep(1100);
  before = manifestRequests().length;
  expect((await skopeoCopy(ref)).digest).toBe(v2.digest);
  expect(manifestRequests().slice(before)).toEqual(["HEAD /v2/app/manifests/latest", "GET /v2/app/manifests/latest"]);
});

test("a stale tag is served while the upstream is down, and the log says so", async () => {
  const img = makeImage();
  await pushImage({ base: up.base }, "down", "v1", img);
  const ref = `127.0.0.1:${cache.port}/${HOST}/down:v1`;
  expect((await skopeoCopy(ref)).digest).toBe(img.digest);
  await up.stop();
  try {
    await Bun.sleep(1100);
    expect((await skopeoCopy(ref)).digest).toBe(img.digest);
    expect(cache.output()).toContain(`serving cached ${HOST}/down:v1`);
  } finally {
    await up.restart();
  }
});
