// `ociregistry configure-node` against containerd's CRI plugin, the path a Kubernetes node pulls
// by: the test's own containerd reads `config_path` from the config file that
// `--containerd-config` edited (then restarted), and CRI PullImage goes through the cache with a
// registry list and with --all; after --remove the next pull goes straight to the upstream.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, requireBinary, startCache, type RunningCache } from "../helpers/binary.ts";
import { startContainerd, type Containerd } from "../helpers/clients.ts";
import { criImages, type CriImages } from "../helpers/cri.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, stopAll } from "../helpers/procs.ts";

const UP = "127.0.35.1";
let work: string;
let certs: string;
let up: Distribution;
let cache: RunningCache;
let containerd: Containerd;
let cri: CriImages;
let originalConfig: string;
const images: Record<string, Image> = {};

const configure = (args: string[]) => run([BINARY, "configure-node", "--containerd-dir", certs, ...args], { allowFail: true });
const ref = (name: string) => `${UP}/library/${name}:v1`;

/** Checks that the upstream saw `name`'s manifest asked for, every time by a client whose User-Agent starts with `agent`. */
function expectManifestAgents(name: string, agent: "ociregistry/" | "containerd/") {
  const log = readFileSync(join(up.dir, "access.log"), "utf8");
  const re = new RegExp(`"(?:GET|HEAD) /v2/library/${name}/manifests/v1 HTTP/[\\d.]+" \\d+ \\d+ "[^"]*" "([^"]*)"`, "g");
  const agents = [...log.matchAll(re)].map((m) => m[1]!);
  expect(agents.length).toBeGreaterThan(0);
  for (const a of agents) expect(a).toStartWith(agent);
}

/** Pulls with CRI and checks the image containerd now holds is the one pushed. */
async function pullChecked(name: string) {
  const id = await cri.pull(ref(name));
  const status = await cri.status(ref(name));
  expect(status?.id).toBe(id);
  expect(status?.repoDigests).toContain(`${UP}/library/${name}@${images[name]!.digest}`);
}

beforeAll(async () => {
  requireBinary();
  work = mkdtempSync(join(tmpdir(), "ocireg-node-cri-"));
  certs = join(work, "certs.d");
  mkdirSync(certs);
  up = await startDistribution({ addr: `${UP}:80` });
  for (const name of ["listed", "everything", "direct"]) {
    images[name] = makeImage({ content: 8192 + name.length });
    await pushImage({ base: up.base }, `library/${name}`, "v1", images[name]!);
  }
  const config = join(work, "cache.yaml");
  writeFileSync(config, `registries:\n  - name: ${UP}\n    scheme: http\n`);
  cache = await startCache(["--config-file", config, "--image-path", join(work, "store")]);
  containerd = await startContainerd({ cri: true });
  originalConfig = readFileSync(containerd.config, "utf8");
  cri = criImages(containerd.address);
}, 120_000);

afterAll(async () => {
  cri?.close();
  await stopAll(() => containerd?.stop(), () => cache?.stop(), () => up?.stop());
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe("configure-node with containerd's CRI plugin (config_path)", () => {
  test("--containerd-config sets config_path in containerd's own config, which it accepts on restart", async () => {
    expect(originalConfig).not.toContain("config_path");
    const r = await configure(["--mirror", cache.url, "--registries", `${UP},docker.io`, "--containerd-config", containerd.config]);
    expect([r.code, r.stderr]).toEqual([0, expect.stringContaining("restart containerd")]);
    const dump = await run(["containerd", "--config", containerd.config, "config", "dump"]);
    expect(dump.stdout).toContain(`config_path = "${certs}"`);
    await containerd.restart();
  }, 60_000);

  test("a registry list: a CRI pull goes through the cache, never to the upstream directly", async () => {
    await pullChecked("listed");
    expect(cache.output()).toContain(`cached ${ref("listed")}`);
    expectManifestAgents("listed", "ociregistry/");
  }, 60_000);

  test("--all (containerd's _default): a CRI pull goes through the cache", async () => {
    const r = await configure(["--mirror", cache.url, "--all"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${join(certs, "_default", "hosts.toml")}`);
    await pullChecked("everything");
    expect(cache.output()).toContain(`cached ${ref("everything")}`);
    expectManifestAgents("everything", "ociregistry/");
  }, 60_000);

  test("after --remove the next CRI pull goes straight to the upstream", async () => {
    const r = await configure(["--remove"]);
    expect(r.code).toBe(0);
    await pullChecked("direct");
    expect(cache.output()).not.toContain(`library/direct`);
    expectManifestAgents("direct", "containerd/");
  }, 60_000);

  test("--remove --containerd-config restores containerd's config byte for byte, and containerd starts with it", async () => {
    const r = await configure(["--remove", "--containerd-config", containerd.config]);
    expect(r.code).toBe(0);
    expect(readFileSync(containerd.config, "utf8")).toBe(originalConfig);
    await containerd.restart();
    expect((await cri.status(ref("listed")))?.repoDigests).toContain(`${UP}/library/listed@${images.listed!.digest}`);
  }, 60_000);
});
