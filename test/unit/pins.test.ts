// A pull by digest counts for the upstream it went through (issue 18 item 8): another upstream's
// index naming the same digest, or a byte-identical copy, neither hides the pull from list/prune
// nor lets prune remove what this upstream's clients still pull.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX } from "../../src/oci/mediatypes.ts";
import { listImages } from "../../src/cache/list.ts";
import { makeImage, makeIndex, type Image } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const DAY = 24 * 3600_000;
const registries = [{ name: "l.test", scheme: "http" as const }, { name: "e.test", scheme: "http" as const }];
const hex = (d: string) => d.slice("sha256:".length);

/** E's index: one platform entry naming `child` (an image of L). */
function indexNaming(child: Image): Image {
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: [{ mediaType: child.mediaType, digest: child.digest, size: child.manifest.byteLength, platform: { os: "linux", architecture: "amd64" } }],
  }));
  return { mediaType: OCI_INDEX, manifest, digest: digestOf(manifest), blobs: [], children: [child] };
}

/** Two upstreams (the fake serves both), L's image, and E's index naming it, both in repository `app`. */
async function setup(root?: string) {
  const r = await createTestRegistry({ registries, defaultNs: "l.test", root });
  const img = makeImage();
  const evil = indexNaming(img);
  r.upstream.add("app", "mine", img);
  r.upstream.add("app", "evil", evil);
  const pull = async (ns: string, ref: string) => {
    const res = await r.request(`/v2/app/manifests/${ref}?ns=${ns}`);
    expect(res.status).toBe(200);
    return new Uint8Array(await res.arrayBuffer());
  };
  const record = (ns: string, ref: string) => existsSync(join(r.root, "repositories", ns, "app/_tags", `${ref}.json`));
  return { r, img, evil, pull, record };
}

describe("a pull by digest counts for its own upstream", () => {
  test("E's index naming L's digest: L's pull by digest from memory gets L a record; E gets none for the child", async () => {
    const { r, img, evil, pull, record } = await setup();
    await pull("e.test", "evil");
    expect(await pull("e.test", img.digest)).toEqual(img.manifest);
    await pull("l.test", img.digest);
    expect(record("l.test", img.digest)).toBe(true);
    expect(record("e.test", img.digest)).toBe(false);
    expect(record("e.test", "evil")).toBe(true);
    const listed = await listImages(r.store);
    expect(listed.map((i) => `${i.image} ${i.tag} ${i.digest}`)).toEqual([
      `e.test/app evil ${evil.digest}`, `l.test/app <none> ${img.digest}`,
    ]);
  });

  test("from the store after a restart, too, without asking L's upstream", async () => {
    const first = await setup();
    await first.pull("e.test", "evil");
    await first.pull("e.test", first.img.digest);
    const { r, pull, record } = await setup(first.r.root);
    r.upstream.log.length = 0;
    expect(await pull("l.test", first.img.digest)).toEqual(first.img.manifest);
    expect(r.upstream.log).toEqual([]);
    expect(record("l.test", first.img.digest)).toBe(true);
  });

  test("a byte-identical copy E serves under its own tag does not hide L's pull by digest", async () => {
    const { r, img, pull, record } = await setup();
    r.upstream.add("app", "copy", img);
    await pull("e.test", "copy");
    await pull("l.test", img.digest);
    expect(record("e.test", "copy")).toBe(true);
    expect(record("l.test", img.digest)).toBe(true);
  });

  test("platform manifests of an index L itself served get no record, also from the store after a restart", async () => {
    const first = await createTestRegistry({ registries, defaultNs: "l.test" });
    const index = makeIndex(["amd64", "arm64"]);
    first.upstream.add("multi", "v1", index);
    expect((await first.request(`/v2/multi/manifests/${index.digest}?ns=l.test`)).status).toBe(200);
    expect((await first.request(`/v2/multi/manifests/${index.children[0]!.digest}?ns=l.test`)).status).toBe(200);
    const again = await createTestRegistry({ registries, defaultNs: "l.test", root: first.root });
    again.upstream.add("multi", "v1", index);
    expect((await again.request(`/v2/multi/manifests/${index.digest}?ns=l.test`)).status).toBe(200);
    expect((await again.request(`/v2/multi/manifests/${index.children[1]!.digest}?ns=l.test`)).status).toBe(200);
    expect(readdirSync(join(first.root, "repositories/l.test/multi/_tags"))).toEqual([`${index.digest}.json`]);
  });

  test("the same index through E in another repository does not make L's platform manifest a part for L", async () => {
    const { r, img, record } = await setup();
    r.upstream.add("other", "evil", indexNaming(img));
    expect((await r.request(`/v2/other/manifests/evil?ns=l.test`)).status).toBe(200);
    expect((await r.request(`/v2/app/manifests/${img.digest}?ns=l.test`)).status).toBe(200);
    expect(record("l.test", img.digest)).toBe(true);
  });

  test("a tag's target pulled by digest through its own upstream is that tag's image; through another, a pin", async () => {
    const { r, img, pull, record } = await setup();
    await pull("l.test", "mine");
    await pull("l.test", img.digest);
    expect(record("l.test", img.digest)).toBe(false);
    await pull("e.test", img.digest);
    expect(record("e.test", img.digest)).toBe(true);
    // The tag moves: the digest it left, pulled by digest, is a pin now.
    r.upstream.add("app", "mine", makeImage());
    r.clock.advance(DAY);
    await pull("l.test", "mine");
    await pull("l.test", img.digest);
    expect(record("l.test", img.digest)).toBe(true);
  });

  test("warm pulls by digest read no record from disk: one read per pin at most", async () => {
    const { r, img, evil, pull } = await setup();
    const index = makeIndex(["amd64"]);
    r.upstream.add("app", "multi", index);
    await pull("l.test", "multi");
    await pull("e.test", "evil");
    let reads = 0;
    const readTag = r.store.readTag.bind(r.store);
    r.store.readTag = (...a) => (reads++, readTag(...a));
    for (let i = 0; i < 50; i++) {
      await pull("l.test", img.digest);
      await pull("l.test", index.children[0]!.digest);
      await pull("e.test", evil.digest);
    }
    // One read per pin, plus one when the store counts a record it is about to create (l.test's pin of img).
    expect(reads).toBeLessThanOrEqual(4);
  });
});

describe("prune keeps what a fresh record of its own upstream needs", () => {
  test("E's aged record goes; L's manifest and blobs stay while L pulls them", async () => {
    const { r, img, evil, pull, record } = await setup();
    await pull("e.test", "evil");
    await pull("e.test", img.digest);
    r.clock.advance(3 * DAY);
    await pull("l.test", img.digest);
    await r.cache.blobs.ensure({ upstream: "l.test", repository: "app" }, img.blobs[0]!.digest);
    await r.cache.blobs.ensure({ upstream: "l.test", repository: "app" }, img.blobs[1]!.digest);
    const report = await r.cache.prune({ olderThanMs: DAY, by: "lastPulled", dryRun: false, now: r.clock.now() });
    expect(report.images).toEqual(["e.test/app:evil"]);
    expect(record("e.test", "evil")).toBe(false);
    expect(record("l.test", img.digest)).toBe(true);
    expect(existsSync(join(r.root, "manifests/sha256", hex(img.digest)))).toBe(true);
    expect(existsSync(join(r.root, "manifests/sha256", hex(evil.digest)))).toBe(false);
    for (const b of img.blobs) expect(existsSync(join(r.root, "blobs/sha256", hex(b.digest)))).toBe(true);
  });
});
