// A hostile archives directory in-process: links to `.` and to ancestors, links out of the
// directory, the directory and entry bounds, and blobs whose bytes do not match their digest
// (never served as that digest; checked once per file version).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createArchiveSource } from "../../src/archives/source.ts";
import { scanArchives } from "../../src/archives/scan.ts";
import { createBlobVerifier } from "../../src/archives/verify.ts";
import { stampOf } from "../../src/archives/layout.ts";
import { makeImage, type Image } from "../helpers/images.ts";
import { ociArchive } from "../helpers/oci-archive.ts";
import { createTestRegistry } from "../helpers/registry.ts";

let base: string;
const put = (path: string, bytes: Uint8Array) => {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
};
/** The archive of `img` with one byte of its first layer flipped. */
function tampered(img: Image): Uint8Array {
  const bytes = ociArchive([{ image: img }]);
  const layer = img.blobs.at(-1)!;
  const at = Buffer.from(bytes).indexOf(Buffer.from(layer.bytes));
  bytes[at + 3] = bytes[at + 3]! ^ 1;
  return bytes;
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "ocireg-hostile-archives-"));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("the walk", () => {
  test("links to ., to an ancestor and to a sibling are entered at most once, each reported once, quickly", async () => {
    const dir = join(base, "loops");
    put(join(dir, "a/b/c/library/app.oci"), ociArchive([{ image: makeImage() }]));
    for (const [at, to] of [["self", "."], ["self2", "."], ["a/up", ".."], ["a/b/top", "../.."], ["a/b/c/again", "../../../a"]] as const) symlinkSync(to, join(dir, at));
    const t0 = performance.now();
    const r = await scanArchives(dir);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect([...r.listing]).toEqual([["a/b/c/library", ["app.oci"]]]);
    const loops = r.problems.filter((p) => p.includes("already searched"));
    expect(loops.map((p) => p.slice(dir.length + 1, p.indexOf(" ")))).toEqual(["a/b/c/again", "a/b/top", "a/up", "self", "self2"]);
  });

  test("links leading outside the directory (files and directories) are skipped, naming them", async () => {
    const dir = join(base, "outside");
    const elsewhere = join(base, "elsewhere");
    put(join(elsewhere, "secret.oci"), ociArchive([{ image: makeImage() }]));
    put(join(dir, "library/inside.oci"), ociArchive([{ image: makeImage() }]));
    symlinkSync(join(elsewhere, "secret.oci"), join(dir, "library/leak.oci"));
    symlinkSync(elsewhere, join(dir, "out"));
    symlinkSync("inside.oci", join(dir, "library/alias.oci"));
    const r = await scanArchives(dir);
    expect([...r.listing]).toEqual([["library", ["alias.oci", "inside.oci"]]]);
    expect(r.problems).toContain(`${join(dir, "library/leak.oci")} is a symbolic link to ${join(elsewhere, "secret.oci")}, outside the archives directory; skipped`);
    expect(r.problems).toContain(`${join(dir, "out")} is a symbolic link to ${elsewhere}, outside the archives directory; skipped`);
  });

  test("directories and entries are bounded; problems reported by one scan are capped", async () => {
    const dir = join(base, "wide");
    for (let i = 0; i < 30; i++) mkdirSync(join(dir, `d${String(i).padStart(2, "0")}`), { recursive: true });
    for (let i = 0; i < 200; i++) symlinkSync(".", join(dir, `l${i}`));
    const dirs = await scanArchives(dir, { maxFiles: 10, maxDepth: 4, maxDirs: 5, maxEntries: 10_000 });
    expect(dirs.problems).toContain("more than 5 directories; the rest are not searched");
    const entries = await scanArchives(dir, { maxFiles: 10, maxDepth: 4, maxDirs: 100, maxEntries: 50 });
    expect(entries.problems).toContain("more than 50 directory entries; the rest are not searched");
    const all = await scanArchives(dir);
    expect(all.problems).toHaveLength(101);
    expect(all.problems.at(-1)).toBe("100 more problem(s) not shown");
  });
});

describe("serving", () => {
  const img = { good: makeImage({ content: 300_000 }), bad: makeImage({ content: 300_000 }), leak: makeImage() };
  const warnings: string[] = [];
  let r: Awaited<ReturnType<typeof createTestRegistry>>;
  let dir: string;
  let archives: ReturnType<typeof createArchiveSource>;

  beforeAll(async () => {
    dir = join(base, "serve");
    put(join(dir, "library/good.oci"), ociArchive([{ image: img.good }]));
    put(join(dir, "library/bad.oci"), tampered(img.bad));
    put(join(base, "secret/leak.oci"), ociArchive([{ image: img.leak }]));
    symlinkSync(join(base, "secret/leak.oci"), join(dir, "library/leak.oci"));
    archives = createArchiveSource(dir, { log: { debug() {}, info() {}, warn: (m) => void warnings.push(m) } });
    await archives.rescan();
    r = await createTestRegistry({ archives });
  });
  afterAll(() => rmSync(r.root, { recursive: true, force: true }));

  test("a blob whose bytes match its digest is served, whole and by range", async () => {
    const layer = img.good.blobs.at(-1)!;
    const whole = await r.request(`/v2/library/good/blobs/${layer.digest}`);
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(layer.bytes);
    const part = await r.request(`/v2/library/good/blobs/${layer.digest}`, { headers: { Range: "bytes=5-9" } });
    expect([part.status, new Uint8Array(await part.arrayBuffer())]).toEqual([206, layer.bytes.subarray(5, 10)]);
  });

  test("a blob whose bytes do not match is never served as that digest: it goes on to the upstream, one warning", async () => {
    const layer = img.bad.blobs.at(-1)!;
    const before = warnings.length;
    for (const method of ["GET", "HEAD", "GET"]) {
      const res = await r.request(`/v2/library/bad/blobs/${layer.digest}`, { method });
      expect(res.status).toBe(404);
    }
    expect(r.upstream.log.filter((l) => l.includes(layer.digest)).length).toBeGreaterThan(0);
    expect(warnings.slice(before)).toEqual([`archive ${join(dir, "library/bad.oci")} holds ${layer.digest} with content that does not match that digest; not served until it changes`]);
    r.upstream.add("library/bad", "v1", img.bad);
    const fromUpstream = await r.request(`/v2/library/bad/blobs/${layer.digest}`);
    expect(new Uint8Array(await fromUpstream.arrayBuffer())).toEqual(layer.bytes);
  });

  test("a link to an archive outside the directory is not served, and reported", async () => {
    expect((await r.request(`/v2/library/leak/manifests/${img.leak.digest}`)).status).toBe(404);
    expect((await r.request(`/v2/library/leak/blobs/${img.leak.blobs[0]!.digest}`)).status).toBe(404);
    expect(warnings.some((w) => w.includes(join(dir, "library/leak.oci")) && w.includes("outside the archives directory"))).toBe(true);
  });

  test("a listed link retargeted outside after the scan is not served from the next request on", async () => {
    symlinkSync("good.oci", join(dir, "library/swap.oci"));
    await archives.rescan();
    expect((await r.request(`/v2/library/swap/manifests/${img.good.digest}`)).status).toBe(200);
    symlinkSync(join(base, "secret/leak.oci"), join(dir, "library/.swap.tmp"));
    renameSync(join(dir, "library/.swap.tmp"), join(dir, "library/swap.oci"));
    const before = warnings.length;
    expect((await r.request(`/v2/library/swap/manifests/${img.leak.digest}`)).status).toBe(404);
    expect((await r.request(`/v2/library/swap/blobs/${img.leak.blobs[0]!.digest}`)).status).toBe(404);
    expect(warnings.slice(before)).toEqual([`archive ${join(dir, "library/swap.oci")} is a link to ${join(base, "secret/leak.oci")}, outside the archives directory; not served until it changes`]);
  });
});

describe("the verifier", () => {
  test("one pass per file version, shared by concurrent checks and remembered", async () => {
    const img = makeImage({ content: 100_000 });
    const file = join(base, "verify/app.oci");
    const bytes = ociArchive([{ image: img }]);
    put(file, bytes);
    utimesSync(file, 1_700_000_000, 1_700_000_000); // whole seconds, so they can be put back exactly
    const layer = img.blobs.at(-1)!;
    const at = { offset: Buffer.from(bytes).indexOf(Buffer.from(layer.bytes)), size: layer.bytes.byteLength };
    const v = createBlobVerifier();
    const stamp = stampOf(statSync(file));
    const [a, b] = [v.check(file, stamp, layer.digest, at), v.check(file, stamp, layer.digest, at)];
    expect(a).toBe(b);
    expect(await a).toBe("ok");
    // The same version (bytes changed, size and mtime put back): the verdict is remembered, not re-read.
    writeFileSync(file, tampered(img));
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect(stampOf(statSync(file))).toBe(stamp);
    expect(await v.check(file, stamp, layer.digest, at)).toBe("ok");
    // A new version is checked again.
    utimesSync(file, 1_700_000_000, 1_700_000_005);
    expect(await v.check(file, stampOf(statSync(file)), layer.digest, at)).toBe("mismatch");
    // A version that is no longer the file on disk gives no verdict.
    expect(await v.check(file, stamp, img.blobs[0]!.digest, { offset: 0, size: 10 })).toBe("changed");
  });
});
