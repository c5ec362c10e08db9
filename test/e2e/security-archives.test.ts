// A hostile archives directory and hostile strings, against the compiled binary (issue 18, items 9
// and 11): links to `.` and to ancestors and deep nesting (serve still listens within seconds,
// under 150 MB), a `.oci` link to a file outside (never served), a blob whose bytes do not match
// its digest (never served as that digest), and control characters from archives and upstreams
// (escaped in the text log and in `list`; JSON stays JSON). Hostile upstream on 127.0.12.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BINARY, type RunningCache } from "../helpers/binary.ts";
import { peakRss, startHostile, type HostileUpstream } from "../helpers/hostile-upstream.ts";
import { makeImage, type Image } from "../helpers/images.ts";
import { ociArchive } from "../helpers/oci-archive.ts";
import { cacheFactory, get } from "../helpers/security.ts";

const HOSTILE = "127.0.12.1";
const MB = 1024 * 1024;
const CONFIG = `registries:\n  - { name: ${HOSTILE}, scheme: http }\n`;
/** Clear the screen, home the cursor, ring the bell, then forge a log line and reverse the text. */
const EVIL = "\x1b[2J\x1b[H\x07\n[warn] forged line \u202etxt.exe";
/** Any raw control character but a line break, or a bidi override. */
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

let work: string;
let archives: string;
let outside: string;
let hostile: HostileUpstream;
let caches: ReturnType<typeof cacheFactory>;
let cache: RunningCache;
let startMs = 0;
const img: Record<"good" | "bad" | "leak" | "deep", Image> = {
  good: makeImage(), bad: makeImage({ content: 200_000 }), leak: makeImage(), deep: makeImage(),
};

const put = (path: string, bytes: Uint8Array) => {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
};
/** The archive of `image` with one byte of its layer flipped: the layer no longer matches its digest. */
function tampered(image: Image): Uint8Array {
  const bytes = ociArchive([{ image }]);
  const layer = image.blobs[1]!;
  const at = Buffer.from(bytes).indexOf(Buffer.from(layer.bytes));
  bytes[at + 100] = bytes[at + 100]! ^ 0xff;
  return bytes;
}
const v2 = (path: string) => `${cache.url}/v2/${HOSTILE}/${path}`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ocireg-sec-archives-"));
  archives = join(work, "archives");
  outside = join(work, "outside");
  caches = cacheFactory(work);
  hostile = await startHostile({ host: HOSTILE });
  put(join(archives, "library/good.oci"), ociArchive([{ image: img.good }]));
  put(join(archives, "library/bad.oci"), tampered(img.bad));
  // What made the old walk run for ever: several links to `.` at the top, links to ancestors below.
  for (let i = 0; i < 6; i++) symlinkSync(".", join(archives, `loop${i}`));
  mkdirSync(join(archives, "a/b/c"), { recursive: true });
  symlinkSync("..", join(archives, "a/up"));
  symlinkSync("../../..", join(archives, "a/b/c/top"));
  symlinkSync(archives, join(archives, "a/b/absolute"));
  // Nesting deeper than the walk goes (40 levels), with an archive at the bottom.
  const deep = join(archives, ...Array.from({ length: 40 }, (_, i) => `d${i}`));
  put(join(deep, "library/deep.oci"), ociArchive([{ image: img.deep }]));
  // A `.oci` link to an archive outside the directory, and a directory link out of it.
  put(join(outside, "leak.oci"), ociArchive([{ image: img.leak }]));
  symlinkSync(join(outside, "leak.oci"), join(archives, "library/leak.oci"));
  symlinkSync(outside, join(archives, "library/out"));
  const t0 = performance.now();
  ({ cache } = await caches.start(CONFIG, ["--archives", archives]));
  startMs = performance.now() - t0;
}, 120_000);

afterAll(async () => {
  await caches?.stopAll();
  await hostile?.stop();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("the walk of a hostile archives directory", () => {
  test("serve listens within seconds under 150 MB, and serves the archives the walk reached", async () => {
    expect(startMs).toBeLessThan(5000);
    const m = await get(v2(`library/good/manifests/${img.good.digest}`));
    expect([m.status, m.headers.get("docker-content-digest")]).toEqual([200, img.good.digest]);
    expect(peakRss(cache.proc.pid)!).toBeLessThan(150 * MB);
  });

  test("each link to . or to a directory above is skipped with one log line", async () => {
    const log = await cache.settledOutput();
    for (const link of ["loop0", "loop5", "a/up", "a/b/c/top", "a/b/absolute"]) {
      const lines = log.split("\n").filter((l) => l.includes(`${join(archives, link)} leads to a directory already searched`));
      expect({ link, lines: lines.length }).toEqual({ link, lines: 1 });
    }
    expect(log).toContain("is deeper than 16 levels; not searched");
    expect((await get(v2(`library/deep/manifests/${img.deep.digest}`))).status).toBe(404);
  });
});

describe("files outside the archives directory", () => {
  test("a .oci link to an archive outside is not served (404 for its image and blobs), and logged by name", async () => {
    expect((await get(v2(`library/leak/manifests/${img.leak.digest}`))).status).toBe(404);
    expect((await get(v2(`library/leak/blobs/${img.leak.blobs[1]!.digest}`))).status).toBe(404);
    const log = await cache.settledOutput();
    expect(log).toContain(`${join(archives, "library/leak.oci")} is a symbolic link to ${join(outside, "leak.oci")}, outside the archives directory; skipped`);
    expect(log).toContain(`${join(archives, "library/out")} is a symbolic link to ${outside}, outside the archives directory; skipped`);
  });
});

describe("blobs that do not match their digest", () => {
  test("are never served as that digest: the request goes on to the upstream (404 there), the archive is reported", async () => {
    const layer = img.bad.blobs[1]!;
    for (let i = 0; i < 2; i++) {
      const got = await get(v2(`library/bad/blobs/${layer.digest}`));
      expect(got.status).toBe(404);
      expect(got.body && Buffer.from(got.body).includes(Buffer.from(layer.bytes.subarray(0, 64)))).toBe(false);
    }
    expect(hostile.requestsFor("library/bad").some((r) => r.path.includes(layer.digest))).toBe(true);
    const log = await cache.settledOutput();
    const reports = log.split("\n").filter((l) => l.includes(`archive ${join(archives, "library/bad.oci")} holds ${layer.digest} with content that does not match that digest`));
    expect(reports).toHaveLength(1);
  });

  test("the same digest from an honest upstream is then served whole, and the good archive's blobs still are", async () => {
    hostile.add("library/bad", "v1", img.bad);
    const layer = img.bad.blobs[1]!;
    const got = await get(v2(`library/bad/blobs/${layer.digest}`));
    expect([got.status, got.body && Buffer.from(got.body).equals(Buffer.from(layer.bytes))]).toEqual([200, true]);
    const good = img.good.blobs[1]!;
    const fromArchive = await get(v2(`library/good/blobs/${good.digest}`));
    expect([fromArchive.status, fromArchive.body && Buffer.from(fromArchive.body).equals(Buffer.from(good.bytes))]).toEqual([200, true]);
    expect(hostile.requestsFor("library/good").filter((r) => r.path.includes("/blobs/"))).toEqual([]);
  });
});

describe("hostile strings in list --archives", () => {
  let listDir: string;
  const annotated = makeImage();
  const list = (args: string[]) => {
    const r = Bun.spawnSync([BINARY, "--image-path", join(work, "list-store"), "list", "--archives", listDir, ...args], { stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };

  beforeAll(() => {
    listDir = join(work, "list-archives");
    mkdirSync(join(work, "list-store"));
    put(join(listDir, "library/annotated.oci"), ociArchive([{ image: annotated, ref: `v1${EVIL}` }]));
    put(join(listDir, "library/name\x1b[31mred.oci"), ociArchive([{ image: makeImage() }]));
    put(join(listDir, "library/broken\x1b]0;title\x07.oci"), new TextEncoder().encode("not a tar"));
  });

  test("the table and the warnings show control characters escaped, each image on one line", () => {
    const r = list([]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW);
    expect(r.stderr).not.toMatch(RAW);
    expect(r.stdout).toContain("v1\\x1b[2J\\x1b[H\\x07\\n[warn] forged line \\u202etxt.exe");
    expect(r.stdout).toContain("library/name\\x1b[31mred");
    expect(r.stdout.split("\n").some((l) => l.startsWith("[warn] forged"))).toBe(false);
    expect(r.stderr).toContain("library/broken\\x1b]0;title\\x07.oci");
  });

  test("--json holds the exact strings, as JSON", () => {
    const r = list(["--json"]);
    expect(r.stdout).not.toMatch(RAW);
    const rows = JSON.parse(r.stdout) as Array<{ tag: string; digest: string; image: string }>;
    expect(rows.find((row) => row.digest === annotated.digest)?.tag).toBe(`v1${EVIL}`);
    expect(rows.some((row) => row.image === "library/name\x1b[31mred")).toBe(true);
  });
});

describe("hostile strings from an upstream in the log", () => {
  const tagList = (body: string) => (x: Parameters<Parameters<HostileUpstream["behave"]>[1]>[0]) => {
    const bytes = Buffer.from(body);
    x.res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(bytes.length) });
    x.res.end(bytes);
  };

  beforeAll(() => {
    hostile.behave("esc-tags", tagList(`${EVIL}{"tags":[]}`));
    hostile.behave("bidi-tags", tagList(`\u202e\n[warn] forged`));
  });

  test("a non-JSON tag list holding ESC: the text log holds its escaped form, no raw control character", async () => {
    // Nothing is cached for these names: the answer is an error either way; what matters is the log.
    for (const repo of ["esc-tags/app", "bidi-tags/app"]) expect((await get(v2(`${repo}/tags/list`))).status).toBe(502);
    const log = await cache.settledOutput();
    const lines = log.split("\n").filter((l) => l.includes(`listing cached tags of ${HOSTILE}/esc-tags/app`));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).toContain("\\x1b");
    expect(log).toContain(`listing cached tags of ${HOSTILE}/bidi-tags/app`);
    expect(log).not.toMatch(RAW);
    expect(log.split("\n").some((l) => l.startsWith("[warn] forged"))).toBe(false);
  });

  test("--log-format json: every line is JSON, without raw control characters", async () => {
    const { cache: jsonCache } = await caches.start(`${CONFIG}logFormat: json\n`);
    expect((await get(`${jsonCache.url}/v2/${HOSTILE}/esc-tags/app/tags/list`)).status).toBe(502);
    const log = await jsonCache.settledOutput();
    expect(log).not.toMatch(RAW);
    const entries = log.trim().split("\n").map((l) => JSON.parse(l) as { msg: string });
    expect(entries.some((e) => e.msg.includes(`listing cached tags of ${HOSTILE}/esc-tags/app`) && e.msg.includes("\x1b"))).toBe(true);
  });
});
