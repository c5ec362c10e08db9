// buildah (Debian) and crane (go-containerregistry, built by scripts/build-crane.sh) pulling
// through the compiled cache from a real distribution upstream, in-path (CACHE/<upstream>/<repo>)
// and, for buildah, through a registries.conf mirror. Digests are checked against the upstream.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { crane, makeBuildah, type Buildah } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { configOf, makeImage, makeIndex, pushImage, type Image } from "../helpers/images.ts";
import { run, stopAll } from "../helpers/procs.ts";
import { MANIFEST_TYPES } from "../../src/oci/mediatypes.ts";

const UP = "127.0.1.4";
const CONTENT = "exported through the cache\n";
const images: Record<string, Image> = {
  v1: makeImage({ content: CONTENT }),
  v2: makeImage({ docker: true }),
  multi: makeIndex(["amd64", "arm64"]),
};

let up: Distribution;
let cache: RunningCache;
let dir: string;
let repo: string;

beforeAll(async () => {
  up = await startDistribution({ addr: `${UP}:80` });
  await pushImage({ base: up.base }, "library/x", "v1", images.v1!);
  await pushImage({ base: up.base }, "library/x", "v2", images.v2!);
  await pushImage({ base: up.base }, "library/multi", "v1", images.multi!);
  dir = mkdtempSync(join(tmpdir(), "ocireg-buildah-crane-"));
  writeFileSync(join(dir, "config.yml"), `registries:\n  - name: ${UP}\n    scheme: http\n`);
  cache = await startCache(["--config-file", join(dir, "config.yml"), "--image-path", join(dir, "store"), "--log-level", "debug"]);
  repo = `127.0.0.1:${cache.port}/${UP}/library`;
}, 120_000);

afterAll(async () => {
  await stopAll(() => cache?.stop(), () => up?.stop(), () => {
    for (const d of [up?.dir, dir]) if (d) rmSync(d, { recursive: true, force: true });
  });
}, 120_000);

/** The digest the upstream itself gives `repository:reference`. */
async function upstreamDigest(repository: string, reference: string) {
  const res = await fetch(`${up.base}/v2/${repository}/manifests/${reference}`, { method: "HEAD", headers: { Accept: MANIFEST_TYPES.join(", ") } });
  expect(res.status).toBe(200);
  return res.headers.get("docker-content-digest");
}

describe("buildah", () => {
  let buildah: Buildah;
  beforeAll(() => {
    // The registry itself is unreachable (127.0.0.1:1): a mirror pull cannot fall back to it.
    buildah = makeBuildah(`unqualified-search-registries = []\n\n[[registry]]\nprefix = "${UP}"\nlocation = "127.0.0.1:1"\n\n` +
      `[[registry.mirror]]\nlocation = "127.0.0.1:${cache.port}/${UP}"\ninsecure = true\n`);
  });
  afterAll(async () => {
    await buildah?.cleanup();
  });

  async function pulled(ref: string) {
    const list = JSON.parse((await buildah.run(["images", "--json"])).stdout) as Array<{ names: string[] | null; digest: string }>;
    const image = list.find((i) => i.names?.includes(ref));
    const info = JSON.parse((await buildah.run(["inspect", "--type", "image", ref])).stdout) as {
      FromImageDigest: string; FromImageID: string; OCIv1: { architecture: string };
    };
    return { digest: image?.digest, ...info };
  }

  test("pulls an in-path reference with the upstream's digest and config", async () => {
    const ref = `${repo}/x:v1`;
    await buildah.run(["pull", "--tls-verify=false", ref]);
    const r = await pulled(ref);
    expect(r.digest).toBe(images.v1!.digest);
    expect(r.digest).toBe((await upstreamDigest("library/x", "v1"))!);
    expect(`sha256:${r.FromImageID}`).toBe(images.v1!.blobs[0]!.digest);
  });

  test("--arch arm64 pulls the arm64 image of an index", async () => {
    const ref = `${repo}/multi:v1`;
    await buildah.run(["pull", "--tls-verify=false", "--arch", "arm64", ref]);
    const r = await pulled(ref);
    const arm64 = images.multi!.children[1]!;
    expect(r.digest).toBe(images.multi!.digest);
    expect(r.FromImageDigest).toBe(arm64.digest);
    expect(r.OCIv1.architecture).toBe("arm64");
    expect(`sha256:${r.FromImageID}`).toBe(arm64.blobs[0]!.digest);
  });

  test("pulls <upstream>/<repo> through a registries.conf mirror (in-path location)", async () => {
    const ref = `${UP}/library/x:v2`;
    await buildah.run(["pull", ref]);
    const r = await pulled(ref);
    expect(r.digest).toBe(images.v2!.digest);
    expect(await cache.settledOutput()).toMatch(new RegExp(`method=(GET|HEAD) path=/v2/${UP.replaceAll(".", "\\.")}/library/x/manifests/v2 status=200 `));
  });
});

describe("crane --insecure", () => {
  test("crane digest gives the upstream's digest", async () => {
    const out = (await crane(["digest", "--insecure", `${repo}/x:v1`])).stdout.trim();
    expect(out).toBe(images.v1!.digest);
    expect(out).toBe((await upstreamDigest("library/x", "v1"))!);
  });

  test("crane digest --platform linux/arm64 gives the arm64 image of an index", async () => {
    const out = (await crane(["digest", "--insecure", "--platform", "linux/arm64", `${repo}/multi:v1`])).stdout.trim();
    expect(out).toBe(images.multi!.children[1]!.digest);
  });

  test("crane manifest prints the upstream's manifest byte for byte, an index too", async () => {
    expect((await crane(["manifest", "--insecure", `${repo}/x:v2`])).stdout).toBe(new TextDecoder().decode(images.v2!.manifest));
    expect((await crane(["manifest", "--insecure", `${repo}/multi:v1`])).stdout).toBe(new TextDecoder().decode(images.multi!.manifest));
  });

  test("crane ls lists the upstream's tags", async () => {
    expect((await crane(["ls", "--insecure", `${repo}/x`])).stdout.trim().split("\n").sort()).toEqual(["v1", "v2"]);
  });

  test("crane config prints the image's config blob", async () => {
    const out = (await crane(["config", "--insecure", `${repo}/x:v1`])).stdout;
    expect(out).toBe(new TextDecoder().decode(images.v1!.blobs[0]!.bytes));
    expect(JSON.parse(out).architecture).toBe(configOf(images.v1!).architecture);
  });

  test("crane pull writes a tarball with the upstream's config and layer", async () => {
    const out = mkdtempSync(join(dir, "pull-"));
    await crane(["pull", "--insecure", `${repo}/x:v1`, join(out, "x.tar")]);
    await run(["tar", "-xf", join(out, "x.tar"), "-C", out]);
    const [entry] = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")) as Array<{ Config: string; Layers: string[] }>;
    const [config, layer] = images.v1!.blobs as [Image["blobs"][0], Image["blobs"][0]];
    expect(entry!.Config).toBe(config.digest);
    expect(readFileSync(join(out, entry!.Config))).toEqual(Buffer.from(config.bytes));
    expect(entry!.Layers).toEqual([`${layer.digest.slice(7)}.tar.gz`]);
    expect(readFileSync(join(out, entry!.Layers[0]!))).toEqual(Buffer.from(layer.bytes));
  });

  test("crane export writes the image's filesystem", async () => {
    const out = mkdtempSync(join(dir, "export-"));
    await crane(["export", "--insecure", `${repo}/x:v1`, join(out, "fs.tar")]);
    expect((await run(["tar", "-tf", join(out, "fs.tar")])).stdout.trim()).toBe("hello.txt");
    expect((await run(["tar", "-xOf", join(out, "fs.tar"), "hello.txt"])).stdout).toBe(CONTENT);
  });
});
