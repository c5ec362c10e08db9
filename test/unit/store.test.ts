// The directory store: layout, verification, atomic writes, startup cleanup; the key scheme every
// driver and archive shares; how the S3 driver decides that an object is absent.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { createFsStore } from "../../src/store/fs.ts";
import { contentKey, parseContentKey, parseRecordKey, recordKey } from "../../src/store/keys.ts";
import { isAbsent } from "../../src/store/s3/writer.ts";
import { processOwner } from "../../src/store/owner.ts";
import type { TagRecord } from "../../src/store/types.ts";

async function fresh() {
  const root = mkdtempSync(join(tmpdir(), "ocireg-store-"));
  const store = createFsStore(root);
  await store.init();
  return { root, store };
}

const enc = (s: string) => new TextEncoder().encode(s);

describe("directory store", () => {
  test("manifests are stored by digest and refused when the bytes do not match", async () => {
    const { root, store } = await fresh();
    const bytes = enc('{"schemaVersion":2}');
    const d = digestOf(bytes);
    await store.writeManifest(d, bytes);
    expect(existsSync(join(root, "manifests/sha256", d.slice(7)))).toBe(true);
    expect(await store.readManifest(d)).toEqual(bytes);
    await expect(store.writeManifest(d, enc("other"))).rejects.toThrow("do not match");
    expect(await store.readManifest(digestOf(enc("absent")))).toBeNull();
  });

  test("tag records are JSON files under repositories/<upstream>/<repository>/_tags", async () => {
    const { root, store } = await fresh();
    const rec: TagRecord = {
      upstream: "docker.io", repository: "library/nginx", tag: "1.27", digest: `sha256:${"a".repeat(64)}`,
      mediaType: "application/vnd.oci.image.index.v1+json", size: 10,
      created: "2026-01-01T00:00:00.000Z", lastPulled: "2026-01-01T00:00:00.000Z", checked: "2026-01-01T00:00:00.000Z",
    };
    await store.writeTag(rec);
    await store.writeTag({ ...rec, repository: "library/nginx/sub", tag: "x" });
    expect(readdirSync(join(root, "repositories/docker.io/library/nginx/_tags"))).toEqual(["1.27.json"]);
    expect(await store.readTag("docker.io", "library/nginx", "1.27")).toEqual(rec);
    expect(await store.listTags("docker.io", "library/nginx")).toEqual(["1.27"]);
    const all: TagRecord[] = [];
    for await (const r of store.allTags()) all.push(r);
    expect(all.map((r) => `${r.repository}:${r.tag}`)).toEqual(["library/nginx:1.27", "library/nginx/sub:x"]);
  });

  test("refuses paths that could leave the store", async () => {
    const { store } = await fresh();
    await expect(store.readTag("docker.io", "../../etc", "x")).rejects.toThrow("unsafe");
    await expect(store.readTag("..", "a", "x")).rejects.toThrow("unsafe");
    await expect(store.readTag("docker.io", "a", "../x")).rejects.toThrow("unsafe");
    await expect(store.readManifest("sha256:../../x")).rejects.toThrow("not a digest");
  });

  test("only temp files of processes that are gone are removed at startup; nothing half-written is visible", async () => {
    const { root, store } = await fresh();
    const dead = join(root, "tmp", "deadbeef-999999-1");
    const reusedPid = join(root, "tmp", processOwner().replace(/-\d+$/, "-1")); // same boot and PID, other start time: gone
    const mine = join(root, "tmp", processOwner());
    const legacyOld = join(root, "tmp", "partial-old");
    const legacyNew = join(root, "tmp", "partial-new");
    for (const d of [dead, reusedPid, mine]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "half"), "half");
    }
    writeFileSync(legacyOld, "half");
    utimesSync(legacyOld, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    writeFileSync(legacyNew, "half");
    expect(await createFsStore(root).init()).toBe(3);
    expect(readdirSync(join(root, "tmp")).sort()).toEqual([processOwner(), "partial-new"].sort());
    const w = await store.createBlobWriter(digestOf(enc("blob")));
    await w.write(enc("blob"));
    expect(await store.statBlob(digestOf(enc("blob")))).toBeNull();
    await w.commit();
    await w.release();
    const s = await store.statBlob(digestOf(enc("blob")));
    expect(s?.size).toBe(4);
    expect(await s!.file.text()).toBe("blob");
  });
});

describe("the key scheme", () => {
  test("keys parse back to what they name; stray names parse to nothing", () => {
    const d = digestOf(enc("x"));
    expect(contentKey("manifests", d)).toBe(`manifests/sha256/${d.slice(7)}`);
    expect(parseContentKey(contentKey("blobs", d))).toEqual({ kind: "blobs", digest: d });
    for (const k of ["blobs/sha256/abc", "tmp/sha256/" + d.slice(7), "blobs/sha256/x/" + d.slice(7), "../blobs/sha256/" + d.slice(7)]) {
      expect(parseContentKey(k)).toBeNull();
    }
    const place = { upstream: "docker.io", repository: "library/nginx", tag: d };
    expect(recordKey(place)).toBe(`repositories/docker.io/library/nginx/_tags/${d}.json`);
    expect(parseRecordKey(recordKey(place))).toEqual(place);
    expect(parseRecordKey("repositories/docker.io/library/nginx/v1.json")).toBeNull();
    expect(parseRecordKey("blobs/docker.io/x/_tags/v1.json")).toBeNull();
  });
});

describe("S3: an absent object", () => {
  test("is decided by the code or status the client reports, never by message text", () => {
    expect(isAbsent(Object.assign(new Error("The specified key does not exist."), { name: "S3Error", code: "NoSuchKey" }))).toBe(true);
    expect(isAbsent({ status: 404, message: "" })).toBe(true);
    expect(isAbsent(new Error("HTTP 404: not found"))).toBe(false);
    expect(isAbsent(Object.assign(new Error("NoSuchKey: not found 404"), { name: "S3Error", code: "AccessDenied" }))).toBe(false);
    expect(isAbsent(Object.assign(new Error("x"), { code: "NoSuchKey" }))).toBe(false); // not the S3 client's error
  });
});

describe("S3 XML", () => {
  test("values are decoded once: named entities and numeric references", async () => {
    const { xmlValue } = await import("../../src/store/s3/sigv4.ts");
    expect(xmlValue("<Key>a&amp;b&lt;c&gt;&quot;d&apos;&#38;&#x26;&amp;amp;</Key>", "Key")).toBe(`a&b<c>"d'&&&amp;`);
    expect(xmlValue("<Code>NoSuchKey</Code>", "Code")).toBe("NoSuchKey");
    expect(xmlValue("<Code>x</Code>", "Message")).toBeUndefined();
  });
});
