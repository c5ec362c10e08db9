// What a hostile upstream can no longer do, in-process (the e2e security suites repeat these with
// real servers): one upstream's bytes reach another's clients only once verified, one download per
// (upstream, digest), ranges held back until verified, manifests served only as manifests.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { digestOf } from "../../src/oci/digest.ts";
import { makeImage, makeIndex } from "../helpers/images.ts";
import { waitFor } from "../helpers/procs.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const errorOf = async (res: Response) => ({ status: res.status, ...((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]! });
const hostOf = (req: Request) => new URL(req.url).host;

/** A body that sends `bytes` in pieces of `chunk` bytes, `delayMs` apart. */
function slowBody(bytes: Uint8Array, chunk: number, delayMs: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    async pull(c) {
      if (off >= bytes.byteLength) return c.close();
      if (off > 0) await Bun.sleep(delayMs);
      c.enqueue(bytes.slice(off, off + chunk));
      off += chunk;
    },
  });
}

describe("redirects the cache refuses", () => {
  test.each(["file:///etc/passwd", "data:application/json,{}"])("a redirect to %s is a 502 naming the upstream; nothing stored", async (location) => {
    const r = await createTestRegistry();
    r.upstream.add("app", "v1", makeImage());
    r.upstream.intercept = () => new Response(null, { status: 302, headers: { Location: location } });
    const e = await errorOf(await r.request("/v2/app/manifests/v1"));
    expect(e.status).toBe(502);
    expect(e.message).toContain("up.test");
    expect(e.message).toMatch(/only http and https/);
    expect(readdirSync(join(r.root, "manifests/sha256"))).toEqual([]);
    expect(readdirSync(join(r.root, "repositories"))).toEqual([]);
  });
});

describe("content is keyed by upstream until verified", () => {
  test("a stalled download of a digest on one upstream does not hold clients of another", async () => {
    const r = await createTestRegistry();
    const img = makeImage({ content: 4096 });
    const layer = img.blobs[1]!;
    r.upstream.add("app", "v1", img);
    r.upstream.intercept = (req) => (hostOf(req) === "evil.test" ? new Response(new ReadableStream({ pull: () => new Promise(() => {}) })) : undefined);
    const stalled = r.request(`/v2/evil.test/app/blobs/${layer.digest}`);
    await waitFor("the stalled download to start", async () => r.upstream.log.includes(`GET /v2/app/blobs/${layer.digest}`));
    const honest = await r.request(`/v2/app/blobs/${layer.digest}`);
    expect(honest.status).toBe(200);
    expect(digestOf(new Uint8Array(await honest.arrayBuffer()))).toBe(layer.digest);
    void stalled.then((res) => res.body?.cancel()).catch(() => {});
  });

  test("a size another upstream's manifest declares does not fail an honest upstream's blob", async () => {
    const r = await createTestRegistry();
    const img = makeImage({ content: 2048 });
    const layer = img.blobs[1]!;
    r.upstream.add("app", "v1", img);
    const lie = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: img.blobs[0]!.digest, size: 1 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer.digest, size: 1 }],
    }));
    r.upstream.intercept = (req) => hostOf(req) === "evil.test" && req.url.includes("/manifests/")
      ? new Response(lie, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } }) : undefined;
    expect((await r.request("/v2/evil.test/app/manifests/v1")).status).toBe(200);
    const res = await r.request(`/v2/app/blobs/${layer.digest}`);
    expect(res.status).toBe(200);
    expect(digestOf(new Uint8Array(await res.arrayBuffer()))).toBe(layer.digest);
  });

  test("40 clients on one cold blob cost exactly one upstream download, ten rounds in a row", async () => {
    const r = await createTestRegistry();
    for (let round = 0; round < 10; round++) {
      const img = makeImage({ content: 64 * 1024 });
      const layer = img.blobs[1]!;
      r.upstream.add(`app${round}`, "v1", img);
      const bodies = await Promise.all(Array.from({ length: 40 }, async () => new Uint8Array(await (await r.request(`/v2/app${round}/blobs/${layer.digest}`)).arrayBuffer())));
      expect(bodies.every((b) => digestOf(b) === layer.digest)).toBe(true);
      expect(r.upstream.log.filter((l) => l === `GET /v2/app${round}/blobs/${layer.digest}`)).toHaveLength(1);
    }
  });
});

describe("ranges of a blob still downloading", () => {
  async function rangeWhileDownloading(lastByteWrong: boolean) {
    const r = await createTestRegistry();
    const img = makeImage({ content: 200_000, uncompressed: true });
    const layer = img.blobs[1]!;
    r.upstream.add("app", "v1", img);
    const bytes = layer.bytes.slice();
    if (lastByteWrong) bytes[bytes.byteLength - 1]! ^= 0xff;
    r.upstream.intercept = (req) => (req.url.includes("/blobs/") ? new Response(slowBody(bytes, 64 * 1024, 100), { headers: { "Content-Length": String(bytes.byteLength) } }) : undefined);
    const whole = r.request(`/v2/app/blobs/${layer.digest}`).then((res) => res.arrayBuffer()).catch((e) => e);
    await waitFor("the download to start", async () => r.upstream.log.includes(`GET /v2/app/blobs/${layer.digest}`));
    const res = await r.request(`/v2/app/blobs/${layer.digest}`, { headers: { Range: "bytes=0-99" } });
    const body = await res.arrayBuffer().then((b) => new Uint8Array(b), () => null);
    await whole;
    return { status: res.status, body, layer };
  }

  test("a range that ends early is not completed before the whole blob is verified", async () => {
    const { body } = await rangeWhileDownloading(true);
    expect(body === null || body.byteLength < 100).toBe(true);
  });

  test("with honest bytes the same range completes once verified", async () => {
    const { status, body, layer } = await rangeWhileDownloading(false);
    expect(status).toBe(206);
    expect(body).toEqual(layer.bytes.slice(0, 100));
  });
});

describe("what the cache serves as a manifest", () => {
  const manifestWith = (mediaType: string) => new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2, mediaType, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"a".repeat(64)}`, size: 2 }, layers: [],
  }));

  test.each(["text/html", "application/vnd.oci.image.manifest.v1+json\u0007"])("media type %j is refused when fetched and never stored", async (mediaType) => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response(manifestWith(mediaType), { headers: { "Content-Type": "text/html" } });
    const e = await errorOf(await r.request("/v2/app/manifests/v1"));
    expect(e.status).toBe(502);
    expect(e.code).toBe("MANIFEST_INVALID");
    expect(readdirSync(join(r.root, "manifests/sha256"))).toEqual([]);
  });

  test("an application/*+json artifact type is served as itself, with nosniff", async () => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response(manifestWith("application/vnd.example+json"));
    const res = await r.request("/v2/app/manifests/v1");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.example+json");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  test("an unexpected failure is a 500 UNKNOWN whose detail stays in the log", async () => {
    const r = await createTestRegistry();
    r.store.statBlob = async () => {
      throw new Error("EIO: secret path /var/lib/x");
    };
    const e = await errorOf(await r.request(`/v2/app/blobs/sha256:${"b".repeat(64)}`));
    expect(e).toMatchObject({ status: 500, code: "UNKNOWN" });
    expect(e.message).not.toContain("secret");
  });
});

describe("pulls by digest", () => {
  test("an image pulled by digest alone gets a record; the platform manifests of an index do not", async () => {
    const r = await createTestRegistry();
    const index = makeIndex(["amd64", "arm64"]);
    r.upstream.add("multi", "v1", index);
    expect((await r.request(`/v2/multi/manifests/${index.digest}`)).status).toBe(200);
    expect((await r.request(`/v2/multi/manifests/${index.children[0]!.digest}`)).status).toBe(200);
    const tags = join(r.root, "repositories/up.test/multi/_tags");
    expect(readdirSync(tags)).toEqual([`${index.digest}.json`]);
    expect(existsSync(join(tags, `${index.children[0]!.digest}.json`))).toBe(false);
  });
});
