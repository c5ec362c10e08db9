// Docker Engine (Debian's dockerd 20.10, a private daemon) pulling and building through the
// compiled cache in front of real distribution upstreams: registry-mirrors (default namespace),
// in-path, by digest, multi-arch with --platform, with the upstream stopped, and `docker build`
// with the classic builder and with BuildKit.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { startDockerd, type Dockerd } from "../helpers/docker.ts";
import { configOf, makeImage, makeIndex, pushImage, type Image } from "../helpers/images.ts";
import { stopAll } from "../helpers/procs.ts";

/** The cache's default namespace: where Docker's registry-mirrors requests (no upstream named) go. */
const UP = "127.0.1.2";
/**
 * Stands in for Docker Hub. The cache sends `docker.io` requests to registry-1.docker.io as usual;
 * its HTTP_PROXY points at this distribution, which serves absolute-form requests like any other.
 */
const HUB = "127.0.1.3";

const images: Record<string, Image> = {
  hello: makeImage({ docker: true }),
  oci: makeImage(),
  pinned: makeImage(),
  multi: makeIndex(["amd64", "arm64"]),
  multilist: makeIndex(["amd64", "arm64"], { docker: true }),
  offline: makeImage({ docker: true }),
  classicbase: makeImage({ docker: true }),
  classicpath: makeImage(),
  bkbase: makeImage(),
};
const hubbase = makeImage();

let up: Distribution;
let hub: Distribution;
let cache: RunningCache;
let dockerd: Dockerd;
let dir: string;
let cacheHost: string;

beforeAll(async () => {
  up = await startDistribution({ addr: `${UP}:80` });
  hub = await startDistribution({ addr: `${HUB}:80` });
  for (const [name, img] of Object.entries(images)) await pushImage({ base: up.base }, `library/${name}`, "v1", img);
  await pushImage({ base: hub.base }, "library/hubbase", "v1", hubbase);
  dir = mkdtempSync(join(tmpdir(), "ocireg-docker-test-"));
  const config = join(dir, "config.yml");
  writeFileSync(config, `registries:\n  - name: ${UP}\n    scheme: http\n  - name: docker.io\n    scheme: http\n`);
  const proxy = `http://${HUB}`;
  cache = await startCache([
    "--config-file", config, "--image-path", join(dir, "store"), "--default-ns", UP,
    "--revalidate-after", "1h", "--log-level", "debug",
  ], { HTTP_PROXY: proxy, http_proxy: proxy, NO_PROXY: UP, no_proxy: UP });
  cacheHost = `127.0.0.1:${cache.port}`;
  dockerd = await startDockerd(cache.url);
}, 120_000);

afterAll(async () => {
  await stopAll(() => dockerd?.stop(), () => cache?.stop(), () => up?.stop(), () => hub?.stop(), () => {
    for (const d of [up?.dir, hub?.dir, dir]) if (d) rmSync(d, { recursive: true, force: true });
  });
}, 120_000);

/** Requests the cache logged (its access log) for a repository path such as `library/hello`, in order. */
async function cacheRequests(repoPath: string) {
  return [...(await cache.settledOutput()).matchAll(/ method=(GET|HEAD) path="?(\/v2\/[^\s"]+)"? status=(\d{3}) /g)]
    .map((m) => ({ method: m[1]!, path: m[2]!, status: Number(m[3]) }))
    .filter((r) => r.path.startsWith(`/v2/${repoPath}/`));
}

async function inspect(ref: string) {
  const r = await dockerd.docker(["image", "inspect", ref]);
  return (JSON.parse(r.stdout) as Array<{
    Id: string; RepoDigests: string[]; Architecture: string;
    Config: { Labels: Record<string, string> | null }; RootFS: { Layers: string[] };
  }>)[0]!;
}

/** The image ID Docker gives an image: the digest of its config blob. */
const imageId = (img: Image) => img.blobs[0]!.digest;

describe("docker pull", () => {
  test("a Docker Hub name is pulled through registry-mirrors from the default namespace, with no ns", async () => {
    await dockerd.docker(["pull", "hello:v1"]);
    const info = await inspect("hello:v1");
    expect(info.RepoDigests).toContain(`hello@${images.hello!.digest}`);
    expect(info.Id).toBe(imageId(images.hello!));
    const reqs = await cacheRequests("library/hello");
    expect(reqs[0]).toEqual({ method: "HEAD", path: "/v2/library/hello/manifests/v1", status: 200 });
    expect(reqs.filter((r) => r.path.includes("?"))).toEqual([]);
    expect(up.requests()).toContain("GET /v2/library/hello/manifests/v1");
  });

  test("an in-path reference CACHE/<upstream>/<repo> pulls from that upstream", async () => {
    const ref = `${cacheHost}/${UP}/library/oci:v1`;
    await dockerd.docker(["pull", ref]);
    const info = await inspect(ref);
    expect(info.RepoDigests).toContain(`${cacheHost}/${UP}/library/oci@${images.oci!.digest}`);
    expect(info.Id).toBe(imageId(images.oci!));
    const reqs = await cacheRequests(`${UP}/library/oci`);
    expect(reqs.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain(`HEAD /v2/${UP}/library/oci/manifests/v1 200`);
    expect(reqs.every((r) => r.status === 200 && !r.path.includes("?"))).toBe(true);
  });

  test("a pull by digest asks the cache for that digest, never the tag", async () => {
    const ref = `${cacheHost}/${UP}/library/pinned@${images.pinned!.digest}`;
    await dockerd.docker(["pull", ref]);
    expect((await inspect(ref)).Id).toBe(imageId(images.pinned!));
    const manifests = (await cacheRequests(`${UP}/library/pinned`)).filter((r) => r.path.includes("/manifests/"));
    expect(manifests.length).toBeGreaterThan(0);
    expect(manifests.every((r) => r.path.endsWith(`/manifests/${images.pinned!.digest}`) && r.status === 200)).toBe(true);
  });

  for (const [name, kind] of [["multi", "an OCI image index"], ["multilist", "a Docker manifest list"]] as const) {
    test(`--platform linux/arm64 pulls the arm64 image of ${kind}`, async () => {
      const index = images[name]!;
      const [amd64, arm64] = index.children as [Image, Image];
      const ref = `${cacheHost}/${UP}/library/${name}:v1`;
      await dockerd.docker(["pull", "--platform", "linux/arm64", ref]);
      const info = await inspect(ref);
      expect(info.Architecture).toBe("arm64");
      expect(info.Id).toBe(imageId(arm64));
      expect(info.RepoDigests).toContain(`${cacheHost}/${UP}/library/${name}@${index.digest}`);
      const paths = (await cacheRequests(`${UP}/library/${name}`)).map((r) => r.path);
      expect(paths).toContain(`/v2/${UP}/library/${name}/manifests/${arm64.digest}`);
      expect(paths).not.toContain(`/v2/${UP}/library/${name}/manifests/${amd64.digest}`);
    });
  }
});

describe("docker build FROM the cache", () => {
  async function build(tag: string, from: string, builder: "classic" | "buildkit") {
    const ctx = mkdtempSync(join(dir, "ctx-"));
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${from}\nLABEL org.example.builder=${builder}\nCOPY added.txt /added.txt\n`);
    writeFileSync(join(ctx, "added.txt"), `added by the ${builder} builder\n`);
    const env = { DOCKER_BUILDKIT: builder === "buildkit" ? "1" : "0" };
    await dockerd.docker(["build", ...(builder === "buildkit" ? ["--progress", "plain"] : []), "-t", tag, ctx], { env });
    const info = await inspect(tag);
    expect(info.Config.Labels?.["org.example.builder"]).toBe(builder);
    expect(info.RootFS.Layers.length).toBe(2);
    return info;
  }

  test("the classic builder pulls a Docker Hub name through the mirror from the default namespace, with no ns", async () => {
    const info = await build("built-classic:v1", "classicbase:v1", "classic");
    expect(info.RootFS.Layers[0]).toBe(configOf(images.classicbase!).rootfs.diff_ids[0]!);
    const reqs = await cacheRequests("library/classicbase");
    expect(reqs.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain("HEAD /v2/library/classicbase/manifests/v1 200");
    expect(reqs.filter((r) => r.path.includes("ns="))).toEqual([]);
  });

  test("the classic builder pulls an in-path FROM through the cache", async () => {
    const info = await build("built-classic-inpath:v1", `${cacheHost}/${UP}/library/classicpath:v1`, "classic");
    expect(info.RootFS.Layers[0]).toBe(configOf(images.classicpath!).rootfs.diff_ids[0]!);
    const reqs = await cacheRequests(`${UP}/library/classicpath`);
    expect(reqs.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain(`HEAD /v2/${UP}/library/classicpath/manifests/v1 200`);
  });

  test("BuildKit pulls an in-path FROM through the cache, with no ns", async () => {
    const info = await build("built-buildkit:v1", `${cacheHost}/${UP}/library/bkbase:v1`, "buildkit");
    expect(info.RootFS.Layers[0]).toBe(configOf(images.bkbase!).rootfs.diff_ids[0]!);
    const reqs = await cacheRequests(`${UP}/library/bkbase`);
    expect(reqs.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain(`HEAD /v2/${UP}/library/bkbase/manifests/v1 200`);
    expect(reqs.filter((r) => r.path.includes("ns="))).toEqual([]);
  });

  test("BuildKit's mirror requests carry ns=docker.io, so they go to Docker Hub, not the default namespace", async () => {
    const info = await build("built-buildkit-hub:v1", "hubbase:v1", "buildkit");
    expect(info.RootFS.Layers[0]).toBe(configOf(hubbase).rootfs.diff_ids[0]!);
    const reqs = await cacheRequests("library/hubbase");
    expect(reqs.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain("HEAD /v2/library/hubbase/manifests/v1?ns=docker.io 200");
    expect(reqs.length).toBeGreaterThan(1);
    expect(reqs.every((r) => r.path.endsWith("?ns=docker.io") && r.status === 200)).toBe(true);
    expect(hub.requests()).toContain("GET http://registry-1.docker.io/v2/library/hubbase/manifests/v1");
    expect(up.requests().filter((r) => r.includes("hubbase"))).toEqual([]);
  });
});

describe("the upstream stopped", () => {
  test("an image pulled once, then removed, pulls again from the cache alone", async () => {
    await dockerd.docker(["pull", "offline:v1"]);
    await dockerd.docker(["rmi", "offline:v1"]);
    expect((await dockerd.docker(["image", "inspect", "offline:v1"], { allowFail: true })).code).not.toBe(0);
    await up.stop();
    try {
      const before = (await cacheRequests("library/offline")).length;
      await dockerd.docker(["pull", "offline:v1"]);
      const info = await inspect("offline:v1");
      expect(info.Id).toBe(imageId(images.offline!));
      expect(info.RepoDigests).toContain(`offline@${images.offline!.digest}`);
      const again = (await cacheRequests("library/offline")).slice(before).map((r) => `${r.method} ${r.path} ${r.status}`);
      expect(again).toContain("HEAD /v2/library/offline/manifests/v1 200");
      for (const b of images.offline!.blobs) expect(again).toContain(`GET /v2/library/offline/blobs/${b.digest} 200`);
    } finally {
      await up.restart();
    }
  });
});
