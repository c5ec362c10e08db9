// The upstream policy end to end in process: the config key and flag, the client's check of
// client-named upstreams, and the message when credentials were withheld from a token realm.
import { describe, expect, test } from "bun:test";
import { banner } from "../../src/server/banner.ts";
import { guardListed } from "../../src/server/runtime.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";
import { createUpstreams } from "../../src/upstream/client.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";

const req = { method: "GET", repository: "app", path: "manifests/v1" } as const;

describe("the upstreams setting", () => {
  test("defaults to public; the flag overrides the file; errors name the key and the values", () => {
    expect(resolveConfig({}, {}).upstreams).toBe("public");
    expect(resolveConfig({ upstreams: "any" }, {}).upstreams).toBe("any");
    expect(resolveConfig({ upstreams: "listed" }, {}).upstreams).toBe("listed");
    expect(() => resolveConfig({ upstreams: "all" }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ upstreams: "all" }, {})).toThrow('--upstreams: must be public, listed or any, got "all"');
  });

  test("the banner says the policy, and warns about any", () => {
    const text = (upstreams: "public" | "listed" | "any") => banner({ ...resolveConfig({}, {}), upstreams }, 8080, {}).join("\n");
    expect(text("public")).toMatch(/upstreams: public \(/);
    expect(text("public")).not.toMatch(/WARNING/);
    expect(text("listed")).toMatch(/upstreams: listed only/);
    expect(text("any")).toMatch(/\n {2}WARNING: upstreams: any lets every client make this cache contact any host, internal services included/);
  });

  test("the operator's hosts are listed for the guard: default namespace, registries, mirrors, token hosts, image lists", () => {
    const cfg = resolveConfig({ defaultNs: "127.0.10.1:5000" }, {});
    cfg.registries.push({ name: "reg.internal", scheme: "https", originFallback: true, tokenHosts: ["SSO.internal:8443"], endpoints: [{ url: "https://harbor.internal/proxy" }] });
    expect([...guardListed(cfg, ["127.0.10.2:6000"])].sort()).toEqual(["127.0.10.1:5000", "127.0.10.2:6000", "harbor.internal", "reg.internal", "sso.internal:8443"]);
  });
});

describe("the client under upstreams: public", () => {
  const dns: Record<string, string[]> = { "inside.example": ["10.1.2.3"], "outside.example": ["104.16.1.1"] };
  const resolve = async (h: string) => dns[h] ?? [];

  test("a client-named internal upstream is a policy failure before any request; listed and public ones are asked", async () => {
    const asked: string[] = [];
    const fetch = (async (u: string | URL) => (asked.push(new URL(String(u)).host), new Response("{}"))) as typeof globalThis.fetch;
    const u = createUpstreams({
      registries: [{ name: "127.0.10.3:5000", scheme: "http" }], timeoutMs: 1000, fetch,
      guard: { policy: "public", listed: ["127.0.10.3:5000", "127.0.10.4"], resolve },
    });
    for (const name of ["127.0.10.5", "2130709001", "[::ffff:127.0.10.5]", "inside.example", "localhost:5000"]) {
      const e = (await u.request(name, req).catch((x: unknown) => x)) as UpstreamError;
      expect([e.failure, e.upstream]).toEqual(["policy", name]);
      expect(e.message).toMatch(/an internal address, and not listed; to allow it, list it under registries \(or set upstreams: any\)/);
    }
    expect(asked).toEqual([]);
    await u.request("127.0.10.3:5000", req);
    await u.request("outside.example", req);
    await u.request("127.0.10.4", req);
    expect(asked).toEqual(["127.0.10.3:5000", "outside.example", "127.0.10.4"]);
  });
});

describe("credentials withheld from a token realm", () => {
  /** An upstream at 127.0.10.3 that wants a token from `realm`, and accepts only a token got with credentials. */
  function upstream(realm: string) {
    const tokenRequests: Array<string | null> = [];
    const fetch = (async (input: string | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      const auth = new Headers(init?.headers).get("authorization");
      if (url.pathname === "/token") {
        tokenRequests.push(auth);
        return Response.json({ token: auth ? "good" : "anonymous" });
      }
      if (auth === "Bearer good") return new Response("{}");
      return new Response(null, { status: 401, headers: { "WWW-Authenticate": `Bearer realm="${realm}/token",service="reg"` } });
    }) as typeof globalThis.fetch;
    return { fetch, tokenRequests };
  }
  const settings = (tokenHosts?: string[]) => ({ name: "127.0.10.3", scheme: "http" as const, credentials: { user: "u", password: "p" }, tokenHosts });

  test("the error names the realm host, says the credentials were withheld, and points to tokenHosts", async () => {
    const up = upstream("http://auth.other.example");
    const u = createUpstreams({ registries: [settings()], timeoutMs: 1000, fetch: up.fetch });
    const e = (await u.request("127.0.10.3", req).catch((x: unknown) => x)) as UpstreamError;
    expect([e.failure, e.status]).toEqual(["denied", 401]);
    expect(e.message).toContain("refused the anonymous token from auth.other.example (HTTP 401)");
    expect(e.message).toContain("the configured credentials were withheld from that token realm because it is on another domain");
    expect(e.message).toContain("add it to registries[].tokenHosts");
    expect(up.tokenRequests.every((a) => a === null)).toBe(true);
  });

  test("with the realm under tokenHosts the credentials go there and the request works", async () => {
    const up = upstream("http://auth.other.example");
    const u = createUpstreams({ registries: [settings(["auth.other.example"])], timeoutMs: 1000, fetch: up.fetch });
    expect((await u.request("127.0.10.3", req)).status).toBe(200);
    expect(up.tokenRequests[0]).toStartWith("Basic ");
  });

  test("credentials sent and refused still say so", async () => {
    const up = upstream("http://127.0.10.3");
    const refusing = (async (input: string | URL, init?: RequestInit) => {
      const r = await up.fetch(input, init);
      return new URL(String(input)).pathname === "/token" ? r : new Response(null, { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="http://127.0.10.3/token"' } });
    }) as typeof globalThis.fetch;
    const u = createUpstreams({ registries: [settings()], timeoutMs: 1000, fetch: refusing });
    const e = (await u.request("127.0.10.3", req).catch((x: unknown) => x)) as UpstreamError;
    expect(e.message).toMatch(/refused the configured credentials \(HTTP 401\)$/);
  });
});
