// The upstream client: bearer challenges, token reuse, redirects without Authorization.
import { describe, expect, test } from "bun:test";
import { createUpstreams } from "../../src/upstream/client.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";
import { parseChallenge } from "../../src/upstream/auth.ts";

/** Unit tests never ask DNS (this machine's resolver can stall for seconds). */
const noDns = async () => [] as string[];

interface Seen { url: string; auth: string | null }

function tokenUpstream(opts: { tokenStatus?: number } = {}) {
  const seen: Seen[] = [];
  const f = (async (input: string | URL | Request, init?: RequestInit) => {
    const req = new Request(input as string, init);
    const url = new URL(req.url);
    seen.push({ url: `${req.method} ${url.host}${url.pathname}${url.search}`, auth: req.headers.get("authorization") });
    if (url.host === "auth.test") {
      if (opts.tokenStatus) return new Response("no", { status: opts.tokenStatus });
      return Response.json({ token: `tok-${url.searchParams.get("scope")}`, expires_in: 300 });
    }
    if (url.host === "cdn.test") return new Response("blob-bytes");
    const want = `Bearer tok-repository:${url.pathname.split("/").slice(2, -2).join("/")}:pull`;
    if (req.headers.get("authorization") !== want) {
      return new Response("{}", {
        status: 401,
        headers: { "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test",scope="repository:x:pull"' },
      });
    }
    if (url.pathname.includes("/blobs/")) return new Response(null, { status: 307, headers: { Location: "https://cdn.test/blob?sig=1" } });
    return new Response("manifest");
  }) as typeof fetch;
  return { seen, fetch: f };
}

describe("upstream client", () => {
  test("parses bearer challenges", () => {
    expect(parseChallenge('Bearer realm="https://a/token",service="s",scope="repository:x:pull"')).toEqual({
      scheme: "bearer", params: { realm: "https://a/token", service: "s", scope: "repository:x:pull" },
    });
    expect(parseChallenge('Basic realm="r"')?.scheme).toBe("basic");
    expect(parseChallenge("Negotiate")).toBeNull();
  });

  test("answers a bearer challenge anonymously and reuses the token for the same scope", async () => {
    const up = tokenUpstream();
    const u = createUpstreams({ registries: [], timeoutMs: 1000, lookup: noDns, fetch: up.fetch });
    const r1 = await u.request("reg.test", { method: "GET", repository: "library/a", path: "manifests/v1" });
    expect(await r1.text()).toBe("manifest");
    const r2 = await u.request("reg.test", { method: "GET", repository: "library/a", path: "manifests/v2" });
    expect(r2.status).toBe(200);
    const tokenFetches = up.seen.filter((s) => s.url.includes("auth.test"));
    expect(tokenFetches).toHaveLength(1);
    expect(tokenFetches[0]!.url).toContain("scope=repository%3Alibrary%2Fa%3Apull");
    expect(tokenFetches[0]!.auth).toBeNull();
    // A second repository: the known challenge lets the client fetch its token without a 401 first.
    up.seen.length = 0;
    await u.request("reg.test", { method: "GET", repository: "library/b", path: "manifests/v1" });
    expect(up.seen.map((s) => s.url.split("?")[0])).toEqual(["GET auth.test/token", "GET reg.test/v2/library/b/manifests/v1"]);
  });

  test("concurrent requests share one token fetch", async () => {
    const up = tokenUpstream();
    const u = createUpstreams({ registries: [], timeoutMs: 1000, lookup: noDns, fetch: up.fetch });
    await Promise.all(Array.from({ length: 5 }, () => u.request("reg.test", { method: "GET", repository: "r", path: "manifests/v1" })));
    expect(up.seen.filter((s) => s.url.includes("auth.test"))).toHaveLength(1);
  });

  test("follows a blob redirect without sending Authorization to the other host", async () => {
    const up = tokenUpstream();
    const u = createUpstreams({ registries: [], timeoutMs: 1000, lookup: noDns, fetch: up.fetch });
    const res = await u.request("reg.test", { method: "GET", repository: "r", path: `blobs/sha256:${"a".repeat(64)}` });
    expect(await res.text()).toBe("blob-bytes");
    const cdn = up.seen.find((s) => s.url.includes("cdn.test"))!;
    expect(cdn.auth).toBeNull();
  });

  test("a refused token request is a 'denied' UpstreamError naming the upstream", async () => {
    const up = tokenUpstream({ tokenStatus: 401 });
    const u = createUpstreams({ registries: [], timeoutMs: 1000, lookup: noDns, fetch: up.fetch });
    const err = await u.request("reg.test", { method: "GET", repository: "r", path: "manifests/v1" }).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).failure).toBe("denied");
    expect((err as Error).message).toContain("reg.test");
  });

  test("connection failures and timeouts are classified", async () => {
    const refused = createUpstreams({ registries: [], timeoutMs: 1000, lookup: noDns, fetch: (async () => { throw new TypeError("ECONNREFUSED"); }) as unknown as typeof fetch });
    expect(((await refused.request("x.test", { method: "GET", repository: "r", path: "manifests/v1" }).catch((e) => e)) as UpstreamError).failure).toBe("unreachable");
    const hang = createUpstreams({
      registries: [], timeoutMs: 50, lookup: noDns,
      fetch: ((_: unknown, init: RequestInit) => new Promise((_, reject) => init.signal!.addEventListener("abort", () => reject(new Error("aborted"))))) as unknown as typeof fetch,
    });
    expect(((await hang.request("x.test", { method: "GET", repository: "r", path: "manifests/v1" }).catch((e) => e)) as UpstreamError).failure).toBe("timeout");
  });

  test("uses the configured scheme and docker.io's real endpoint", async () => {
    const urls: string[] = [];
    const f = (async (input: string | URL) => {
      urls.push(String(input));
      return new Response("ok");
    }) as typeof fetch;
    const u = createUpstreams({ registries: [{ name: "local.test:5000", scheme: "http" }], timeoutMs: 1000, lookup: noDns, fetch: f });
    await u.request("local.test:5000", { method: "GET", repository: "a", path: "manifests/v1" });
    await u.request("docker.io", { method: "GET", repository: "library/nginx", path: "manifests/v1" });
    expect(urls).toEqual(["http://local.test:5000/v2/a/manifests/v1", "https://registry-1.docker.io/v2/library/nginx/manifests/v1"]);
  });
});
