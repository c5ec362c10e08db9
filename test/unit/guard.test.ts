// Where the cache may go: redirect and realm rules, internal addresses, credentials' destinations,
// and the bounds on bodies, tokens and concurrent requests.
import { describe, expect, test } from "bun:test";
import { BoundedMap } from "../../src/oci/bounded-map.ts";
import { createTokenCache } from "../../src/upstream/auth.ts";
import { readBody } from "../../src/upstream/body.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";
import { createGuard, credentialsMayGoTo, isInternalAddress, registrableDomain } from "../../src/upstream/guard.ts";
import { createLimiter, releaseWhenDone } from "../../src/upstream/limiter.ts";

describe("addresses and domains", () => {
  test.each([
    ["127.0.0.1", true], ["10.1.2.3", true], ["172.16.0.1", true], ["172.32.0.1", false], ["192.168.1.1", true],
    ["169.254.169.254", true], ["100.64.0.1", true], ["0.0.0.0", true], ["224.0.0.1", true], ["8.8.8.8", false],
    ["::1", true], ["::", true], ["fe80::1", true], ["fd00::1", true], ["::ffff:127.0.0.1", true], ["::ffff:7f00:1", true],
    ["2606:4700::1", false], ["[::1]", true], ["not-an-ip", true],
  ])("%s internal: %p", (ip, internal) => {
    expect(isInternalAddress(ip)).toBe(internal);
  });

  test.each([
    ["auth.docker.io", "docker.io"], ["registry-1.docker.io", "docker.io"], ["registry.gitlab.com", "gitlab.com"],
    ["a.b.co.uk", "b.co.uk"], ["co.uk", null], ["1.2.3.4", null], ["x.dkr.ecr.us-east-1.amazonaws.com", "us-east-1.amazonaws.com"],
  ])("registrable domain of %s is %p", (host, domain) => {
    expect(registrableDomain(host)).toBe(domain);
  });

  test("credentials go to the upstream's host, its registrable domain, or a listed token host only", () => {
    const hub = new URL("https://registry-1.docker.io");
    expect(credentialsMayGoTo(new URL("https://auth.docker.io/token"), hub)).toBe(true);
    expect(credentialsMayGoTo(new URL("https://registry.gitlab.com/jwt"), new URL("https://gitlab.com"))).toBe(true);
    expect(credentialsMayGoTo(new URL("https://evil.example/token"), hub)).toBe(false);
    expect(credentialsMayGoTo(new URL("https://docker.io.evil.example/token"), hub)).toBe(false);
    expect(credentialsMayGoTo(new URL("http://127.0.0.25/token"), new URL("http://127.0.0.21"))).toBe(false);
    expect(credentialsMayGoTo(new URL("http://127.0.0.25/token"), new URL("http://127.0.0.21"), ["127.0.0.25"])).toBe(true);
    expect(credentialsMayGoTo(new URL("https://sso.corp.example/t"), new URL("https://harbor.corp2.example"), ["sso.corp.example"])).toBe(true);
  });
});

describe("the guard on redirects and realms", () => {
  const from = new URL("https://registry.example");
  const refusal = async (p: Promise<void>) => (await p.then(() => null, (e: Error) => e.message)) ?? "followed";

  test("only http and https, never from HTTPS down to HTTP", async () => {
    const g = createGuard({ listedOnly: false, listed: new Set() });
    expect(await refusal(g.check(new URL("file:///etc/passwd"), from, "redirected"))).toMatch(/file: URL/);
    expect(await refusal(g.check(new URL("data:text/plain,x"), from, "redirected"))).toMatch(/data: URL/);
    expect(await refusal(g.check(new URL("http://cdn.example/x"), from, "redirected"))).toMatch(/down to plain HTTP/);
    expect(await refusal(g.check(new URL("https://cdn.example/x"), from, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://127.0.0.1/x"), new URL("http://up"), "redirected"))).toBe("followed");
  });

  test("with upstreams: listed, internal addresses are refused unless listed, by resolved address", async () => {
    const dns: Record<string, string[]> = { "cdn.example": ["104.16.1.1"], "sneaky.example": ["10.0.0.5"], localhost: ["127.0.0.1"] };
    const g = createGuard({ listedOnly: true, listed: new Set(["mirror.internal:5000"]), resolve: async (h) => dns[h] ?? [] });
    const up = new URL("http://up.example");
    expect(await refusal(g.check(new URL("http://cdn.example/b"), up, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://sneaky.example/b"), up, "redirected"))).toMatch(/10\.0\.0\.5.*internal/);
    expect(await refusal(g.check(new URL("http://localhost:8080/b"), up, "redirected"))).toMatch(/internal/);
    expect(await refusal(g.check(new URL("http://2130706433/b"), up, "redirected"))).toMatch(/127\.0\.0\.1.*internal/);
    expect(await refusal(g.check(new URL("http://[::1]/b"), up, "redirected"))).toMatch(/internal/);
    expect(await refusal(g.check(new URL("http://mirror.internal:5000/b"), up, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://nowhere.example/b"), up, "redirected"))).toMatch(/no address/);
  });
});

describe("bounds", () => {
  const limits = { maxBytes: 1000, idleMs: 100, deadlineMs: 300 };
  const errorOf = (p: Promise<unknown>) => p.then(() => null, (e) => e as UpstreamError);

  test("a body over the limit is refused, announced or not", async () => {
    expect((await errorOf(readBody(new Response("x".repeat(2000)), "u", "it", limits)))?.failure).toBe("too-large");
    const endless = new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(512)) });
    expect((await errorOf(readBody(new Response(endless), "u", "it", limits)))?.failure).toBe("too-large");
    expect(new TextDecoder().decode(await readBody(new Response("ok"), "u", "it", limits))).toBe("ok");
  });

  test("a stalled body and a trickle both end at their deadlines", async () => {
    const stalled = new ReadableStream({ pull: () => new Promise(() => {}) });
    const e1 = await errorOf(readBody(new Response(stalled), "u", "it", limits));
    expect(e1?.failure).toBe("timeout");
    expect(e1?.message).toMatch(/no data .* within 100 ms/);
    const trickle = new ReadableStream({ pull: async (c) => { await Bun.sleep(50); c.enqueue(new Uint8Array(1)); } });
    const started = Date.now();
    const e2 = await errorOf(readBody(new Response(trickle), "u", "it", limits));
    expect(e2?.message).toMatch(/not complete within 300 ms/);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test("the token cache drops expired tokens and stays within its byte budget", async () => {
    let now = 0;
    let n = 0;
    const big = "t".repeat(60 * 1024);
    const tokens = createTokenCache({
      now: () => now, timeoutMs: 1000,
      fetch: (async () => Response.json({ token: `${big}${n++}`, expires_in: 300 })) as unknown as typeof fetch,
    });
    for (let i = 0; i < 400; i++) await tokens.obtain({ upstream: "u", realm: new URL("http://auth/t"), scope: `repository:r${i}:pull` });
    expect(tokens.stats().bytes).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(tokens.stats().tokens).toBeLessThan(400);
    expect(tokens.cached("u", "repository:r399:pull")).toBeDefined();
    now += 301_000;
    await tokens.obtain({ upstream: "u", realm: new URL("http://auth/t"), scope: "repository:fresh:pull" });
    expect(tokens.stats().tokens).toBe(1);
  });

  test("a token response over 64 KiB is refused", async () => {
    const tokens = createTokenCache({
      now: Date.now, timeoutMs: 1000, fetch: (async () => Response.json({ token: "t".repeat(1024 * 1024) })) as unknown as typeof fetch,
    });
    const e = await errorOf(tokens.obtain({ upstream: "u", realm: new URL("http://auth/t"), scope: "s" }));
    expect(e?.failure).toBe("too-large");
    expect(tokens.stats().tokens).toBe(0);
  });

  test("a bounded map forgets the least recently used entry first", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2);
    m.get("a");
    m.set("c", 3);
    expect([m.has("a"), m.has("b"), m.has("c")]).toEqual([true, false, true]);
  });

  test("one upstream's requests wait for a slot; the slot is held until the body ends", async () => {
    const limiter = createLimiter({ perUpstream: 2, maxWaiting: 1 });
    const r1 = (await limiter.acquire("slow", 1000)) as () => void;
    const r2 = (await limiter.acquire("slow", 1000)) as () => void;
    expect(await limiter.acquire("slow", 20)).toBe(false); // waited 20 ms, no slot
    expect(typeof (await limiter.acquire("other", 20))).toBe("function"); // other upstreams are not affected
    const waiting = limiter.acquire("slow", 1000);
    expect(await limiter.acquire("slow", 1000)).toBe(false); // too many waiting
    const res = releaseWhenDone(new Response("body"), r1);
    expect(limiter.active("slow")).toBe(2);
    await res.text();
    expect(typeof (await waiting)).toBe("function");
    r2();
    releaseWhenDone(new Response(null), () => {});
  });
});
