// The store under pressure (issue 9, D21): prune and load running beside serve, single flight,
// hostile records and manifests, images pulled by digest, unreferenced and missing blobs, lying
// archives, a full disk. Hostile upstream on 127.0.0.35, distribution on 127.0.0.36.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../helpers/binary.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { paced, startHostile, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { allBlobs, makeImage, pushImage, type Image } from "../helpers/images.ts";
import { run, waitFor } from "../helpers/procs.ts";
import { cacheFactory, get } from "../helpers/security.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_MANIFEST } from "../../src/oci/mediatypes.ts";

const HOSTILE = "127.0.0.35";
const REAL = "127.0.0.36";
const DAY = 24 * 3600 * 1000;
let dir: string;
let hostile: HostileUpstream;
let real: Distribution;
let caches: ReturnType<typeof cacheFactory>;
let tmpfs: string | undefined;
const base = `registries:\n  - { name: ${HOSTILE}, scheme: http }\n  - { name: ${REAL}, scheme: http }\n`;
const loaded = makeImage();
const byDigest = makeImage();

const cli = (args: string[]) => run([BINARY, ...args], { allowFail: true });
const hex = (digest: string) => digest.slice("sha256:".length);
const out = (r: { stdout: string; stderr: string }) => r.stdout + r.stderr;
const tarList = async (file: string) => (await run(["tar", "-tf", file])).stdout.split("\n");
const recordPath = (repo: string, tag: string) => `repositories/${REAL}/${repo}/_tags/${tag}.json`;

/** Writes an image into `store` laid out as the cache does, with a tag record pulled `ageMs` ago. */
function putImage(store: string, repo: string, tag: string, img: Image, ageMs = 0) {
  for (const b of allBlobs(img)) {
    mkdirSync(join(store, "blobs/sha256"), { recursive: true });
    writeFileSync(join(store, "blobs/sha256", hex(b.digest)), b.bytes);
  }
  putManifest(store, img.manifest);
  putRecord(store, repo, tag, { digest: img.digest, mediaType: img.mediaType, size: img.manifest.byteLength }, ageMs);
}

function putManifest(store: string, bytes: Uint8Array) {
  mkdirSync(join(store, "manifests/sha256"), { recursive: true });
  writeFileSync(join(store, "manifests/sha256", hex(digestOf(bytes))), bytes);
}

function putRecord(store: string, repo: string, tag: string, fields: { digest: string; mediaType: string; size: number }, ageMs = 0) {
  const when = new Date(Date.now() - ageMs).toISOString();
  const file = join(store, recordPath(repo, tag));
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, JSON.stringify({ upstream: REAL, repository: repo, tag, ...fields, created: when, lastPulled: when, checked: when }, null, 2));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-store-"));
  caches = cacheFactory(dir);
  hostile = await startHostile({ host: HOSTILE });
  real = await startDistribution({ addr: `${REAL}:80` });
  await pushImage({ base: real.base }, "library/loaded", "v1", loaded);
  await pushImage({ base: real.base }, "library/bydigest", "v1", byDigest);
}, 120_000);

afterAll(async () => {
  await caches?.stopAll();
  await hostile?.stop();
  await real?.stop();
  if (tmpfs) await run(["umount", tmpfs], { allowFail: true });
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("serve beside other processes", () => {
  test("prune and load run to completion while serve streams a slow cold blob: it completes, is stored, verify passes", async () => {
    const slow = makeImage({ content: 300_000, uncompressed: true });
    hostile.add("honest-slow/app", "v1", slow);
    const layer = slow.blobs[1]!;
    const { cache, store, config } = await caches.start(base);
    // Manifest and config first: the image has its record, only the layer is cold.
    expect((await get(`${cache.url}/v2/${HOSTILE}/honest-slow/app/manifests/v1`)).status).toBe(200);
    expect((await get(`${cache.url}/v2/${HOSTILE}/honest-slow/app/blobs/${slow.blobs[0]!.digest}`)).status).toBe(200);
    const path = `/v2/honest-slow/app/blobs/${layer.digest}`;
    const download = get(`${cache.url}/v2/${HOSTILE}${path.slice(3)}`, {}, 20_000);
    await waitFor("the slow download to start", async () => (hostile.sent.get(path) ?? 0) > 0);
    const list = join(dir, "load.txt");
    writeFileSync(list, `${REAL}/library/loaded:v1\n`);
    const prune = await cli(["prune", "--config-file", config, "--image-path", store, "--older-than", "1d"]);
    expect(prune.code).toBe(0);
    const load = await cli(["load", "--config-file", config, "--image-path", store, "--image-file", list]);
    expect(load.code).toBe(0);
    expect(hostile.sent.get(path)).toBeLessThan(layer.bytes.byteLength);
    const got = await download;
    expect(got.status).toBe(200);
    expect(got.body && digestOf(got.body)).toBe(layer.digest);
    // The client has every byte once the digest matched; the commit (fsync, rename) follows at once.
    await waitFor("the blob to be committed", async () => existsSync(join(store, "blobs/sha256", hex(layer.digest))));
    const verify = await cli(["verify", "--image-path", store]);
    expect(out(verify)).toContain("0 problem(s) found");
    expect(verify.code).toBe(0);
  }, 60_000);

  test("40 clients on one cold blob, ten rounds: one upstream GET per round, all get the right bytes", async () => {
    hostile.behave("flight", paced({ chunk: 16 * 1024, everyMs: 20, headersAfterMs: 40 }));
    const { cache } = await caches.start(base);
    for (let round = 0; round < 10; round++) {
      const img = makeImage({ content: 100_000, uncompressed: true });
      hostile.add(`flight/r${round}`, "v1", img);
      const layer = img.blobs[1]!.digest;
      // Arrivals spread over 80 ms: some come while the upstream's headers are awaited, some just after.
      const got = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        Bun.sleep(i * 2).then(() => get(`${cache.url}/v2/${HOSTILE}/flight/r${round}/blobs/${layer}`))));
      expect(got.map((g) => (g.status === 200 && g.body ? digestOf(g.body) : `${g.status} ${g.error}`))).toEqual(got.map(() => layer));
      expect(hostile.requests.filter((r) => r.method === "GET" && r.path === `/v2/flight/r${round}/blobs/${layer}`)).toHaveLength(1);
    }
  }, 60_000);
});

describe("hostile entries in the store", () => {
  let store: string;
  const good = makeImage();
  const old = makeImage();
  const shell = makeImage();
  const evil = JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: shell.blobs[0]!.mediaType, digest: shell.blobs[0]!.digest, size: shell.blobs[0]!.bytes.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: "../../etc/passwd", size: 10 }],
  });
  const canaries = () => [join(store, "etc/passwd"), join(store, "../etc/passwd")];
  let evilDigest = "";
  /** Names the malformed record (its path or digest) and the manifest with the bad layer (image, digest or layer). */
  const mentionsBoth = (text: string) => expect([
    /bad-record|sha256:zzz/.test(text),
    text.includes("bad-layer") || text.includes(hex(evilDigest)) || text.includes("../../etc/passwd"),
  ]).toEqual([true, true]);
  beforeAll(() => {
    store = mkdtempSync(join(dir, "hostile-store-"));
    putImage(store, "good/one", "v1", good);
    putImage(store, "good/two", "v1", old, 3 * DAY);
    putRecord(store, "bad-record", "v1", { digest: "sha256:zzz", mediaType: OCI_MANIFEST, size: 10 }, 3 * DAY);
    const bytes = new TextEncoder().encode(evil);
    evilDigest = digestOf(bytes);
    putManifest(store, bytes);
    putRecord(store, "bad-layer", "v1", { digest: digestOf(bytes), mediaType: OCI_MANIFEST, size: bytes.byteLength }, 3 * DAY);
    for (const c of canaries()) {
      mkdirSync(join(c, ".."), { recursive: true });
      writeFileSync(c, "canary");
    }
  });

  test("list shows the good images and mentions the bad entries", async () => {
    const r = await cli(["list", "--image-path", store]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${REAL}/good/one`);
    expect(r.stdout).toContain(`${REAL}/good/two`);
    mentionsBoth(out(r));
  });

  test("export writes the good images and mentions the bad entries", async () => {
    const file = join(dir, "hostile-export.tar");
    const r = await cli(["export", "--image-path", store, "--out", file]);
    expect(r.code).toBe(0);
    const names = await tarList(file);
    for (const name of [recordPath("good/one", "v1"), recordPath("good/two", "v1"), `blobs/sha256/${hex(good.blobs[1]!.digest)}`]) expect(names).toContain(name);
    mentionsBoth(out(r));
  });

  test("verify reports both bad entries and exits non-zero", async () => {
    const r = await cli(["verify", "--image-path", store]);
    expect(r.code).not.toBe(0);
    mentionsBoth(out(r));
  });

  test("prune removes the old good image, keeps the fresh one, mentions the bad entries, touches nothing outside", async () => {
    const r = await cli(["prune", "--image-path", store, "--older-than", "1d"]);
    expect(r.code).toBe(0);
    mentionsBoth(out(r));
    expect(existsSync(join(store, recordPath("good/two", "v1")))).toBe(false);
    expect(existsSync(join(store, recordPath("good/one", "v1")))).toBe(true);
    for (const b of allBlobs(good)) expect(existsSync(join(store, "blobs/sha256", hex(b.digest)))).toBe(true);
    for (const c of canaries()) expect(existsSync(c)).toBe(true);
  });
});

describe("what the store knows", () => {
  test("an image pulled only by digest through serve is listed as <none> and pruned later with its blobs", async () => {
    const { cache, store } = await caches.start(base);
    const at = `${cache.url}/v2/${REAL}/library/bydigest`;
    expect((await get(`${at}/manifests/${byDigest.digest}`)).status).toBe(200);
    for (const b of byDigest.blobs) expect((await get(`${at}/blobs/${b.digest}`)).status).toBe(200);
    const pulled = Date.now();
    await cache.stop("SIGTERM");
    const listed = JSON.parse((await cli(["list", "--json", "--image-path", store])).stdout || "[]") as Array<{ image: string; tag: string; digest: string }>;
    expect(listed).toContainEqual(expect.objectContaining({ image: `${REAL}/library/bydigest`, tag: "<none>", digest: byDigest.digest }));
    await Bun.sleep(Math.max(0, pulled + 2000 - Date.now())); // --older-than 1s needs a pull over a second old
    expect((await cli(["prune", "--image-path", store, "--older-than", "1s"])).code).toBe(0);
    expect(existsSync(join(store, "manifests/sha256", hex(byDigest.digest)))).toBe(false);
    for (const b of byDigest.blobs) expect(existsSync(join(store, "blobs/sha256", hex(b.digest)))).toBe(false);
  });

  test("an unreferenced blob two days old is reported by verify and removed by prune; a fresh one is kept", async () => {
    const store = mkdtempSync(join(dir, "unreferenced-"));
    putImage(store, "good/kept", "v1", makeImage());
    const [stale, fresh] = [randomBytes(1000), randomBytes(1000)].map((b) => new Uint8Array(b));
    for (const b of [stale!, fresh!]) writeFileSync(join(store, "blobs/sha256", hex(digestOf(b))), b);
    const twoDaysAgo = new Date(Date.now() - 2 * DAY);
    utimesSync(join(store, "blobs/sha256", hex(digestOf(stale!))), twoDaysAgo, twoDaysAgo);
    const verify = await cli(["verify", "--image-path", store]);
    const unreferenced = "(unreferenced|not referenced|orphan)";
    expect(out(verify)).toMatch(new RegExp(`${unreferenced}.*${hex(digestOf(stale!))}|${hex(digestOf(stale!))}.*${unreferenced}`, "i"));
    expect((await cli(["prune", "--image-path", store, "--older-than", "30d"])).code).toBe(0);
    expect(existsSync(join(store, "blobs/sha256", hex(digestOf(stale!))))).toBe(false);
    expect(existsSync(join(store, "blobs/sha256", hex(digestOf(fresh!))))).toBe(true);
    expect(existsSync(join(store, recordPath("good/kept", "v1")))).toBe(true);
  });

  test("a cached tag whose layer is gone: verify reports it incomplete (exit 0: not damage), export skips it with a warning", async () => {
    const store = mkdtempSync(join(dir, "incomplete-"));
    const [whole, broken] = [makeImage(), makeImage()];
    putImage(store, "good/whole", "v1", whole);
    putImage(store, "incomplete", "v1", broken);
    unlinkSync(join(store, "blobs/sha256", hex(broken.blobs[1]!.digest)));
    const verify = await cli(["verify", "--image-path", store]);
    // Incomplete is reported, not counted as damage: an interrupted pull leaves the same state
    // and the next pull completes it (docs/cache-behaviour.md, "Integrity").
    expect(verify.code).toBe(0);
    expect(out(verify)).toMatch(new RegExp(`incomplete image: ${REAL}/incomplete:v1: missing blob ${broken.blobs[1]!.digest}`));
    expect(out(verify)).toContain("1 incomplete image(s)");
    const file = join(dir, "incomplete.tar");
    const exported = await cli(["export", "--image-path", store, "--out", file]);
    expect(exported.code).toBe(0);
    expect(out(exported)).toContain(`${REAL}/incomplete`);
    const names = await tarList(file);
    expect(names).toContain(recordPath("good/whole", "v1"));
    expect(names).not.toContain(recordPath("incomplete", "v1"));
  });
});

describe("load --archive", () => {
  test("a pinned record whose digest is another manifest is refused, naming the record", async () => {
    const src = mkdtempSync(join(dir, "pinned-src-"));
    const [a, b] = [makeImage(), makeImage()];
    for (const img of [a, b]) {
      for (const blob of allBlobs(img)) {
        mkdirSync(join(src, "blobs/sha256"), { recursive: true });
        writeFileSync(join(src, "blobs/sha256", hex(blob.digest)), blob.bytes);
      }
      putManifest(src, img.manifest);
    }
    putRecord(src, "pinned", a.digest, { digest: b.digest, mediaType: b.mediaType, size: b.manifest.byteLength });
    const file = join(dir, "pinned.tar");
    await run(["tar", "-C", src, "-cf", file, "blobs", "manifests", "repositories"]);
    const store = join(dir, "pinned-store");
    const r = await cli(["load", "--image-path", store, "--archive", file]);
    expect(r.code).not.toBe(0);
    expect(out(r)).toContain(`${REAL}/pinned`);
    expect(out(r)).toContain(hex(a.digest));
    expect(existsSync(join(store, recordPath("pinned", a.digest)))).toBe(false);
  });

  test("a full disk fails the load with a clear error and leaves nothing in tmp/", async () => {
    tmpfs = mkdtempSync(join(dir, "tmpfs-"));
    await run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", tmpfs]);
    const src = mkdtempSync(join(dir, "big-src-"));
    const big = new Uint8Array(randomBytes(30 * 1024 * 1024));
    mkdirSync(join(src, "blobs/sha256"), { recursive: true });
    writeFileSync(join(src, "blobs/sha256", hex(digestOf(big))), big);
    const file = join(dir, "big.tar");
    await run(["tar", "-C", src, "-cf", file, "blobs"]);
    const r = await cli(["load", "--image-path", tmpfs, "--archive", file]);
    expect(r.code).not.toBe(0);
    expect(out(r)).toMatch(/no space|ENOSPC|disk (is )?full|out of space/i);
    const left = existsSync(join(tmpfs, "tmp")) ? readdirSync(join(tmpfs, "tmp"), { recursive: true, withFileTypes: true }) : [];
    expect(left.filter((e) => e.isFile()).map((e) => e.name)).toEqual([]);
  });
});
