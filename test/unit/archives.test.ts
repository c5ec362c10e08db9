// `serve --archives` in-process: the registry handler over a directory of .oci archives in front of
// a fake upstream — the five name patterns, digests, freshness (replace, delete, add + rescan),
// damaged and compressed files (404 and one warning), the LRU bound, and falling through.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createArchiveSource, type Archives } from "../../src/archives/source.ts";
import { createAdmin } from "../../src/server/admin.ts";
import { makeImage, makeIndex } from "../helpers/images.ts";
import { ociArchive, type LayoutImage } from "../helpers/oci-archive.ts";
import { createTestRegistry } from "../helpers/registry.ts";

let dir: string;
let archives: Archives;
let r: Awaited<ReturnType<typeof createTestRegistry>>;
const warnings: string[] = [];
const img = {
  named: makeImage(), glob: makeIndex(["amd64", "arm64"]), colon: makeImage({ docker: true }),
  pairA: makeImage(), pairB: makeImage(), exact: makeImage(), upstreamOnly: makeImage(), prefixed: makeImage(),
};

function put(rel: string, images: LayoutImage[] | Uint8Array) {
  mkdirSync(dirname(join(dir, rel)), { recursive: true });
  const tmp = join(dir, `.tmp-${Math.random()}`);
  writeFileSync(tmp, images instanceof Uint8Array ? images : ociArchive(images));
  renameSync(tmp, join(dir, rel)); // as a careful user replaces a file: atomically
}

async function manifest(path: string) {
  const res = await r.request(`/v2/${path}`);
  return { status: res.status, digest: res.headers.get("docker-content-digest"), type: res.headers.get("content-type"), bytes: new Uint8Array(await res.arrayBuffer()) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-archives-"));
  put("library/named/v1.oci", [{ image: img.named }]);
  put("library/glob/any-name.oci", [{ image: img.glob, ref: "v1" }]);
  put("library/colon:v1.oci", [{ image: img.colon }]);
  put("library/pair:both.oci", [{ image: img.pairA, ref: "a" }, { image: img.pairB, ref: "b" }]);
  put("library/exact.oci", [{ image: img.exact }]);
  put("up.test/library/prefixed.oci", [{ image: img.prefixed }]);
  archives = createArchiveSource(dir, { log: { debug() {}, info() {}, warn: (m) => void warnings.push(m) }, maxIndexes: 2 });
  await archives.rescan();
  r = await createTestRegistry({ archives });
  r.upstream.add("library/upstream-only", "v1", img.upstreamOnly);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(r.root, { recursive: true, force: true });
});

describe("the five name patterns", () => {
  for (const [label, path, image] of [
    ["<name>/<reference>.oci", "library/named/manifests/v1", img.named],
    ["<name>/*.oci (by annotation; an index served whole)", "library/glob/manifests/v1", img.glob],
    ["<name>:<reference>.oci (a Docker schema 2 image)", "library/colon/manifests/v1", img.colon],
    ["<name>:*.oci, first of two images", "library/pair/manifests/a", img.pairA],
    ["<name>:*.oci, second of two images", "library/pair/manifests/b", img.pairB],
    ["<name>.oci, any reference", "library/exact/manifests/whatever", img.exact],
    ["<upstream>/<repository>.oci", "up.test/library/prefixed/manifests/v1", img.prefixed],
  ] as const) {
    test(`${label}: the archive's exact bytes, digest and media type`, async () => {
      const m = await manifest(path);
      expect(m).toEqual({ status: 200, digest: image.digest, type: image.mediaType, bytes: image.manifest });
    });
  }

  test("nothing was asked of the upstream or written to the store", async () => {
    expect(r.upstream.log).toEqual([]);
    expect(await Array.fromAsync(r.store.allTags())).toEqual([]);
  });

  test("a reference no archive names falls through to the upstream (here a 404)", async () => {
    expect((await manifest("library/pair/manifests/c")).status).toBe(404);
    expect((await manifest("library/glob/manifests/v2")).status).toBe(404);
    expect((await manifest("library/named/manifests/v2")).status).toBe(404);
    expect(r.upstream.log).toEqual(["GET /v2/library/pair/manifests/c", "GET /v2/library/glob/manifests/v2", "GET /v2/library/named/manifests/v2"]);
  });

  test("a file under another upstream's directory is not served for this one", async () => {
    const other = await createTestRegistry({ archives, registries: [{ name: "other.test", scheme: "http" }], defaultNs: "other.test" });
    expect((await other.request("/v2/library/prefixed/manifests/v1")).status).toBe(404);
    rmSync(other.root, { recursive: true, force: true });
  });

  test("what the archives do not hold comes from the upstream as before", async () => {
    expect(await manifest("library/upstream-only/manifests/v1")).toMatchObject({ status: 200, digest: img.upstreamOnly.digest });
  });
});

describe("by digest", () => {
  test("manifests, platform manifests, configs and layers of the archive the name maps to", async () => {
    const child = img.glob.children[1]!;
    expect(await manifest(`library/glob/manifests/${child.digest}`)).toMatchObject({ status: 200, digest: child.digest, bytes: child.manifest });
    for (const b of child.blobs) {
      const res = await r.request(`/v2/library/glob/blobs/${b.digest}`);
      expect([res.status, res.headers.get("content-length")]).toEqual([200, String(b.bytes.byteLength)]);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(b.bytes);
    }
    const asBlob = await r.request(`/v2/library/pair/blobs/${img.pairB.digest}`);
    expect(new Uint8Array(await asBlob.arrayBuffer())).toEqual(img.pairB.manifest);
  });

  test("a layer is not a manifest, and another name's archive is not searched", async () => {
    expect((await manifest(`library/exact/manifests/${img.exact.blobs[1]!.digest}`)).status).toBe(404);
    expect((await r.request(`/v2/library/exact/blobs/${img.named.blobs[0]!.digest}`)).status).toBe(404);
  });

  test("HEAD gives the size; Range gives 206 with the right bytes, from the archive file", async () => {
    const layer = img.exact.blobs[1]!;
    const head = await r.request(`/v2/library/exact/blobs/${layer.digest}`, { method: "HEAD" });
    expect([head.status, head.headers.get("content-length")]).toEqual([200, String(layer.bytes.byteLength)]);
    const part = await r.request(`/v2/library/exact/blobs/${layer.digest}`, { headers: { Range: "bytes=10-19" } });
    expect([part.status, part.headers.get("content-range")]).toEqual([206, `bytes 10-19/${layer.bytes.byteLength}`]);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(layer.bytes.subarray(10, 20));
  });
});

describe("freshness", () => {
  test("a replaced file is re-indexed on the next request", async () => {
    const next = makeImage();
    put("library/named/v1.oci", [{ image: next }]);
    expect((await manifest("library/named/manifests/v1")).digest).toBe(next.digest);
    expect((await r.request(`/v2/library/named/blobs/${img.named.blobs[1]!.digest}`)).status).toBe(404);
  });

  test("a deleted file is not served from the next request on, without a rescan", async () => {
    unlinkSync(join(dir, "library/exact.oci"));
    expect((await manifest("library/exact/manifests/v1")).status).toBe(404);
    expect((await r.request(`/v2/library/exact/blobs/${img.exact.blobs[0]!.digest}`)).status).toBe(404);
  });

  test("a new file is served after a rescan", async () => {
    const fresh = makeImage();
    put("library/fresh.oci", [{ image: fresh }]);
    expect((await manifest("library/fresh/manifests/v1")).status).toBe(404);
    expect((await archives.rescan()).files).toBe(6); // 6 at first, one deleted, one added
    expect((await manifest("library/fresh/manifests/v1")).digest).toBe(fresh.digest);
  });

  test("more archives than the index LRU holds are all served, re-indexed as needed", async () => {
    for (const [path, image] of [["library/glob/manifests/v1", img.glob], ["library/pair/manifests/a", img.pairA], ["library/colon/manifests/v1", img.colon]] as const) {
      expect((await manifest(path)).digest).toBe(image.digest);
    }
  });
});

describe("damaged and compressed archives", () => {
  const cases: Array<[string, string, () => void, RegExp]> = [
    ["truncated", "cut", () => {
      put("library/cut.oci", [{ image: makeImage({ content: 100_000 }) }]);
      truncateSync(join(dir, "library/cut.oci"), 50_000);
    }, /library\/cut\.oci is not a readable tar: truncated/],
    ["gzip-compressed", "gz", () => put("library/gz.oci", Bun.gzipSync(ociArchive([{ image: makeImage() }]))), /library\/gz\.oci is gzip-compressed .*gunzip/],
    ["not a tar at all", "junk", () => put("library/junk.oci", new TextEncoder().encode("<html>".repeat(500))), /library\/junk\.oci is not a readable tar/],
    ["without index.json", "noindex", () => put("library/noindex.oci", new Uint8Array(1024)), /library\/noindex\.oci has no index.json/],
    ["with a manifest that does not match its digest", "tampered", () => {
      const bytes = ociArchive([{ image: img.pairA }]);
      const at = Buffer.from(bytes).indexOf(Buffer.from(img.pairA.manifest));
      bytes[at + 5] = bytes[at + 5]! ^ 1;
      put("library/tampered.oci", bytes);
    }, /library\/tampered\.oci holds sha256:[a-f0-9]+ with content that does not match/],
  ];
  beforeAll(async () => {
    for (const [, , make] of cases) make();
    await archives.rescan();
  });

  for (const [label, name, , message] of cases) {
    test(`${label}: 404 (never 5xx) twice, one warning naming the file`, async () => {
      const before = warnings.length;
      expect((await manifest(`library/${name}/manifests/v1`)).status).toBe(404);
      expect((await manifest(`library/${name}/manifests/v1`)).status).toBe(404);
      expect(warnings.slice(before)).toHaveLength(1);
      expect(warnings.at(-1)).toMatch(message);
    });
  }

  test("the other archives keep serving", async () => {
    expect((await manifest("library/pair/manifests/b")).digest).toBe(img.pairB.digest);
  });

  test("list reports each damaged file and lists the rest with their file", async () => {
    const skipped: string[] = [];
    const rows = await archives.images((abs) => void skipped.push(abs.slice(dir.length + 1)));
    expect(skipped.sort()).toEqual(["library/cut.oci", "library/gz.oci", "library/junk.oci", "library/noindex.oci", "library/tampered.oci"]);
    expect(rows.find((row) => row.digest === img.pairB.digest)).toMatchObject({ image: "library/pair", tag: "b", archive: join(dir, "library/pair:both.oci") });
    expect(rows.find((row) => row.digest === img.colon.digest)).toMatchObject({ image: "library/colon", tag: "v1" });
  });
});

describe("odd directory entries", () => {
  test("a FIFO named .oci is never opened and a symlink loop ends the walk", async () => {
    execFileSync("mkfifo", [join(dir, "library/fifo.oci")]);
    symlinkSync(".", join(dir, "library/loop"));
    const scan = await archives.rescan();
    expect(scan.problems).toContain(`${join(dir, "library/loop")} leads to a directory already searched (a link to it or to a directory above it); not followed`);
    expect((await manifest("library/fifo/manifests/v1")).status).toBe(404);
    expect((await manifest("library/pair/manifests/a")).digest).toBe(img.pairA.digest);
  });
});

describe("POST /api/v1/archives/rescan", () => {
  const TOKEN = "unit-admin-token-0123456789";
  const post = (a: ReturnType<typeof createAdmin>) =>
    a.handle(new Request("http://cache.test/api/v1/archives/rescan", { method: "POST", headers: { Authorization: `Bearer ${TOKEN}` } }), "archives/rescan");

  test("rescans, says there is nothing to rescan without --archives, and 503 when the directory is gone", async () => {
    const admin = (a: Archives | null) => createAdmin({ token: TOKEN, cache: r.cache, store: r.store, archives: a, status: () => ({}) });
    const ok = await post(admin(archives));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ files: expect.any(Number), problems: expect.any(Array) });
    expect((await post(admin(null))).status).toBe(404);
    const gone = createArchiveSource(join(dir, "no-such-dir"), { log: { debug() {}, info() {}, warn() {} } });
    const res = await post(admin(gone));
    expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([503, `cannot read the archives directory ${join(dir, "no-such-dir")}: ENOENT`]);
  });
});
