// Image summaries in tag records: written by a pull, bound to their digest, dropped when malformed,
// absent in older records (readers then read the manifest); and list, prune --dry-run and verify's
// record pass read no manifest for records that carry one (counted through a store wrapper).
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summarizeImage } from "../../src/cache/closure.ts";
import { evictImages } from "../../src/cache/evict.ts";
import { listImages } from "../../src/cache/list.ts";
import { pruneStore } from "../../src/cache/prune.ts";
import { verifyStore } from "../../src/cache/verify.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { parseTagRecord, serializeTagRecord } from "../../src/store/record.ts";
import type { Store, TagRecord } from "../../src/store/types.ts";
import { makeStore } from "../../scripts/bench/make-store.ts";
import { makeImage, makeIndex } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const UP = "127.0.4.9";
const N = 120;

/** A store whose manifest reads are counted. */
function counting(inner: Store) {
  const counts = { manifests: 0 };
  const store: Store = Object.assign(Object.create(inner) as Store, {
    readManifest(digest: string) {
      counts.manifests++;
      return inner.readManifest(digest);
    },
  });
  return { store, counts };
}

function made(summaries: boolean) {
  const dir = join(mkdtempSync(join(tmpdir(), "ocireg-summary-")), "store");
  makeStore(N, dir, UP, "distinct", { summaries });
  return createFsStore(dir);
}

const PRUNE = { olderThanMs: 30 * 86_400_000, by: "lastPulled" as const, dryRun: true };

describe("the record's image summary", () => {
  test("a pull writes it for an image manifest, bound to its digest; an index gets none", async () => {
    const r = await createTestRegistry();
    const img = makeImage({ content: "summary" });
    const index = makeIndex(["amd64", "arm64"]);
    r.upstream.add("app", "v1", img);
    r.upstream.add("multi", "v1", index);
    await r.cache.pullImage({ upstream: "up.test", repository: "app" }, "v1", "all");
    await r.cache.pullImage({ upstream: "up.test", repository: "multi" }, "v1", "all");
    const rec = (await r.store.readTag("up.test", "app", "v1"))!;
    const size = img.manifest.byteLength + img.blobs.reduce((a, b) => a + b.bytes.byteLength, 0);
    expect(rec.image).toEqual({ manifest: img.digest, size, blobs: img.blobs.map((b) => b.digest), sizes: img.blobs.map((b) => b.bytes.byteLength) });
    expect((await r.store.readTag("up.test", "multi", "v1"))!.image).toBeUndefined();
    // The listed size is the one the store holds (the summary for the image, a walk for the index).
    const listed = await listImages(r.store);
    expect(listed.find((i) => i.image === "up.test/app")!.size).toBe(size);
    const child = index.children[0]!;
    expect(listed.find((i) => i.image === "up.test/multi")!.size).toBeGreaterThan(index.manifest.byteLength + child.manifest.byteLength);
  });

  test("an older record without one loads; a malformed one or one of another digest is dropped, not the record", () => {
    const img = makeImage();
    const t = new Date().toISOString();
    const old: TagRecord = { upstream: "up.test", repository: "app", tag: "v1", digest: img.digest, mediaType: img.mediaType, size: img.manifest.byteLength, created: t, lastPulled: t, checked: t };
    expect(parseTagRecord(serializeTagRecord(old))).toEqual(old);
    const image = summarizeImage(img.digest, img.manifest)!;
    expect(parseTagRecord(serializeTagRecord({ ...old, image }))!.image).toEqual(image);
    for (const bad of [{ ...image, size: -1 }, { ...image, blobs: ["../../etc/passwd"] }, { ...image, sizes: [] }, { ...image, manifest: `sha256:${"a".repeat(64)}` }, "big"]) {
      expect(parseTagRecord(serializeTagRecord({ ...old, image: bad as never }))).toEqual(old);
    }
  });

  test("an index, a reference that is not a digest, or an undeclared size gets no summary", () => {
    const index = makeIndex(["amd64"]);
    expect(summarizeImage(index.digest, index.manifest)).toBeUndefined();
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const cfg = { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"b".repeat(64)}`, size: 2 };
    expect(summarizeImage("sha256:x", enc({ schemaVersion: 2, config: cfg, layers: [{ digest: "../x", size: 1 }] }))).toBeUndefined();
    expect(summarizeImage("sha256:x", enc({ schemaVersion: 2, config: { ...cfg, size: "2" }, layers: [] }))).toBeUndefined();
  });
});

describe("records that carry a summary", () => {
  test("list, prune --dry-run and verify's record pass read no manifest again", async () => {
    const { store, counts } = counting(made(true));
    expect((await listImages(store)).length).toBe(N);
    expect(counts.manifests).toBe(0);
    const pruned = await pruneStore(store, PRUNE);
    expect(pruned.images.length).toBeGreaterThan(N / 3);
    expect(counts.manifests).toBe(0);
    const v = await verifyStore(store, { repair: false });
    expect(v).toMatchObject({ tags: N, manifests: N, dangling: [], incomplete: [], unsummarized: 0, unreferenced: [] });
    // Once each, to hash it: the record pass and the walk for unreferenced content read none again.
    expect(counts.manifests).toBe(N);
  });

  test("an eviction run reads no manifest either, and frees what the walk would", async () => {
    const { store, counts } = counting(made(true));
    const plan = { needBytes: 100_000, pinned: () => false as const, busy: () => new Set<string>(), now: Date.now(), orphanGraceMs: 3_600_000 };
    const evicted = await evictImages(store, plan);
    expect(counts.manifests).toBe(0);
    const walked = await evictImages(made(false), plan);
    expect({ ...evicted, ms: 0 }).toEqual({ ...walked, ms: 0 });
    expect(evicted.bytes).toBeGreaterThanOrEqual(100_000);
  });

  test("records without one give the same list and prune; verify --repair writes them, and then no manifest is read", async () => {
    const summarized = made(true);
    const { store, counts } = counting(made(false));
    const rows = (l: Awaited<ReturnType<typeof listImages>>) => l.map((i) => [i.image, i.tag, i.size]);
    expect(rows(await listImages(store))).toEqual(rows(await listImages(summarized)));
    expect(counts.manifests).toBeGreaterThanOrEqual(N);
    const { images, manifests, blobs, bytes } = await pruneStore(store, PRUNE);
    expect({ images, manifests, blobs, bytes }).toMatchObject(await pruneStore(summarized, PRUNE).then((p) => ({ images: p.images, manifests: p.manifests, blobs: p.blobs, bytes: p.bytes })));

    expect((await verifyStore(store, { repair: false })).unsummarized).toBe(N);
    expect((await verifyStore(store, { repair: true })).unsummarized).toBe(N);
    expect((await verifyStore(store, { repair: false })).unsummarized).toBe(0);
    counts.manifests = 0;
    expect(rows(await listImages(store))).toEqual(rows(await listImages(summarized)));
    await pruneStore(store, PRUNE);
    expect(counts.manifests).toBe(0);
  });

  test("verify --repair rewrites a summary that is wrong for its manifest", async () => {
    const store = made(true);
    const rec = (await store.readTag(UP, "bench/r00000", "t00001"))!;
    await store.writeTag({ ...rec, image: { ...rec.image!, blobs: rec.image!.blobs.slice(1), size: 1 } });
    const v = await verifyStore(store, { repair: true });
    expect(v.unsummarized).toBe(1);
    expect((await store.readTag(UP, "bench/r00000", "t00001"))!.image).toEqual(rec.image);
  });
});
