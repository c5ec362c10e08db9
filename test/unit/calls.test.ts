// The HTTP surface as one table (the form of go-containerregistry's TestCalls): each row is a
// request to the in-process handler over a store holding one image, and the status, spec code,
// headers and body it must get. The upstream is a fake that also holds the image.
import { beforeAll, describe, expect, test } from "bun:test";
import { makeImage, makeIndex } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const img = makeImage({ content: "calls" });
const index = makeIndex(["amd64", "arm64"]);
const config = img.blobs[0]!;
const layer = img.blobs[1]!;
const missing = `sha256:${"0".repeat(64)}`;

interface Call {
  name: string;
  method?: string;
  url: string;
  headers?: Record<string, string>;
  status: number;
  code?: string;
  want?: Record<string, string | RegExp>;
  body?: string | Uint8Array;
}

const CALLS: Call[] = [
  { name: "ping", url: "/v2/", status: 200, want: { "docker-distribution-api-version": "registry/2.0", "content-type": "application/json" }, body: "{}" },
  { name: "ping without slash", url: "/v2", status: 200, body: "{}" },
  { name: "HEAD ping", method: "HEAD", url: "/v2/", status: 200, body: "" },
  { name: "manifest by tag", url: "/v2/app/manifests/v1", status: 200, want: { "docker-content-digest": img.digest, "content-type": img.mediaType, "content-length": String(img.manifest.byteLength) }, body: img.manifest },
  { name: "manifest by digest", url: `/v2/app/manifests/${img.digest}`, status: 200, want: { "docker-content-digest": img.digest }, body: img.manifest },
  { name: "HEAD manifest", method: "HEAD", url: "/v2/app/manifests/v1", status: 200, want: { "docker-content-digest": img.digest, "content-length": String(img.manifest.byteLength) }, body: "" },
  { name: "index stays whole", url: "/v2/multi/manifests/v1", status: 200, want: { "docker-content-digest": index.digest, "content-type": index.mediaType }, body: index.manifest },
  { name: "unknown tag", url: "/v2/app/manifests/nope", status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "unknown manifest digest", url: `/v2/app/manifests/${missing}`, status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "invalid tag", url: "/v2/app/manifests/-x", status: 404, code: "MANIFEST_UNKNOWN" },
  { name: "invalid digest", url: "/v2/app/manifests/sha256:xyz", status: 400, code: "DIGEST_INVALID" },
  { name: "blob", url: `/v2/app/blobs/${layer.digest}`, status: 200, want: { "docker-content-digest": layer.digest, "accept-ranges": "bytes", "content-type": "application/octet-stream" }, body: layer.bytes },
  { name: "config blob", url: `/v2/app/blobs/${config.digest}`, status: 200, body: config.bytes },
  { name: "HEAD blob", method: "HEAD", url: `/v2/app/blobs/${layer.digest}`, status: 200, want: { "content-length": String(layer.bytes.byteLength) }, body: "" },
  { name: "blob range", url: `/v2/app/blobs/${layer.digest}`, headers: { Range: "bytes=0-9" }, status: 206, want: { "content-range": `bytes 0-9/${layer.bytes.byteLength}`, "content-length": "10" }, body: layer.bytes.slice(0, 10) },
  { name: "suffix range", url: `/v2/app/blobs/${layer.digest}`, headers: { Range: "bytes=-5" }, status: 206, body: layer.bytes.slice(-5) },
  { name: "unsatisfiable range", url: `/v2/app/blobs/${layer.digest}`, headers: { Range: `bytes=${layer.bytes.byteLength}-` }, status: 416, want: { "content-range": `bytes */${layer.bytes.byteLength}` } },
  { name: "manifest on the blobs endpoint", url: `/v2/app/blobs/${img.digest}`, status: 200, body: img.manifest },
  { name: "unknown blob", url: `/v2/app/blobs/${missing}`, status: 404, code: "BLOB_UNKNOWN" },
  { name: "invalid blob digest", url: "/v2/app/blobs/notadigest", status: 400, code: "DIGEST_INVALID" },
  { name: "tags", url: "/v2/app/tags/list", status: 200, want: { "content-type": "application/json" }, body: JSON.stringify({ name: "app", tags: ["v1"] }) },
  { name: "tags of an unknown repository", url: "/v2/nothing/tags/list", status: 404, code: "NAME_UNKNOWN" },
  { name: "bad n", url: "/v2/app/tags/list?n=x", status: 400, code: "SIZE_INVALID" },
  { name: "referrers", url: `/v2/app/referrers/${img.digest}`, status: 200, want: { "content-type": "application/vnd.oci.image.index.v1+json" } },
  { name: "referrers of an invalid digest", url: "/v2/app/referrers/sha256:bad", status: 400, code: "DIGEST_INVALID" },
  { name: "in-path upstream", url: "/v2/up.test/app/manifests/v1", status: 200, body: img.manifest },
  { name: "ns parameter", url: "/v2/app/manifests/v1?ns=up.test", status: 200, body: img.manifest },
  { name: "invalid ns", url: "/v2/app/manifests/v1?ns=evil%2Fhost", status: 400, code: "NAME_INVALID" },
  { name: "upper-case name", url: "/v2/App/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "encoded backslash", url: "/v2/a%5cb/manifests/v1", status: 400, code: "NAME_INVALID" },
  { name: "push: upload", method: "POST", url: "/v2/app/blobs/uploads/", status: 405, code: "UNSUPPORTED", want: { allow: "GET, HEAD" } },
  { name: "push: manifest", method: "PUT", url: "/v2/app/manifests/v1", status: 405, code: "UNSUPPORTED" },
  { name: "delete", method: "DELETE", url: `/v2/app/blobs/${layer.digest}`, status: 405, code: "UNSUPPORTED" },
  { name: "not an API path", url: "/v3/", status: 404, code: "NAME_UNKNOWN" },
  { name: "no such resource", url: "/v2/app/nothing/here", status: 404, code: "NAME_UNKNOWN" },
];

describe("the HTTP surface", () => {
  let request: (path: string, init?: RequestInit) => Promise<Response>;
  beforeAll(async () => {
    const r = await createTestRegistry();
    r.upstream.add("app", "v1", img);
    r.upstream.add("multi", "v1", index);
    request = r.request;
  });

  test.each(CALLS.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const res = await request(c.url, { method: c.method ?? "GET", headers: c.headers });
    expect(res.status).toBe(c.status);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    for (const [k, v] of Object.entries(c.want ?? {})) {
      if (v instanceof RegExp) expect(res.headers.get(k) ?? "").toMatch(v);
      else expect(res.headers.get(k)).toBe(v);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (c.code) expect(JSON.parse(new TextDecoder().decode(bytes)).errors[0].code).toBe(c.code);
    if (c.body !== undefined) expect(bytes).toEqual(typeof c.body === "string" ? new TextEncoder().encode(c.body) : new Uint8Array(c.body));
  });
});
