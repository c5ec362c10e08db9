// `ociregistry configure-node` (the compiled binary) on a temporary certs.d, read by a real
// containerd: pulls go through the cache with a registry list and with --all, fall back to the
// upstream when the cache is down, a second run changes nothing, --remove restores the directory
// and containerd's config byte for byte; k3s's registries.yaml parses and names the mirror.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { BINARY, requireBinary, startCache, type RunningCache } from "../helpers/binary.ts";
import { startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run } from "../helpers/procs.ts";

const UP = "127.0.29.1";
let work: string;
let certs: string;
let containerdConfig: string;
let up: Distribution;
let cache: RunningCache;
let ctr: Containerd;
const images: Record<string, Image> = {};
let original: Record<string, string>;

function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const st = statSync(p);
      out[p] = st.isDirectory() ? `dir ${(st.mode & 0o777).toString(8)}` : `${(st.mode & 0o777).toString(8)} ${readFileSync(p, "utf8")}`;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const configure = (args: string[]) => run([BINARY, "configure-node", "--containerd-dir", certs, ...args], { allowFail: true });

beforeAll(async () => {
  requireBinary();
  work = mkdtempSync(join(tmpdir(), "ocireg-node-"));
  certs = join(work, "certs.d");
  // An unrelated registry's hosts.toml and a containerd config with its own settings: both must survive.
  mkdirSync(join(certs, "quay.io"), { recursive: true });
  writeFileSync(join(certs, "quay.io", "hosts.toml"), "server = \"https://quay.io\"\n\n[host.\"https://quay-mirror.corp\"]\n  capabilities = [\"pull\"]\n");
  containerdConfig = join(work, "containerd.toml");
  writeFileSync(containerdConfig, `version = 2\nroot = "${join(work, "c-root")}"\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n`);
  original = snapshot(work);
  up = await startDistribution({ addr: `${UP}:80` });
  for (const name of ["listed", "everything", "fallback", "second"]) {
    images[name] = makeImage({ content: 4096 + name.length });
    await pushImage({ base: up.base }, `library/${name}`, "v1", images[name]!);
  }
  const config = join(work, "cache.yaml");
  writeFileSync(config, `registries:\n  - name: ${UP}\n    scheme: http\n`);
  cache = await startCache(["--config-file", config, "--image-path", join(work, "store")]);
  ctr = await startContainerd();
}, 120_000);

afterAll(async () => {
  await ctr?.stop();
  await cache?.stop();
  await up?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

const served = (repo: string) => cache.output().includes(`cached ${UP}/library/${repo}:v1`);

describe("configure-node against a real containerd", () => {
  test("a registry list: containerd pulls through the cache", async () => {
    const r = await configure(["--mirror", cache.url, "--registries", `${UP},docker.io`, "--containerd-config", containerdConfig]);
    expect([r.code, r.stderr]).toEqual([0, expect.stringContaining("restart containerd")]);
    expect(r.stdout).toContain(`wrote ${join(certs, UP, "hosts.toml")}`);
    expect(readFileSync(join(certs, UP, "hosts.toml"), "utf8")).toContain(`server = "http://${UP}"`);
    const digest = await ctr.pullWithHosts(`${UP}/library/listed:v1`, certs);
    expect(digest).toBe(images.listed!.digest);
    expect(served("listed")).toBe(true);
  });

  test("the containerd config it wrote is one containerd reads, with config_path set", async () => {
    const r = await run(["containerd", "--config", containerdConfig, "config", "dump"]);
    expect(r.stdout).toContain(`config_path = "${certs}"`);
    expect(r.stdout).toContain('snapshotter = "overlayfs"');
  });

  test("a second run changes nothing", async () => {
    const before = snapshot(work);
    const r = await configure(["--mirror", cache.url, "--registries", `${UP},docker.io`, "--containerd-config", containerdConfig]);
    expect([r.code, r.stdout.trim()]).toEqual([0, "unchanged: the node is already configured"]);
    expect(snapshot(work)).toEqual(before);
  });

  test("--dry-run prints the file and writes nothing", async () => {
    const before = snapshot(work);
    const r = await configure(["--mirror", cache.url, "--all", "--dry-run"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`would write ${join(certs, "_default", "hosts.toml")}:`);
    expect(r.stdout).toContain(`[host."${cache.url}"]`);
    expect(snapshot(work)).toEqual(before);
  });

  test("--all (containerd's _default): containerd pulls through the cache", async () => {
    const r = await configure(["--mirror", cache.url, "--all"]);
    expect(r.code).toBe(0);
    expect(existsSync(join(certs, UP))).toBe(false);
    expect(readFileSync(join(certs, "quay.io", "hosts.toml"), "utf8")).toBe(original[join(certs, "quay.io", "hosts.toml")]!.slice(4));
    const digest = await ctr.pullWithHosts(`${UP}/library/everything:v1`, certs);
    expect(digest).toBe(images.everything!.digest);
    expect(served("everything")).toBe(true);
  });

  test("refuses a registry name that is not a host, and writes nothing", async () => {
    const before = snapshot(work);
    const r = await configure(["--mirror", cache.url, "--registries", "../../etc"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"../../etc" is not a registry host');
    expect(snapshot(work)).toEqual(before);
  });

  test("with the cache down, containerd falls back to the upstream and the pull still works", async () => {
    expect((await configure(["--mirror", cache.url, "--registries", UP])).code).toBe(0);
    await cache.stop();
    const before = up.requests().length;
    const digest = await ctr.pullWithHosts(`${UP}/library/fallback:v1`, certs);
    expect(digest).toBe(images.fallback!.digest);
    expect(up.requests().slice(before)).toContain("HEAD /v2/library/fallback/manifests/v1");
  });

  test("--remove restores the directory and containerd's config byte for byte", async () => {
    const r = await configure(["--remove", "--containerd-config", containerdConfig]);
    expect(r.code).toBe(0);
    expect(snapshot(work)).toMatchObject(original);
    for (const p of Object.keys(snapshot(certs))) expect(original[p]).toBeDefined();
    expect((await configure(["--remove"])).stdout.trim()).toBe("nothing to remove: configure-node wrote nothing here");
  });
});

describe("configure-node --k3s", () => {
  test("writes a registries.yaml that parses and names the mirror, and --remove deletes it", async () => {
    const file = join(work, "k3s", "registries.yaml");
    mkdirSync(join(work, "k3s"));
    const r = await run([BINARY, "configure-node", "--k3s", file, "--mirror", "http://10.0.0.10:31080", "--registries", "docker.io,registry.k8s.io"]);
    expect(r.stderr).toContain("restart k3s");
    expect(parseYaml(readFileSync(file, "utf8"))).toEqual({
      mirrors: { "docker.io": { endpoint: ["http://10.0.0.10:31080"] }, "registry.k8s.io": { endpoint: ["http://10.0.0.10:31080"] } },
    });
    expect(statSync(file).mode & 0o777).toBe(0o644);
    await run([BINARY, "configure-node", "--k3s", file, "--remove"]);
    expect(readdirSync(join(work, "k3s"))).toEqual([]);
  });
});

describe("configure-node --keep-running (the chart's DaemonSet)", () => {
  test("writes, stays up, and on SIGTERM takes out what it wrote and exits 0", async () => {
    const dir = join(work, "keep");
    mkdirSync(dir);
    const proc = Bun.spawn([BINARY, "configure-node", "--containerd-dir", dir, "--mirror", "http://10.0.0.10:31080", "--all", "--keep-running"], { stdout: "pipe", stderr: "pipe" });
    try {
      for (let i = 0; i < 100 && !existsSync(join(dir, "_default", "hosts.toml")); i++) await Bun.sleep(50);
      expect(existsSync(join(dir, "_default", "hosts.toml"))).toBe(true);
      expect(proc.exitCode).toBeNull();
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      proc.kill("SIGKILL");
    }
  });
});
