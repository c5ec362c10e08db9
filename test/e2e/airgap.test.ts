// The whole air-gap story with the compiled binary: load an image list from real upstreams,
// list, export, stop every upstream, extract elsewhere, serve --air-gapped, pull with skopeo and
// ctr, prune what nobody touched.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, startCache, type RunningCache } from "../helpers/binary.ts";
import { skopeoCopy, startContainerd, type Containerd } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { allBlobs, makeImage, makeIndex, pushImage, type Image } from "../helpers/images.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { run, waitFor } from "../helpers/procs.ts";

const HTTP = "127.0.0.12";
const HTTPS = "127.0.0.13";
let dir: string;
let pki: Pki;
let http: Distribution;
let https: Distribution;
let config: string;
let storeA: string;
let ctr: Containerd;

const images = {
  multi: makeIndex(["amd64", "arm64"]),
  docker: makeImage({ docker: true, content: "shared layer\n" }),
  big: makeImage({ content: 50 * 1024 * 1024, uncompressed: true }),
  // Same layer and config bytes as `docker`, as an OCI image: pulled by digest.
  pinned: makeImage({ content: "shared layer\n" }),
};
const refs = {
  multi: `${HTTP}/library/multi:v1`,
  docker: `${HTTPS}/team/dockerv2:v1`,
  big: `${HTTP}/library/big:v1`,
  pinned: `${HTTPS}/team/pinned@${images.pinned.digest}`,
};
type Name = keyof typeof images;
const names = Object.keys(images) as Name[];

/** `host/repo` of a `host/repo:tag` or `host/repo@digest` reference. */
const repoOf = (ref: string) => ref.replace(/@.*$/, "").replace(/:[^/]*$/, "");
const cli = (args: string[]) => run([BINARY, "--config-file", config, ...args]);
const blobFiles = (store: string) => readdirSync(join(store, "blobs/sha256"));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-airgap-"));
  pki = await makePki([HTTPS]);
  http = await startDistribution({ addr: `${HTTP}:80` });
  https = await startDistribution({ addr: `${HTTPS}:443`, tls: { cert: pki.serverCert, key: pki.serverKey } });
  const tls = { ca: readFileSync(pki.ca, "utf8") };
  await pushImage({ base: http.base }, "library/multi", "v1", images.multi);
  await pushImage({ base: http.base }, "library/big", "v1", images.big);
  await pushImage({ base: https.base, tls }, "team/dockerv2", "v1", images.docker);
  await pushImage({ base: https.base, tls }, "team/pinned", "v1", images.pinned);
  storeA = join(dir, "storeA");
  config = join(dir, "config.yml");
  writeFileSync(config, `registries:\n  - name: ${HTTP}\n    scheme: http\n  - name: ${HTTPS}\n    tls: { ca: ${pki.ca} }\n`);
  ctr = await startContainerd();
}, 120_000);

afterAll(async () => {
  await ctr?.stop();
  await http?.stop().catch(() => {});
  await https?.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("connected side", () => {
  test("a malformed image list is refused with line numbers before anything is downloaded", async () => {
    const before = http.requests().length;
    const bad = join(dir, "bad.txt");
    writeFileSync(bad, `${refs.multi}\nnginx::1\n# fine\nUPPER/case:v1\n`);
    const r = await run([BINARY, "--config-file", config, "--image-path", join(dir, "unused"), "load", "--image-file", bad], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("line 2");
    expect(r.stderr).toContain("line 4");
    expect(http.requests().slice(before)).toEqual([]);
  });

  test("load pulls the list in parallel; a second run downloads nothing; failures are named", async () => {
    const list = join(dir, "images.txt");
    writeFileSync(list, `# images for the far side\n${refs.multi}\n\n${refs.docker}   # docker schema 2\n${refs.big}\n${refs.pinned}\n`);
    const first = await cli(["--image-path", storeA, "load", "--image-file", list, "--platform", "linux/amd64", "--platform", "linux/arm64", "--concurrency", "4"]);
    expect(first.stderr + first.stdout).toContain("loaded 4 of 4 images");
    for (const b of names.flatMap((n) => allBlobs(images[n]))) expect(blobFiles(storeA)).toContain(b.digest.slice(7));

    const before = [...http.requests(), ...https.requests()].length;
    const second = await cli(["--image-path", storeA, "load", "--image-file", list, "--all-platforms"]);
    expect(second.stderr + second.stdout).toContain("0 B downloaded");
    expect([...http.requests(), ...https.requests()].slice(before).filter((r) => r.startsWith("GET") && r.includes("/blobs/"))).toEqual([]);

    const partly = join(dir, "partly.txt");
    writeFileSync(partly, `${refs.docker}\n${HTTP}/library/missing:v1\n`);
    const failed = await cli(["--image-path", storeA, "load", "--image-file", partly]).catch((e: Error) => e);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toContain(`${HTTP}/library/missing:v1`);
  });

  test("serve --preload-images pulls the list in the background; a malformed list stops the start", async () => {
    const list = join(dir, "preload.txt");
    writeFileSync(list, `${refs.docker}\n${refs.pinned}\n`);
    const store = join(dir, "preloaded");
    const c = await startCache(["--config-file", config, "--image-path", store, "--preload-images", list]);
    try {
      await waitFor("the preload to finish", async () => c.output().includes("loaded 2 of 2 images"), 20_000);
      const listed = JSON.parse((await cli(["--image-path", store, "list", "--json"])).stdout) as Array<{ digest: string }>;
      expect(listed.map((i) => i.digest).sort()).toEqual([images.docker.digest, images.pinned.digest].sort());
    } finally {
      await c.stop();
    }
    writeFileSync(list, "not a::reference\n");
    const bad = await run([BINARY, "--image-path", store, "serve", "--port", "0", "--preload-images", list], { allowFail: true });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("line 1");
  });

  test("list --json shows every image with the upstream's digest", async () => {
    const r = await cli(["--image-path", storeA, "list", "--json"]);
    const listed = JSON.parse(r.stdout) as Array<{ image: string; tag: string; digest: string; size: number }>;
    const byImage = Object.fromEntries(listed.map((i) => [`${i.image}:${i.tag}`, i]));
    expect(byImage[`${HTTP}/library/multi:v1`]!.digest).toBe(images.multi.digest);
    expect(byImage[`${HTTPS}/team/dockerv2:v1`]!.digest).toBe(images.docker.digest);
    expect(byImage[`${HTTP}/library/big:v1`]!.size).toBeGreaterThan(50 * 1024 * 1024);
    expect(byImage[`${HTTPS}/team/pinned:<none>`]!.digest).toBe(images.pinned.digest);
    expect(listed).toHaveLength(4);
    const table = await cli(["--image-path", storeA, "list", "--pattern", "multi"]);
    expect(table.stdout.trim().split("\n")).toHaveLength(2);
    expect(table.stdout).toContain(images.multi.digest.slice(7, 19));
  });

  test("export --format oci is accepted by skopeo and ctr import", async () => {
    const oci = join(dir, "images-oci.tar");
    await cli(["--image-path", storeA, "export", "--out", oci, "--format", "oci"]);
    // skopeo 1.9 looks up OCI-typed manifests only in a layout's index.json, so use the OCI index.
    const r = await skopeoCopy(`${oci}:${refs.multi}`, { transport: "oci-archive", all: true });
    expect(r.digest).toBe(images.multi.digest);
    r.cleanup();
    const imported = await run(["ctr", "--address", ctr.address, "-n", "import", "images", "import", oci]);
    expect(imported.stdout).toContain(refs.multi);
    const ls = await run(["ctr", "--address", ctr.address, "-n", "import", "images", "ls"]);
    expect(ls.stdout).toContain(images.multi.digest);
  });
});

describe("far side", () => {
  let farStore: string;
  let cache: RunningCache;

  test("the export extracts with plain tar into a store that serves every image air-gapped", async () => {
    const archive = join(dir, "store.tar");
    await cli(["--image-path", storeA, "export", "--out", archive]);
    await http.stop();
    await https.stop();
    farStore = join(dir, "far");
    await run(["mkdir", "-p", farStore]);
    await run(["tar", "-C", farStore, "-xf", archive]);
    cache = await startCache(["--image-path", farStore, "--air-gapped"]);
    for (const n of names) {
      const byRef = await skopeoCopy(`127.0.0.1:${cache.port}/${refs[n]}`, { all: n === "multi" });
      expect(byRef.digest).toBe(images[n].digest);
      byRef.cleanup();
      const byDigest = await skopeoCopy(`127.0.0.1:${cache.port}/${repoOf(refs[n])}@${images[n].digest}`, { all: n === "multi" });
      expect(byDigest.digest).toBe(images[n].digest);
      byDigest.cleanup();
    }
    for (const n of ["multi", "docker", "big"] as const) {
      const host = refs[n].split("/")[0]!;
      expect(await ctr.pull(refs[n], host, cache.url)).toBe(images[n].digest);
    }
  });

  test("an uncached image fails fast with a clear error", async () => {
    const started = Date.now();
    const res = await fetch(`${cache.url}/v2/${HTTP}/library/absent/manifests/v1`);
    expect(res.status).toBe(404);
    const e = ((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]!;
    expect(e.code).toBe("MANIFEST_UNKNOWN");
    expect(e.message).toContain("air-gapped");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("a plain tar of the store is a store too", async () => {
    const plain = join(dir, "plain.tar");
    await run(["tar", "-C", storeA, "-cf", plain, "."]);
    const copy = join(dir, "plain");
    await run(["mkdir", "-p", copy]);
    await run(["tar", "-C", copy, "-xf", plain]);
    expect((await cli(["--image-path", copy, "verify"])).stdout).toContain("0 problem(s) found");
    const list = async (store: string) => JSON.parse((await cli(["--image-path", store, "list", "--json"])).stdout);
    expect(await list(copy)).toEqual(await list(storeA));
  });

  test("load --archive merges the export into another store, verifying it", async () => {
    const merged = join(dir, "merged");
    await cli(["--image-path", merged, "load", "--archive", join(dir, "store.tar")]);
    const v = await cli(["--image-path", merged, "verify"]);
    expect(v.stdout).toContain("checked 8 blobs, 6 manifests, 4 tags");
    const tampered = join(dir, "tampered.tar");
    const copy = join(dir, "tamper");
    await run(["mkdir", "-p", copy]);
    await run(["tar", "-C", copy, "-xf", join(dir, "store.tar")]);
    writeFileSync(join(copy, "blobs/sha256", allBlobs(images.docker)[1]!.digest.slice(7)), "tampered");
    await run(["tar", "-C", copy, "-cf", tampered, "."]);
    const bad = await cli(["--image-path", join(dir, "merged2"), "load", "--archive", tampered]).catch((e: Error) => e);
    expect((bad as Error).message).toContain("does not match its digest");
  });

  test("prune --older-than removes exactly the untouched images and their unshared blobs", async () => {
    // The cut-off below is 2 s: let the images loaded earlier become that old (time is what is tested).
    await Bun.sleep(2500);
    // Touch two images; shutdown writes their last-pulled times.
    for (const n of ["big", "pinned"] as const) {
      expect((await skopeoCopy(`127.0.0.1:${cache.port}/${refs[n]}`)).digest).toBe(images[n].digest);
    }
    await cache.stop();
    const dry = await cli(["--image-path", farStore, "prune", "--older-than", "2s", "--dry-run"]);
    expect(dry.stdout).toContain("would remove 2 image(s)");
    expect(blobFiles(farStore)).toHaveLength(8);
    const r = await cli(["--image-path", farStore, "prune", "--older-than", "2s"]);
    expect(r.stdout).toContain(`removed ${refs.multi}`);
    expect(r.stdout).toContain(`removed ${refs.docker}`);
    expect(r.stdout).not.toContain("big");
    const left = blobFiles(farStore);
    for (const b of allBlobs(images.multi)) expect(left).not.toContain(b.digest.slice(7));
    // dockerv2's blobs are shared with the kept pinned image.
    for (const b of [...allBlobs(images.big), ...allBlobs(images.pinned)]) expect(left).toContain(b.digest.slice(7));
    expect(existsSync(join(farStore, "manifests/sha256", images.docker.digest.slice(7)))).toBe(false);
    const again = await startCache(["--image-path", farStore, "--air-gapped"]);
    try {
      for (const n of ["big", "pinned"] as const) {
        expect((await skopeoCopy(`127.0.0.1:${again.port}/${refs[n]}`)).digest).toBe(images[n].digest);
      }
      expect((await fetch(`${again.url}/v2/${repoOf(refs.multi)}/manifests/v1`)).status).toBe(404);
    } finally {
      await again.stop();
    }
  });
});
