// Failures decide by their type and fields, never by their message: each decision that once read
// a message is pinned here by a case whose message would have misled it.
import { describe, expect, test } from "bun:test";
import { missingContent } from "../../src/cache/closure.ts";
import { verifyStore } from "../../src/cache/verify.ts";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_MANIFEST } from "../../src/oci/mediatypes.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";
import { makeIndex } from "../helpers/images.ts";
import { createTestRegistry } from "../helpers/registry.ts";

const noDns = async () => [] as string[];

async function failureOf(p: Promise<unknown>): Promise<UpstreamError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

describe("upstream failures restated under another name use the detail, not the message", () => {
  test("an UpstreamError keeps what happened apart from whose it is", () => {
    const e = new UpstreamError("up.test via http://m.test/p", "denied", "token server auth.test refused", 401);
    expect(e.detail).toBe("token server auth.test refused");
    expect(e.message).toBe("upstream up.test via http://m.test/p: token server auth.test refused");
  });

  test("a mirror's token refusal is the upstream's, said once (a mirror's id has spaces)", async () => {
    const f = (async (input: string | URL | Request) => {
      const url = new URL(String(input instanceof Request ? input.url : input));
      if (url.host === "auth.test") return new Response("no", { status: 401 });
      return new Response("{}", { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="http://auth.test/token",service="m"' } });
    }) as unknown as typeof fetch;
    const u = createUpstreams({
      registries: [{ name: "up.test", scheme: "http", endpoints: [{ url: "http://m.test/proxy" }], originFallback: false, tokenHosts: ["auth.test"] }],
      timeoutMs: 1000, lookup: noDns, fetch: f,
    });
    const e = await failureOf(u.request("up.test", { method: "GET", repository: "app", path: "manifests/v1" }));
    expect(e.failure).toBe("denied");
    expect(e.message).toBe("upstream up.test: token server auth.test refused the anonymous request (HTTP 401)");
  });

  test("every endpoint failing: one message, each endpoint's detail in turn", async () => {
    const f = (async (input: string | URL | Request) => {
      const url = new URL(String(input instanceof Request ? input.url : input));
      throw Object.assign(new Error(`refused by ${url.host}`), { code: "ECONNREFUSED" });
    }) as unknown as typeof fetch;
    const u = createUpstreams({
      registries: [{ name: "up.test", scheme: "http", endpoints: [{ url: "http://m.test" }] }],
      timeoutMs: 1000, lookup: noDns, fetch: f,
    });
    const e = await failureOf(u.request("up.test", { method: "GET", repository: "app", path: "manifests/v1" }));
    expect(e.failure).toBe("unreachable");
    expect(e.detail).toBe("cannot reach m.test: ECONNREFUSED: refused by m.test; then cannot reach up.test: ECONNREFUSED: refused by up.test");
    expect(e.message).toBe(`upstream up.test: ${e.detail}`);
  });
});

describe("a TLS handshake failure is known by its code", () => {
  const upstreams = (err: Error) => createUpstreams({
    registries: [{ name: "tls.test", scheme: "https" }], timeoutMs: 1000, lookup: noDns,
    fetch: (async () => {
      throw err;
    }) as unknown as typeof fetch,
  });

  test("EPROTO says the handshake failed and what to check", async () => {
    const e = await failureOf(upstreams(Object.assign(new Error("something else entirely"), { code: "EPROTO" }))
      .request("tls.test", { method: "GET", repository: "app", path: "manifests/v1" }));
    expect(e.message).toContain("TLS handshake with tls.test failed");
  });

  test("a message that merely mentions a handshake is an ordinary connection failure", async () => {
    const e = await failureOf(upstreams(Object.assign(new Error("handshake interrupted"), { code: "ECONNRESET" }))
      .request("tls.test", { method: "GET", repository: "app", path: "manifests/v1" }));
    expect(e.message).toBe("upstream tls.test: cannot reach tls.test: ECONNRESET: handshake interrupted");
  });
});

describe("tag lists without an upstream answer: the failure is the reason's kind", () => {
  test("upstream 404 and nothing cached: NAME_UNKNOWN", async () => {
    const r = await createTestRegistry();
    const res = await r.request("/v2/nothing/tags/list");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe("NAME_UNKNOWN");
  });

  test("upstream 500 and nothing cached: 502, though the words say nothing of 'unknown' either way", async () => {
    const r = await createTestRegistry();
    r.upstream.intercept = () => new Response("down", { status: 500 });
    const res = await r.request("/v2/nothing/tags/list");
    expect(res.status).toBe(502);
  });

  test("air-gapped and nothing cached: NAME_UNKNOWN (not cached, and no upstream may be asked)", async () => {
    const r = await createTestRegistry({ airGapped: true });
    const res = await r.request("/v2/nothing/tags/list");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe("NAME_UNKNOWN");
  });
});

describe("missing content: an absent manifest is a field, not a phrase", () => {
  test("a manifest that is not stored is marked absent", async () => {
    const r = await createTestRegistry();
    const d = digestOf(new TextEncoder().encode("nothing"));
    const missing = await missingContent(r.store, d);
    expect(missing.manifestAbsent).toBe(true);
    expect([...missing]).toEqual([`manifest ${d}`]);
  });

  test("an index with one platform pulled and one never pulled lacks nothing", async () => {
    const r = await createTestRegistry();
    const index = makeIndex(["amd64", "arm64"]);
    r.upstream.add("app", "v1", index);
    await r.cache.pullImage({ upstream: "up.test", repository: "app" }, "v1", [{ os: "linux", architecture: "amd64" }]);
    expect(await r.store.readManifest(index.children[1]!.digest)).toBeNull();
    const missing = await missingContent(r.store, index.digest);
    expect({ absent: missing.manifestAbsent, missing: [...missing] }).toEqual({ absent: undefined, missing: [] });
  });

  test("verify calls a record dangling when its own manifest is absent", async () => {
    const r = await createTestRegistry();
    const gone = digestOf(new TextEncoder().encode("gone"));
    const t = new Date().toISOString();
    await r.store.writeTag({ upstream: "up.test", repository: "app", tag: "v1", digest: gone, mediaType: OCI_MANIFEST, size: 1, created: t, lastPulled: t, checked: t });
    const report = await verifyStore(r.store, { repair: false });
    expect(report.dangling).toEqual([`up.test/app:v1 -> ${gone}`]);
    expect(report.incomplete).toEqual([]);
  });
});
