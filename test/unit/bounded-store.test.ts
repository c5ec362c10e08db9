// A store with bounds, in-process: eviction least recently pulled first, pins, pass-through when
// nothing can go, the filesystem running short, exact accounting. The compiled binary with real
// clients on a tmpfs is test/e2e/bounded-store.test.ts.
import { describe, expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { size } from "../../src/config/values.ts";
import { imagePattern, imagePatternProblem } from "../../src/oci/pattern.ts";
import { walkStore } from "../../src/store/usage.ts";
import { createTestRegistry } from "../helpers/registry.ts";
import { makeImage, type Image } from "../helpers/images.ts";

const KB = 1024;
const images = Array.from({ length: 8 }, () => makeImage({ content: 100 * KB, uncompressed: true }));
const imageBytes = (img: Image) => img.manifest.byteLength + img.blobs.reduce((n, b) => n + b.bytes.byteLength, 0);

/** Bytes of blobs/ and manifests/ on disk. */
function onDisk(root: string): number {
  let n = 0;
  for (const kind of ["blobs", "manifests"]) {
    const dir = join(root, kind, "sha256");
    for (const f of readdirSync(dir)) n += statSync(join(dir, f)).size;
  }
  return n;
}

async function setup(opts: Parameters<typeof createTestRegistry>[0] = {}) {
  const r = await createTestRegistry(opts);
  images.forEach((img, i) => r.upstream.add(`app${i}`, "v1", img));
  /** Pulls image i whole (manifest by tag, then every blob), as a client does; checks the bytes. */
  const pull = async (i: number) => {
    const m = await r.request(`/v2/app${i}/manifests/v1`);
    expect(m.status).toBe(200);
    expect(new Uint8Array(await m.arrayBuffer())).toEqual(images[i]!.manifest);
    for (const b of images[i]!.blobs) {
      const res = await r.request(`/v2/app${i}/blobs/${b.digest}`);
      expect(res.status).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(b.bytes);
    }
    // A client has every byte once they are verified; the commit into the store follows.
    await Promise.all((await r.cache.blobs.active()).map((d) => d.settled()));
    r.clock.advance(1000);
  };
  const stored = async () => (await Array.fromAsync(r.cache.store.allTags())).map((t) => t.repository).sort();
  return { r, pull, stored };
}

describe("eviction by maxSize", () => {
  test("keeps the store under maxSize, evicting the least recently pulled images and only their content", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 3.5);
    const { r, pull, stored } = await setup({ bounds: { maxSize: { bytes: max } } });
    for (let i = 0; i < 8; i++) {
      await pull(i);
      await r.cache.flush();
      expect(onDisk(r.root)).toBeLessThanOrEqual(max);
      expect(r.cache.usage.figures.bytes).toBe(onDisk(r.root));
    }
    // The last images pulled are the ones kept.
    const kept = await stored();
    expect(kept).toContain("app7");
    expect(kept).toContain("app6");
    expect(kept).not.toContain("app0");
    expect(r.infos.some((m) => /^evicted \d+ image\(s\), \d+ bytes in \d+ ms \(reason: maxSize; store \d+ of \d+ bytes\)$/.test(m))).toBe(true);
    // Pulling an evicted image again fetches it again, and the bytes are right.
    await pull(0);
    expect(await stored()).toContain("app0");
  });

  test("images pulled at once near the bound are all stored whole: each commit gets its own run after a joined one", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 3.5);
    const { r, pull, stored } = await setup({ bounds: { maxSize: { bytes: max } } });
    for (let i = 0; i < 3; i++) await pull(i);
    await Promise.all([pull(3), pull(4), pull(5)]);
    await r.cache.flush();
    expect(await stored()).toEqual(["app3", "app4", "app5"]);
    for (const i of [3, 4, 5]) for (const b of images[i]!.blobs) expect(await r.cache.store.statBlob(b.digest)).not.toBeNull();
    expect(onDisk(r.root)).toBeLessThanOrEqual(max);
    expect(r.warnings.filter((w) => w.startsWith("store full"))).toEqual([]);
  });

  test("a recent pull of an old image keeps it (least recently pulled, not least recently cached)", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 3.5);
    const { r, pull, stored } = await setup({ bounds: { maxSize: { bytes: max } } });
    await pull(0);
    await pull(1);
    await pull(2);
    await pull(0); // warm: only its last-pulled time moves
    await pull(3);
    await pull(4);
    const kept = await stored();
    expect(kept).toContain("app0");
    expect(kept).not.toContain("app1");
  });

  test("pinned images (by pattern, and by record through setPinned) survive every round", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 3.5);
    const { r, pull, stored } = await setup({ bounds: { maxSize: { bytes: max } }, pinned: [imagePattern("up.test/app0:*")] });
    await pull(0);
    await pull(1);
    expect(await r.cache.setPinned({ upstream: "up.test", repository: "app1" }, "v1", true)).toBe(true);
    for (let i = 2; i < 8; i++) await pull(i);
    const kept = await stored();
    expect(kept).toContain("app0");
    expect(kept).toContain("app1");
    expect(onDisk(r.root)).toBeLessThanOrEqual(max);
    expect(await r.cache.setPinned({ upstream: "up.test", repository: "nope" }, "v1", true)).toBe(false);
  });
});

describe("pins and prune", () => {
  test("prune by age keeps pinned images (record or pattern) unless it is asked for them by name", async () => {
    const { r, pull, stored } = await setup({ pinned: [imagePattern("up.test/app0")] });
    for (let i = 0; i < 3; i++) await pull(i);
    await r.cache.setPinned({ upstream: "up.test", repository: "app1" }, "v1", true);
    r.clock.advance(100 * 86_400_000);
    const rep = await r.cache.prune({ olderThanMs: 86_400_000, by: "lastPulled", dryRun: false, now: r.clock.now() });
    expect(rep.images).toEqual(["up.test/app2:v1"]);
    expect(await stored()).toEqual(["app0", "app1"]);
    const named = await r.cache.prune({ olderThanMs: -1, by: "lastPulled", select: (t) => t.repository === "app1", dryRun: false, now: r.clock.now() });
    expect(named.images).toEqual(["up.test/app1:v1"]);
  });

  test("pinning a stored manifest by digest that a tag covers gives it a pinned record of its own", async () => {
    const { r, pull } = await setup();
    await pull(0);
    expect(await r.cache.setPinned({ upstream: "up.test", repository: "app0" }, images[0]!.digest, true)).toBe(true);
    const rec = await r.cache.store.readTag("up.test", "app0", images[0]!.digest);
    expect(rec).toMatchObject({ digest: images[0]!.digest, pinned: true });
    expect(await r.cache.setPinned({ upstream: "up.test", repository: "app0" }, `sha256:${"0".repeat(64)}`, true)).toBe(false);
  });
});

describe("when nothing can be evicted", () => {
  test("cold pulls are passed through: right bytes, nothing stored, one warning, full reported", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 2.5);
    const { r, pull, stored } = await setup({ bounds: { maxSize: { bytes: max } } });
    const pin = (i: number) => r.cache.setPinned({ upstream: "up.test", repository: `app${i}` }, "v1", true);
    await pull(0);
    await pin(0);
    await pull(1);
    await pin(1);
    // The third image does not fit whole and nothing can go: it is passed through whole, and the next ones.
    const before = onDisk(r.root);
    await pull(2);
    await pull(3);
    await pull(4);
    expect(onDisk(r.root)).toBe(before);
    expect(await stored()).toEqual(["app0", "app1"]);
    expect((await r.cache.quota.status()).full).toBe(true);
    expect(r.warnings.filter((w) => w.startsWith("store full: serving")).length).toBe(1);
    // Nothing half-written: no temp file left.
    expect(readdirSync(join(r.root, "tmp")).flatMap((d) => readdirSync(join(r.root, "tmp", d)))).toEqual([]);
    // Unpinned, app0 can go: the next pull of app2 stores it whole (its blobs no longer pass through).
    await r.cache.setPinned({ upstream: "up.test", repository: "app0" }, "v1", false);
    await pull(2);
    expect(await stored()).toEqual(["app1", "app2"]);
    for (const b of images[2]!.blobs) expect(await r.cache.store.statBlob(b.digest)).not.toBeNull();
    expect((await r.cache.quota.status()).full).toBe(false);
  });

  test("a filesystem short of space passes pulls through; storing resumes when space returns", async () => {
    const { r, pull, stored } = await setup({ bounds: { minFreeSpace: { bytes: 1024 * KB } } });
    let free = 512 * KB;
    r.store.space = async () => ({ total: 100 * 1024 * KB, free });
    await pull(0);
    expect(await stored()).toEqual([]);
    expect(onDisk(r.root)).toBe(0);
    expect((await r.cache.quota.status()).full).toBe(true);
    free = 50 * 1024 * KB;
    r.clock.advance(5000);
    await pull(1);
    expect(await stored()).toEqual(["app1"]);
    expect((await r.cache.quota.status()).full).toBe(false);
  });

  test("without bounds, a full filesystem passes blobs through rather than failing them, and storing resumes", async () => {
    const { r, pull } = await setup();
    let free = 0;
    r.store.space = async () => ({ total: 100 * 1024 * KB, free });
    await pull(0);
    const layer = images[0]!.blobs[1]!.digest;
    expect(await r.cache.store.statBlob(layer)).toBeNull();
    free = 50 * 1024 * KB;
    r.clock.advance(5000);
    await pull(0);
    expect(await r.cache.store.statBlob(layer)).not.toBeNull();
    expect((await r.cache.quota.status()).full).toBe(false);
  });

  test("load (pullImage) into a full store fails naming the cause", async () => {
    const { r } = await setup({ bounds: { maxSize: { bytes: 10 } } });
    const err = await r.cache.pullImage({ upstream: "up.test", repository: "app0" }, "v1", "all").catch((e) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("the store is full");
  });
});

describe("accounting", () => {
  test("the figures match a walk after pulls, eviction and prune; the snapshot gives them at start", async () => {
    const max = Math.floor(imageBytes(images[0]!) * 3.5);
    const { r, pull } = await setup({ bounds: { maxSize: { bytes: max } } });
    for (let i = 0; i < 6; i++) await pull(i);
    await r.cache.prune({ olderThanMs: -1, by: "lastPulled", select: (t) => t.repository === "app5", dryRun: false });
    const walked = await walkStore(r.store);
    expect(r.cache.usage.figures).toEqual(walked);
    await r.cache.usage.save();
    const again = await createTestRegistry({ root: r.root });
    expect(again.cache.usage.figures.bytes).toBe(0);
    await again.cache.usage.load();
    expect(again.cache.usage.figures).toEqual(walked);
    expect(again.cache.usage.exact).toBe(false);
    expect((await again.cache.usage.reconcile())?.after).toEqual(walked);
    expect(again.cache.usage.exact).toBe(true);
    // Its own snapshot is no news to it; another process's is (a load or prune beside a serve).
    expect(await again.cache.usage.changedElsewhere()).toBe(false);
    await r.store.writeState("usage.json", new TextEncoder().encode(JSON.stringify({ ...walked, owner: "other-1-2", saved: new Date().toISOString() })));
    expect(await again.cache.usage.changedElsewhere()).toBe(true);
    expect(await again.cache.usage.changedElsewhere()).toBe(false);
  });
});

describe("config values", () => {
  const parse = (x: unknown) => v.safeParse(size(), x);
  test("sizes with units, bytes and percentages", () => {
    expect(parse("500MiB").output).toEqual({ bytes: 500 * 1024 * 1024 });
    expect(parse("20GiB").output).toEqual({ bytes: 20 * 1024 ** 3 });
    expect(parse("1TiB").output).toEqual({ bytes: 1024 ** 4 });
    expect(parse("1.5GB").output).toEqual({ bytes: 1.5e9 });
    expect(parse(4096).output).toEqual({ bytes: 4096 });
    expect(parse("80%").output).toEqual({ percent: 80 });
    for (const bad of ["lots", "10XB", "0%", "150%", "-1", ""]) expect(parse(bad).success).toBe(false);
  });

  test("image patterns", () => {
    const m = (p: string, name: string) => imagePattern(p).test(name);
    expect(m("registry.k8s.io/pause:*", "registry.k8s.io/pause:3.9")).toBe(true);
    expect(m("registry.k8s.io/pause:*", `registry.k8s.io/pause@sha256:${"a".repeat(64)}`)).toBe(true);
    expect(m("registry.k8s.io/pause:*", "registry.k8s.io/pause2:3.9")).toBe(false);
    expect(m("docker.io/library/*:*", "docker.io/library/nginx:1.27")).toBe(true);
    expect(m("docker.io/library/*:*", "docker.io/library/a/b:1")).toBe(false);
    expect(m("docker.io/**", "docker.io/library/a/b:1")).toBe(true);
    expect(m("docker.io/library/nginx", "docker.io/library/nginx:latest")).toBe(true);
    expect(m("docker.io/library/nginx", "docker.io/library/nginxx:latest")).toBe(false);
    expect(m("quay.io/a.b:1", "quay.io/aXb:1")).toBe(false);
    expect(imagePatternProblem("nginx")).toContain("upstream and repository");
    expect(imagePatternProblem("docker.io/x y:1")).toContain("no spaces");
    expect(imagePatternProblem("up.test/***:v1")).toContain("two * in a row");
    expect(m("up.test/**a**a**a**:v1", `up.test/${"a".repeat(200)}:v1`)).toBe(true);
    expect(m("up.test/**a**a**a**b:v1", `up.test/${"a".repeat(200)}:v1`)).toBe(false);
    expect(m("up.test/a?c:1", "up.test/abc:1")).toBe(true);
    expect(m("up.test/a?c:1", "up.test/a/c:1")).toBe(false);
  });
});
