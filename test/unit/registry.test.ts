// The request handler in-process over a temp store and a fake upstream.
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { makeImage, makeIndex } from "../helpers/images.ts";
import { waitFor } from "../helpers/procs.ts";
import { createTestRegistry } from "../helpers/registry.ts";

async function errorCode(res: Response) {
  const body = (await res.json()) as { errors: Array<{ code: string }> };
  return body.errors[0]!.code;
}

describe("base and method rules", () => {
  test("/v2/ answers 200 {} with the API version header", async () => {
    const r = await createTestRegistry();
    const res = await r.request("/v2/");
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(await res.text()).toBe("{}");
  });

  test.each(["PUT", "POST", "PATCH", "DELETE"])("%s is refused with 405 UNSUPPORTED", async (method) => {
    const r = await createTestRegistry();
    const res = await r.request("/v2/x/manifests/v1", { method });
    expect(res.status).toBe(405);
    expect(await errorCode(res)).toBe("UNSUPPORTED");
    const upload = await r.request("/v2/x/blobs/uploads/", { method: "POST" });
    expect(upload.status).toBe(405);
  });
});

describe("manifests", () => {
  test("a cold tag is fetched, stored and served with identical bytes; GET and HEAD agree", async () => {
    const r = await createTestRegistry();
    const img = makeIndex(["amd64", "arm64"]);
    r.upstream.add("library/app", "v1", img);
    const get = await r.request("/v2/library/app/manifests/v1");
    expect(get.status).toBe(200);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(img.manifest);
    const head = await r.request("/v2/library/app/manifests/v1", { method: "HEAD" });
    for (const h of ["content-type", "content-length", "docker-content-digest"]) {
      expect(head.headers.get(h)).toBe(get.headers.get(h));
    }
    expect(get.headers.get("docker-content-digest")).toBe(img.digest);
    expect(get.headers.get("content-type")).toBe(img.mediaType);
    expect(head.headers.get("content-length")).toBe(String(img.manifest.byteLength));
    expect(await head.text()).toBe("");
    const rec = await r.store.readTag("up.test", "library/app", "v1");
    expect(rec).toMatchObject({ digest: img.digest, mediaType: img.mediaType, size: img.manifest.byteLength });
  });

  test("a manifest by digest is served from the store without asking the upstream", async () => {
    const r = await createTestRegistry();
    const img = makeImage();
    r.upstream.add("app", "v1", img);
    await r.request(`/v2/app/manifests/v1`);
    r.upstream.log.length = 0;
    const res = await r.request(`/v2/app/manifests/${img.digest}`);
    expect(res.status).toBe(200);
    expect(r.upstream.log).toEqual([]);
  });

  test("an upstream 404 is a 404 MANIFEST_UNKNOWN", async () => {
    const r = await createTestRegistry();
    const res = await r.request("/v2/nothere/manifests/v1");
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("MANIFEST_UNKNOWN");
  });

  test("a manifest that does not match its digest is refused and not stored", async () => {
    const r = await createTestRegistry();
    const img = makeImage();
    const other = makeImage();
    r.upstream.intercept = (req) =>
      req.url.includes("/manifests/") ? new Response(other.manifest, { headers: { "Content-Type": other.mediaType } }) : undefined;
    const res = await r.request(`/v2/app/manifests/${img.digest}`);
    expect(res.status).toBe(502);
    expect(await errorCode(res)).toBe("MANIFEST_INVALID");
    expect(readdirSync(join(r.root, "manifests/sha256"))).toEqual([]);
  });

  test("manifests over 4 MiB are refused", async () => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response(new Uint8Array(5 * 1024 * 1024), { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    const res = await r.request("/v2/app/manifests/v1");
    expect(res.status).toBe(502);
    expect(await errorCode(res)).toBe("MANIFEST_INVALID");
  });

  test("schema 1 manifests are refused clearly", async () => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response('{"schemaVersion":1,"name":"x"}', { headers: { "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws" } });
    const res = await r.request("/v2/app/manifests/v1");
    expect(res.status).toBe(415);
    expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toContain("schema 1");
  });

  test("a cached tag is revalidated with HEAD after the interval and refetched only when it moved", async () => {
    const r = await createTestRegistry({ revalidateAfterMs: 60_000 });
    const v1 = makeImage();
    r.upstream.add("app", "latest", v1);
    await r.request("/v2/app/manifests/latest");
    r.upstream.log.length = 0;
    r.clock.advance(30_000);
    await r.request("/v2/app/manifests/latest");
    expect(r.upstream.log).toEqual([]);
    r.clock.advance(31_000);
    let res = await r.request("/v2/app/manifests/latest");
    expect(res.headers.get("docker-content-digest")).toBe(v1.digest);
    expect(r.upstream.log).toEqual(["HEAD /v2/app/manifests/latest"]);
    const v2 = makeImage();
    r.upstream.add("app", "latest", v2);
    r.clock.advance(61_000);
    r.upstream.log.length = 0;
    res = await r.request("/v2/app/manifests/latest");
    expect(res.headers.get("docker-content-digest")).toBe(v2.digest);
    expect(r.upstream.log).toEqual(["HEAD /v2/app/manifests/latest", "GET /v2/app/manifests/latest"]);
  });

  test("a cached tag is served stale, with a warning, when the upstream is down", async () => {
    const r = await createTestRegistry({ revalidateAfterMs: 1000 });
    const img = makeImage();
    r.upstream.add("app", "v1", img);
    await r.request("/v2/app/manifests/v1");
    r.upstream.intercept = () => {
      throw new TypeError("connection refused");
    };
    r.clock.advance(5000);
    const res = await r.request("/v2/app/manifests/v1");
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(img.digest);
    expect(r.warnings.join("\n")).toContain("connection refused");
  });

  test("air-gapped: cached tags are served, nothing else is fetched", async () => {
    const online = await createTestRegistry();
    const img = makeImage();
    online.upstream.add("app", "v1", img);
    expect((await online.request("/v2/app/manifests/v1")).status).toBe(200);
    const r = await createTestRegistry({ airGapped: true, root: online.root, revalidateAfterMs: 0 });
    r.upstream.add("app", "v1", makeImage()); // the upstream moved on; an air-gapped cache never asks
    const cached = await r.request("/v2/app/manifests/v1");
    expect(cached.status).toBe(200);
    expect(cached.headers.get("docker-content-digest")).toBe(img.digest);
    const res = await r.request("/v2/app/manifests/v2");
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("MANIFEST_UNKNOWN");
    expect(r.upstream.log).toEqual([]);
  });

  test("concurrent requests for one cold tag make one upstream fetch", async () => {
    const r = await createTestRegistry();
    r.upstream.add("app", "v1", makeImage());
    const all = await Promise.all(Array.from({ length: 8 }, () => r.request("/v2/app/manifests/v1")));
    expect(all.every((x) => x.status === 200)).toBe(true);
    expect(r.upstream.log.filter((l) => l.includes("/manifests/"))).toEqual(["GET /v2/app/manifests/v1"]);
  });
});

describe("hostile and malformed requests", () => {
  test.each([
    ["/v2/UPPER/manifests/v1", 400, "NAME_INVALID"],
    ["/v2/a%2e%2e/manifests/v1", 400, "NAME_INVALID"],
    ["/v2/a%5cb/manifests/v1", 400, "NAME_INVALID"],
    ["/v2/a%00b/manifests/v1", 400, "NAME_INVALID"],
    // URL parsing resolves dot segments (as Bun.serve does) before routing: they cannot escape.
    ["/v2/a/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404, "NAME_UNKNOWN"],
    ["/v2/app/manifests/bad:tag:x", 400, "DIGEST_INVALID"],
    // An invalid tag names no manifest: 404, as distribution and the conformance suite answer.
    ["/v2/app/manifests/.hidden", 404, "MANIFEST_UNKNOWN"],
    ["/v2/app/manifests/-bad", 404, "MANIFEST_UNKNOWN"],
    [`/v2/app/manifests/${"t".repeat(129)}`, 404, "MANIFEST_UNKNOWN"],
    ["/v2/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"],
    ["/v2/app/blobs/notadigest", 400, "DIGEST_INVALID"],
    ["/v2/app/manifests/v1?ns=evil%2Fhost", 400, "NAME_INVALID"],
    ["/v2/app/manifests/v1?ns=..", 400, "NAME_INVALID"],
    [`/v2/${"a".repeat(300)}/manifests/v1`, 400, "NAME_INVALID"],
    ["/v2/app/nothing/here", 404, "NAME_UNKNOWN"],
  ])("%s -> %d %s, nothing stored, upstream not contacted", async (path, status, code) => {
    const r = await createTestRegistry();
    const res = await r.request(path);
    expect(res.status).toBe(status);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await errorCode(res)).toBe(code);
    expect(r.upstream.log).toEqual([]);
    expect(readdirSync(join(r.root, "repositories"))).toEqual([]);
  });
});

describe("blobs", () => {
  async function withBlob() {
    const r = await createTestRegistry();
    const img = makeImage({ content: 100_000 });
    r.upstream.add("app", "v1", img);
    return { r, blob: img.blobs[1]! };
  }

  test("a cold blob is fetched, verified and stored; a warm one never asks upstream", async () => {
    const { r, blob } = await withBlob();
    const res = await r.request(`/v2/app/blobs/${blob.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(blob.bytes.byteLength));
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(blob.bytes);
    r.upstream.log.length = 0;
    const warm = await r.request(`/v2/app/blobs/${blob.digest}`);
    expect(new Uint8Array(await warm.arrayBuffer())).toEqual(blob.bytes);
    expect(r.upstream.log).toEqual([]);
  });

  test("ranges: 206 with Content-Range, 416 when unsatisfiable, on cold and warm blobs", async () => {
    const { r, blob } = await withBlob();
    const size = blob.bytes.byteLength;
    for (let i = 0; i < 2; i++) {
      const res = await r.request(`/v2/app/blobs/${blob.digest}`, { headers: { Range: "bytes=10-19" } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes 10-19/${size}`);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(blob.bytes.subarray(10, 20));
      await waitFor("the blob to be stored", async () => !!(await r.store.statBlob(blob.digest)));
    }
    const bad = await r.request(`/v2/app/blobs/${blob.digest}`, { headers: { Range: `bytes=${size}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${size}`);
  });

  test("HEAD on a blob gives its size and digest", async () => {
    const { r, blob } = await withBlob();
    const res = await r.request(`/v2/app/blobs/${blob.digest}`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(blob.bytes.byteLength));
    expect(res.headers.get("docker-content-digest")).toBe(blob.digest);
  });

  test("a stored manifest is also served as a blob, without asking upstream", async () => {
    const r = await createTestRegistry({ airGapped: false });
    const img = makeImage();
    r.upstream.add("app", "v1", img);
    await r.request("/v2/app/manifests/v1");
    r.upstream.log.length = 0;
    const res = await r.request(`/v2/app/blobs/${img.digest}`);
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(img.manifest);
    expect(r.upstream.log).toEqual([]);
  });

  test("an upstream 404 is a 404 BLOB_UNKNOWN", async () => {
    const r = await createTestRegistry();
    const res = await r.request(`/v2/app/blobs/sha256:${"0".repeat(64)}`);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("BLOB_UNKNOWN");
  });
});

describe("tags/list", () => {
  test("from upstream, paginated with a Link header", async () => {
    const r = await createTestRegistry();
    for (const t of ["a", "b", "c"]) r.upstream.add("app", t, makeImage());
    const all = await r.request("/v2/app/tags/list");
    expect(await all.json()).toEqual({ name: "app", tags: ["a", "b", "c"] });
    expect(all.headers.get("link")).toBeNull();
    const page = await r.request("/v2/app/tags/list?n=2");
    expect(await page.json()).toEqual({ name: "app", tags: ["a", "b"] });
    expect(page.headers.get("link")).toBe('</v2/app/tags/list?n=2&last=b>; rel="next"');
    expect(r.upstream.log.at(-1)).toBe("GET /v2/app/tags/list?n=2");
    const next = await r.request("/v2/app/tags/list?n=2&last=b");
    expect(await next.json()).toEqual({ name: "app", tags: ["c"] });
    expect(next.headers.get("link")).toBeNull();
  });

  test("from the cached tags when the upstream is unreachable", async () => {
    const r = await createTestRegistry();
    for (const t of ["b", "a", "c"]) r.upstream.add("app", t, makeImage());
    for (const t of ["a", "b", "c"]) await r.request(`/v2/app/manifests/${t}`);
    r.upstream.intercept = () => {
      throw new TypeError("connection refused");
    };
    const res = await r.request("/v2/app/tags/list?n=2");
    expect(await res.json()).toEqual({ name: "app", tags: ["a", "b"] });
    expect(res.headers.get("link")).toBe('</v2/app/tags/list?n=2&last=b>; rel="next"');
    const next = await r.request("/v2/app/tags/list?n=2&last=b");
    expect(await next.json()).toEqual({ name: "app", tags: ["c"] });
  });

  test("unknown repository with nothing cached is 404 NAME_UNKNOWN", async () => {
    const r = await createTestRegistry();
    const res = await r.request("/v2/nothing/tags/list");
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("NAME_UNKNOWN");
  });
});

describe("referrers", () => {
  test("an empty OCI index when the upstream has none", async () => {
    const r = await createTestRegistry();
    const res = await r.request(`/v2/app/referrers/sha256:${"0".repeat(64)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.oci.image.index.v1+json");
    expect(await res.json()).toMatchObject({ schemaVersion: 2, manifests: [] });
  });
});
