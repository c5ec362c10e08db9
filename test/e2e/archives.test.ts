// `serve --archives DIR` with archives skopeo (and GNU tar) wrote, in the five name patterns, in
// front of a real distribution upstream: pulled by skopeo, ctr and podman; a file replaced,
// deleted, truncated, gzip-compressed; a Range request on a 64 MiB layer; `list --archives`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { podmanPull, skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, makeIndex, pushImage, type Image } from "../helpers/images.ts";
import { writeLayout } from "../helpers/oci-archive.ts";
import { run } from "../helpers/procs.ts";

const UP = "127.0.5.2";
const TOKEN = "archives-admin-token-0123456789";
let work: string;
let dir: string;
let up: Distribution;
let cache: RunningCache;
let ctr: Containerd;
const img: Record<"single" | "multi" | "a" | "b" | "big" | "next" | "upstream" | "decoy", Image> = {
  single: makeImage(), multi: makeIndex(["amd64", "arm64"]), a: makeImage(), b: makeImage(), next: makeImage(),
  big: makeImage({ content: 64 * 1024 * 1024, uncompressed: true }), upstream: makeImage(), decoy: makeImage(),
};
/** Manifest digests as the archives hold them (the v2s2 one is skopeo's conversion). */
const digests: Record<string, string> = {};

/** `skopeo copy oci:SRC:ref DEST`; returns the digest of the manifest written. */
async function skopeo(ref: string, dest: string, extra: string[] = []): Promise<string> {
  const digestFile = join(work, `digest-${Math.random()}`);
  await run(["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--digestfile", digestFile, ...extra, `oci:${join(work, "src")}:${ref}`, dest]);
  return readFileSync(digestFile, "utf8").trim();
}

/**
 * Writes `oci-archive:` of `ref` (annotated `annotation` if given) to a temporary file, then
 * renames it to `file`: skopeo would read a `:` in the file name as a reference, and a rename is
 * how a careful user replaces an archive.
 */
async function archive(ref: string, file: string, opts: { annotation?: string; extra?: string[] } = {}): Promise<string> {
  const tmp = join(work, `tmp-${Math.random().toString(36).slice(2)}.oci`);
  const digest = await skopeo(ref, `oci-archive:${tmp}${opts.annotation ? `:${opts.annotation}` : ""}`, opts.extra);
  mkdirSync(dirname(file), { recursive: true });
  renameSync(tmp, file);
  return digest;
}

const at = (rel: string) => join(dir, rel);
const pull = (name: string, opts: { all?: boolean } = {}) => skopeoCopy(`127.0.0.1:${cache.port}/${UP}/library/${name}`, opts);
const manifestStatus = async (name: string, ref: string) => (await fetch(`${cache.url}/v2/${UP}/library/${name}/manifests/${ref}`)).status;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ocireg-archives-e2e-"));
  dir = join(work, "archives");
  writeLayout(join(work, "src"), (["single", "multi", "a", "b", "big", "next"] as const).map((n) => ({ image: img[n], ref: n })));
  // 1. <name>/<reference>.oci: one image, no annotation (skopeo writes none without a :ref).
  digests.single = await archive("single", at("library/single/v1.oci"));
  // 2. <name>/*.oci: a multi-arch index annotated v1.
  digests.multi = await archive("multi", at("library/multi/platforms.oci"), { annotation: "v1", extra: ["--all"] });
  // 3. <name>:<reference>.oci: a Docker schema 2 image (skopeo converts it; an oci-archive holds it fine).
  digests.docker = await archive("single", at("library/docker:v1.oci"), { extra: ["--format", "v2s2"] });
  // 4. <name>:*.oci: two images in one layout, tarred by GNU tar (./ names).
  digests.a = await skopeo("a", `oci:${join(work, "pair")}:ref1`);
  digests.b = await skopeo("b", `oci:${join(work, "pair")}:ref2`);
  await run(["tar", "--force-local", "-C", join(work, "pair"), "-cf", at("library/pair:two-images.oci"), "."]);
  // 5. <name>.oci: a 64 MiB layer.
  digests.big = await archive("big", at("library/big.oci"));
  writeFileSync(at("library/gz.oci"), Bun.gzipSync(readFileSync(at("library/single/v1.oci"))));
  up = await startDistribution({ addr: `${UP}:80` });
  await pushImage({ base: up.base }, "library/upstream-only", "v1", img.upstream);
  await pushImage({ base: up.base }, "library/single", "v1", img.decoy); // the archive must win
  const config = join(work, "config.yml");
  writeFileSync(config, `registries:\n  - name: ${UP}\n    scheme: http\nadmin:\n  token: ${TOKEN}\narchives:\n  path: /elsewhere\n  rescan: 1h\n`);
  cache = await startCache(["--config-file", config, "--image-path", join(work, "store"), "--archives", dir, "--default-ns", UP]);
  ctr = await startContainerd();
}, 180_000);

afterAll(async () => {
  await ctr?.stop();
  await cache?.stop();
  await up?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe("pulling from archives", () => {
  test("skopeo pulls each of the five name patterns with the archive's digest and bytes", async () => {
    for (const [name, digest, image] of [
      ["single:v1", digests.single, img.single], ["multi:v1", digests.multi, img.multi], ["docker:v1", digests.docker, null],
      ["pair:ref1", digests.a, img.a], ["pair:ref2", digests.b, img.b], ["big:any-tag", digests.big, img.big],
    ] as const) {
      const r = await pull(name, { all: name.startsWith("multi") });
      try {
        expect([name, r.digest]).toEqual([name, digest!]);
        if (image) expect(readFileSync(join(r.dir, "manifest.json"))).toEqual(Buffer.from(image.manifest));
        if (image && !image.children.length) {
          for (const b of image.blobs) expect(Bun.hash(readFileSync(join(r.dir, b.digest.slice(7))))).toBe(Bun.hash(b.bytes));
        }
      } finally {
        r.cleanup();
      }
    }
    expect(digests.multi).toBe(img.multi.digest);
    expect(readFileSync(join(work, "pair/index.json"), "utf8")).toContain('"org.opencontainers.image.ref.name":"ref2"');
  }, 120_000);

  test("ctr (hosts.toml mirror, ?ns=) pulls the single, multi-arch and Docker schema 2 images", async () => {
    for (const [name, digest] of [["single:v1", digests.single], ["multi:v1", digests.multi], ["docker:v1", digests.docker]] as const) {
      expect(await ctr.pull(`${UP}/library/${name}`, UP, cache.url)).toBe(digest!);
    }
  }, 120_000);

  test("podman (registries.conf mirror) pulls the multi-arch index and one image of the pair", async () => {
    const mirror = `127.0.0.1:${cache.port}/${UP}`;
    expect(await podmanPull(`${UP}/library/multi:v1`, UP, mirror)).toBe(digests.multi!);
    expect(await podmanPull(`${UP}/library/pair:ref2`, UP, mirror)).toBe(digests.b!);
  }, 120_000);

  test("the archive wins over the upstream, whose tag was never asked; what archives lack comes from the upstream", async () => {
    const r = await pull("upstream-only:v1");
    expect(r.digest).toBe(img.upstream.digest);
    r.cleanup();
    expect(up.requests().filter((q) => /^(GET|HEAD) \/v2\/library\/single\/manifests/.test(q))).toEqual([]);
    expect(up.requests()).toContain("GET /v2/library/upstream-only/manifests/v1");
  });

  test("a Range request on the 64 MiB layer is served from the archive file (206, the right bytes)", async () => {
    const layer = img.big.blobs[1]!;
    expect(layer.bytes.byteLength).toBeGreaterThan(64 * 1024 * 1024);
    const res = await fetch(`${cache.url}/v2/${UP}/library/big/blobs/${layer.digest}`, { headers: { Range: "bytes=40000000-40999999" } });
    expect([res.status, res.headers.get("content-range")]).toEqual([206, `bytes 40000000-40999999/${layer.bytes.byteLength}`]);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(layer.bytes.subarray(40_000_000, 41_000_000));
  });
});

describe("a directory that changes", () => {
  test("a file replaced with a new version is served at its new digest on the next request", async () => {
    const next = await archive("next", at("library/single/v1.oci"));
    const r = await pull("single:v1");
    expect(r.digest).toBe(next);
    r.cleanup();
    expect(await cache.settledOutput()).toContain(`archive ${at("library/single/v1.oci")} changed; re-indexed`);
  });

  test("a deleted file is a 404 at once, by tag and by digest, with no rescan", async () => {
    unlinkSync(at("library/pair:two-images.oci"));
    expect(await manifestStatus("pair", "ref1")).toBe(404);
    expect(await manifestStatus("pair", digests.b!)).toBe(404);
    expect((await fetch(`${cache.url}/v2/${UP}/library/pair/blobs/${img.a.blobs[1]!.digest}`)).status).toBe(404);
  });

  test("a truncated file is a 404 (never 5xx), reported once; the others keep serving", async () => {
    copyFileSync(at("library/big.oci"), at("library/cut.oci"));
    truncateSync(at("library/cut.oci"), 32 * 1024 * 1024);
    const refused = await fetch(`${cache.url}/api/v1/archives/rescan`, { method: "POST" });
    expect(refused.status).toBe(401);
    const scan = await fetch(`${cache.url}/api/v1/archives/rescan`, { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(scan.status).toBe(200);
    expect(await scan.json()).toMatchObject({ files: 6, problems: [] }); // single, multi, docker, big, gz, cut
    for (let i = 0; i < 3; i++) expect(await manifestStatus("cut", "v1")).toBe(404);
    const log = await cache.settledOutput();
    expect(log.split(`archive ${at("library/cut.oci")} is not a readable tar: truncated`).length - 1).toBe(1);
    const r = await pull("multi:v1", { all: true });
    expect(r.digest).toBe(digests.multi!);
    r.cleanup();
    expect(await manifestStatus("big", "v1")).toBe(200);
  });

  test("a gzip-compressed archive is refused with a clear message, logged once", async () => {
    expect(await manifestStatus("gz", "v1")).toBe(404);
    expect(await manifestStatus("gz", "v2")).toBe(404);
    const log = await cache.settledOutput();
    expect(log.split(`archive ${at("library/gz.oci")} is gzip-compressed`).length - 1).toBe(1);
    expect(log).toContain("decompress it (gunzip)");
  });

  test("list --archives shows each archive image with its file, and skips the damaged ones", async () => {
    const r = await run([BINARY, "list", "--image-path", join(work, "store"), "--archives", dir, "--json"]);
    const rows = JSON.parse(r.stdout) as Array<{ image: string; tag: string; digest: string; archive?: string }>;
    const archived = rows.filter((x) => x.archive).map((x) => [x.image, x.tag, x.digest, x.archive!.slice(dir.length + 1)]);
    expect(archived).toEqual([
      ["library/big", "<any>", digests.big, "library/big.oci"],
      ["library/docker", "v1", digests.docker, "library/docker:v1.oci"],
      ["library/multi/platforms", "v1", digests.multi, "library/multi/platforms.oci"],
      ["library/single/v1", "<any>", expect.any(String), "library/single/v1.oci"],
    ]);
    expect(r.stderr).toContain(`skipped archive ${at("library/cut.oci")}: is not a readable tar: truncated`);
    expect(r.stderr).toContain(`skipped archive ${at("library/gz.oci")}: is gzip-compressed`);
    const table = await run([BINARY, "list", "--image-path", join(work, "store"), "--archives", dir]);
    expect(table.stdout.split("\n")[0]).toMatch(/^IMAGE\s+TAG\s+DIGEST\s+SIZE\s+LAST PULLED\s+PINNED\s+ARCHIVE$/);
  });
});
