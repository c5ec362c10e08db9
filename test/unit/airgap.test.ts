// Image lists, prune's keep/remove decision, archive import refusing what it did not write.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tar from "tar-stream";
import { pruneStore } from "../../src/cache/prune.ts";
import { parseImageList } from "../../src/config/image-list.ts";
import { exportArchive, importArchive } from "../../src/cache/archive.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { makeImage } from "../helpers/images.ts";
import { waitFor } from "../helpers/procs.ts";
import { createTestRegistry } from "../helpers/registry.ts";
import { tempFiles } from "../helpers/store-files.ts";

describe("image lists", () => {
  test("comments, blank lines, docker.io defaults, digests", () => {
    const refs = parseImageList(`# base images\nnginx:1.27\n\nregistry.k8s.io/pause:3.9  # sandbox\nhost:5000/a/b@sha256:${"a".repeat(64)}\n`, "list");
    expect(refs).toEqual([
      { upstream: "docker.io", repository: "library/nginx", reference: "1.27" },
      { upstream: "registry.k8s.io", repository: "pause", reference: "3.9" },
      { upstream: "host:5000", repository: "a/b", reference: `sha256:${"a".repeat(64)}` },
    ]);
  });
  test("every bad line is named with its number", () => {
    expect(() => parseImageList("ok:1\nnginx::1\nfine\nBAD/x\n", "images.txt")).toThrow(/images.txt: line 2: .*\n\s+line 4:/);
  });
});

/** A registry whose store holds `names` (tag v1), each pulled whole: manifest, config and layers. */
async function cached(names: string[]) {
  const r = await createTestRegistry();
  const shared = makeImage({ content: "same" });
  for (const n of names) {
    r.upstream.add(n, "v1", n === "twin" ? makeImage({ content: "same", docker: true }) : n === "base" ? shared : makeImage({ content: n }));
    await r.cache.pullImage({ upstream: "up.test", repository: n }, "v1", "all");
  }
  return r;
}

describe("prune", () => {
  test("removes old records and only the content no kept image needs", async () => {
    const r = await cached(["base", "twin", "solo"]);
    const store = r.store;
    for (const n of ["base", "twin", "solo"]) {
      const m = await (await r.request(`/v2/${n}/manifests/v1`)).json() as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) await (await r.request(`/v2/${n}/blobs/${d}`)).arrayBuffer();
    }
    // A client gets the last byte once the digest matched; the store commits right after.
    await waitFor("the blobs to be committed", async () => readdirSync(join(r.root, "blobs/sha256")).length === 4);
    const blobsBefore = readdirSync(join(r.root, "blobs/sha256")).length;
    expect(blobsBefore).toBe(4); // base and twin share config and layer bytes
    const rec = (await store.readTag("up.test", "base", "v1"))!;
    // An hour later, only base was pulled a second ago.
    const now = Date.parse(rec.lastPulled) + 3_600_000;
    await store.writeTag({ ...rec, lastPulled: new Date(now - 1000).toISOString() });
    const dry = await pruneStore(store, { olderThanMs: 60_000, by: "lastPulled", dryRun: true, now });
    expect(dry.images).toEqual(["up.test/solo:v1", "up.test/twin:v1"]);
    expect(readdirSync(join(r.root, "blobs/sha256"))).toHaveLength(4);
    const done = await pruneStore(store, { olderThanMs: 60_000, by: "lastPulled", dryRun: false, now });
    expect(done.blobs).toBe(2);
    expect(done.manifests).toBe(2);
    expect(readdirSync(join(r.root, "blobs/sha256"))).toHaveLength(2);
    expect(await store.listTags("up.test", "base")).toEqual(["v1"]);
    const base = await r.request("/v2/base/manifests/v1");
    expect(base.status).toBe(200);
  });
});

describe("prune inside serve", () => {
  test("writes pending last-pulled times first, then forgets what it removed", async () => {
    const r = await cached(["old", "used"]);
    r.clock.advance(3_600_000);
    await r.request("/v2/used/manifests/v1"); // only in memory until flushed
    const report = await r.cache.prune({ olderThanMs: 60_000, by: "lastPulled", dryRun: false, now: r.clock.now() });
    expect(report.images).toEqual(["up.test/old:v1"]);
    expect(await r.store.listTags("up.test", "used")).toEqual(["v1"]);
    r.upstream.log.length = 0;
    await r.request("/v2/old/manifests/v1");
    expect(r.upstream.log).toEqual(["GET /v2/old/manifests/v1"]);
  });

  test("pruneConfig is validated", async () => {
    const { resolveConfig } = await import("../../src/config/resolve.ts");
    const f = join(mkdtempSync(join(tmpdir(), "ocireg-pc-")), "c.yml");
    await Bun.write(f, "pruneConfig:\n  enabled: true\n  duration: 30d\n  type: accessed\n  frequency: 1d\n  count: -1\n  dryRun: false\n");
    expect(resolveConfig({ configFile: f }, {}).pruneConfig).toEqual({
      enabled: true, olderThanMs: 30 * 86_400_000, type: "accessed", frequencyMs: 86_400_000, count: -1, dryRun: false,
    });
    await Bun.write(f, "pruneConfig:\n  type: visited\n");
    expect(() => resolveConfig({ configFile: f }, {})).toThrow("pruneConfig.type: must be accessed or created");
    await Bun.write(f, "pruneConfig:\n  frequency: 10s\n");
    expect(() => resolveConfig({ configFile: f }, {})).toThrow("pruneConfig.frequency: must be at least 1m");
  });
});

describe("archives", () => {
  async function tarOf(entries: Array<[string, string]>) {
    const path = join(mkdtempSync(join(tmpdir(), "ocireg-tar-")), "a.tar");
    const pack = tar.pack();
    for (const [name, body] of entries) pack.entry({ name }, body);
    pack.finalize();
    await Bun.write(path, new Response(pack as unknown as ReadableStream));
    return path;
  }

  test("export then import round-trips into an empty store", async () => {
    const r = await cached(["app"]);
    const out = join(mkdtempSync(join(tmpdir(), "ocireg-exp-")), "s.tar");
    const s = await exportArchive(r.store, out, { format: "store" });
    expect(s.images).toBe(1);
    const target = createFsStore(mkdtempSync(join(tmpdir(), "ocireg-imp-")));
    await target.init();
    const got = await importArchive(target, out);
    expect(got.tags).toBe(1);
    expect(await target.readTag("up.test", "app", "v1")).toEqual(await r.store.readTag("up.test", "app", "v1"));
  });

  test.each([
    [[["../etc/passwd", "x"]], "unexpected entry"],
    [[["/abs/path", "x"]], "unexpected entry"],
    [[[`blobs/sha256/${"0".repeat(64)}`, "not those bytes"]], "does not match its digest"],
    [[["repositories/up.test/../../x/_tags/v1.json", "{}"]], "not a valid tag record path"],
    [[["repositories/up.test/app/_tags/v1.json", '{"upstream":"up.test"}']], "not a valid tag record"],
    [[["index.json", "{}"]], "OCI image-layout archive"],
  ])("refuses %j", async (entries, message) => {
    const target = createFsStore(mkdtempSync(join(tmpdir(), "ocireg-imp-")));
    await target.init();
    await expect(importArchive(target, await tarOf(entries as Array<[string, string]>))).rejects.toThrow(message);
    expect(readdirSync(join(target.location, "blobs/sha256"))).toEqual([]);
    expect(tempFiles(target.location)).toEqual([]);
  });
});
