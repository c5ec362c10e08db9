// A store with damage in it: malformed records and references are reported and skipped, never
// fatal; nothing the store holds is unprunable; incomplete images are seen and not exported;
// an archive record must point where its name says.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tar from "tar-stream";
import { exportArchive, importArchive } from "../../src/cache/archive.ts";
import { pruneStore } from "../../src/cache/prune.ts";
import { problemCount, verifyStore } from "../../src/cache/verify.ts";
import { listImages } from "../../src/cache/list.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { serializeTagRecord } from "../../src/store/record.ts";
import type { TagRecord } from "../../src/store/types.ts";
import { makeImage } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";
import { tempFiles } from "../helpers/store-files.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function storeWithDamage() {
  const r = await createTestRegistry();
  const good = makeImage({ content: "good" });
  r.upstream.add("good", "v1", good);
  await r.cache.pullImage({ upstream: "up.test", repository: "good" }, "v1", "all");
  const rec = (await r.store.readTag("up.test", "good", "v1"))!;
  // A record whose digest is not a digest, written by hand.
  const tags = join(r.root, "repositories/up.test/broken/_tags");
  mkdirSync(tags, { recursive: true });
  writeFileSync(join(tags, "v1.json"), serializeTagRecord({ ...rec, repository: "broken", digest: "sha256:zzz" } as TagRecord));
  // A stored manifest whose layer reference leaves the store, and a valid record pointing at it.
  const evil = enc(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { digest: good.blobs[0]!.digest, size: 1 }, layers: [{ digest: "../../etc/passwd", size: 1 }] }));
  await r.store.writeManifest(digestOf(evil), evil);
  await r.store.writeTag({ ...rec, repository: "evil", digest: digestOf(evil), size: evil.byteLength });
  return { r, good };
}

describe("malformed records and references", () => {
  test("list, prune and export go on and report them; verify fails on them", async () => {
    const { r } = await storeWithDamage();
    const damaged: string[] = [];
    const listed = await listImages(r.store, undefined, (w) => damaged.push(w));
    expect(listed.map((i) => i.image)).toEqual(["up.test/evil", "up.test/good"]);
    expect(damaged).toEqual(["repositories/up.test/broken/_tags/v1.json"]);

    const out = join(mkdtempSync(join(tmpdir(), "ocireg-dmg-")), "s.tar");
    const exported = await exportArchive(r.store, out, { format: "store" });
    expect(exported.images).toBe(2);
    expect(exported.skipped.join("\n")).toMatch(/broken\/_tags\/v1\.json[\s\S]*"\.\.\/\.\.\/etc\/passwd"/);

    const pruned = await pruneStore(r.store, { olderThanMs: 86_400_000, by: "lastPulled", dryRun: false });
    expect(pruned.images).toEqual([]);
    expect(pruned.skipped.join("\n")).toMatch(/unreadable tag record[\s\S]*etc\/passwd/);

    const v = await verifyStore(r.store, { repair: false });
    expect(v.damaged).toEqual(["repositories/up.test/broken/_tags/v1.json"]);
    expect(v.invalid).toEqual([expect.stringContaining('"../../etc/passwd"')]);
    expect(problemCount(v)).toBe(2);
  });
});

describe("nothing is unprunable", () => {
  test("content no record reaches goes once older than the safety age; newer is kept", async () => {
    const r = await createTestRegistry();
    const img = makeImage();
    r.upstream.add("app", "v1", img);
    await r.cache.pullImage({ upstream: "up.test", repository: "app" }, "v1", "all");
    const old = enc("left by a crash");
    const fresh = enc("just downloaded");
    for (const b of [old, fresh]) {
      const w = await r.store.createBlobWriter(digestOf(b));
      await w.write(b);
      await w.commit();
      await w.release();
    }
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(join(r.root, "blobs/sha256", digestOf(old).slice(7)), twoDaysAgo, twoDaysAgo);
    const v = await verifyStore(r.store, { repair: false });
    expect(v.unreferenced).toEqual([`blobs ${digestOf(fresh)}`, `blobs ${digestOf(old)}`].sort());
    expect(problemCount(v)).toBe(0);
    const p = await pruneStore(r.store, { olderThanMs: 30 * 86_400_000, by: "lastPulled", dryRun: false });
    expect(p).toMatchObject({ images: [], blobs: 1, unreferenced: 1 });
    expect(existsSync(join(r.root, "blobs/sha256", digestOf(old).slice(7)))).toBe(false);
    expect(existsSync(join(r.root, "blobs/sha256", digestOf(fresh).slice(7)))).toBe(true);
    expect((await r.request("/v2/app/manifests/v1")).status).toBe(200);
  });
});

describe("incomplete images", () => {
  test("verify reports an image missing a layer; export leaves it out with a warning", async () => {
    const r = await createTestRegistry();
    const a = makeImage({ content: "a" });
    const b = makeImage({ content: "b" });
    r.upstream.add("a", "v1", a);
    r.upstream.add("b", "v1", b);
    for (const n of ["a", "b"]) await r.cache.pullImage({ upstream: "up.test", repository: n }, "v1", "all");
    await r.store.removeContent("blobs", b.blobs[1]!.digest);
    const v = await verifyStore(r.store, { repair: false });
    expect(v.incomplete).toEqual([`up.test/b:v1: missing blob ${b.blobs[1]!.digest}`]);
    const out = join(mkdtempSync(join(tmpdir(), "ocireg-inc-")), "s.tar");
    const s = await exportArchive(r.store, out, { format: "store" });
    expect(s.images).toBe(1);
    expect(s.skipped).toEqual([expect.stringMatching(/^up\.test\/b:v1: incomplete/)]);
  });
});

describe("load --archive", () => {
  async function tarOf(entries: Array<[string, Uint8Array]>) {
    const path = join(mkdtempSync(join(tmpdir(), "ocireg-tar-")), "a.tar");
    const pack = tar.pack();
    for (const [name, body] of entries) pack.entry({ name }, Buffer.from(body));
    pack.finalize();
    await Bun.write(path, new Response(pack as unknown as ReadableStream));
    return path;
  }

  test("a record named by one digest that points at another is refused", async () => {
    const img = makeImage();
    const other = makeImage();
    const rec: TagRecord = {
      upstream: "up.test", repository: "app", tag: img.digest, digest: other.digest, mediaType: other.mediaType, size: other.manifest.byteLength,
      created: new Date().toISOString(), lastPulled: new Date().toISOString(), checked: new Date().toISOString(),
    };
    const file = await tarOf([
      [`manifests/sha256/${other.digest.slice(7)}`, other.manifest],
      [`repositories/up.test/app/_tags/${img.digest}.json`, serializeTagRecord(rec)],
    ]);
    const target = createFsStore(mkdtempSync(join(tmpdir(), "ocireg-imp-")));
    await target.init();
    await expect(importArchive(target, file)).rejects.toThrow(/must point at that digest/);
    expect(readdirSync(join(target.location, "repositories"))).toEqual([]);
    expect(tempFiles(target.location)).toEqual([]);
  });
});
