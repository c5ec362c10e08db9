// Where the cache may go: the upstream policy on client-named upstreams, redirects and realms,
// and the bounds on bodies, tokens and concurrent requests.
import { describe, expect, test } from "bun:test";
import { BoundedMap } from "../../src/lib/bounded-map.ts";
import { createTokenCache } from "../../src/upstream/auth.ts";
import { readBody } from "../../src/upstream/body.ts";
import { UpstreamError } from "../../src/upstream/errors.ts";
import { createGuard, GuardRefusal } from "../../src/upstream/guard.ts";
import { createLimiter, releaseWhenDone } from "../../src/upstream/limiter.ts";

describe("the guard on upstreams, redirects and realms", () => {
  const from = new URL("https://registry.example");
  const refusal = async (p: Promise<void>) => (await p.then(() => null, (e: Error) => e.message)) ?? "followed";
  const dns: Record<string, string[]> = {
    "cdn.example": ["104.16.1.1"], "sneaky.example": ["10.0.0.5"], localhost: ["127.0.0.1"], "mixed.example": ["104.16.1.1", "169.254.169.254"],
    "v6.example": ["2606:4700::1111"], "mapped.example": ["::ffff:127.0.0.1"],
  };
  const resolve = async (h: string) => {
    if (!dns[h]) throw new Error(`getaddrinfo ENOTFOUND ${h}`);
    return dns[h];
  };

  test("only http and https, never from HTTPS down to HTTP, under every policy", async () => {
    for (const policy of ["any", "public", "listed"] as const) {
      const g = createGuard({ policy, listed: [], resolve });
      expect(await refusal(g.check(new URL("file:///etc/passwd"), from, "redirected"))).toMatch(/file: URL/);
      expect(await refusal(g.check(new URL("data:text/plain,x"), from, "redirected"))).toMatch(/data: URL/);
      expect(await refusal(g.check(new URL("http://cdn.example/x"), from, "redirected"))).toMatch(/down to plain HTTP/);
      expect(await refusal(g.check(new URL("https://cdn.example/x"), from, "redirected"))).toBe("followed");
    }
    const any = createGuard({ policy: "any", listed: [] });
    expect(await refusal(any.check(new URL("http://127.0.0.1/x"), new URL("http://up"), "redirected"))).toBe("followed");
    expect(await refusal(any.checkUpstream(new URL("https://127.0.0.1")))).toBe("followed");
  });

  test.each(["public", "listed"] as const)("upstreams: %s: redirects and realms to internal addresses are refused unless listed, by every address", async (policy) => {
    const g = createGuard({ policy, listed: ["mirror.internal:5000", "127.0.10.9"], resolve });
    const up = new URL("http://up.example");
    expect(await refusal(g.check(new URL("http://cdn.example/b"), up, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://v6.example/b"), up, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://sneaky.example/b"), up, "redirected"))).toMatch(/sneaky\.example \(10\.0\.0\.5\): an internal address/);
    expect(await refusal(g.check(new URL("http://mixed.example/b"), up, "redirected"))).toMatch(/169\.254\.169\.254/);
    expect(await refusal(g.check(new URL("http://mapped.example/b"), up, "redirected"))).toMatch(/127\.0\.0\.1/);
    expect(await refusal(g.check(new URL("http://localhost:8080/b"), up, "redirected"))).toMatch(/internal/);
    expect(await refusal(g.check(new URL("http://[::1]/b"), up, "redirected"))).toMatch(/internal/);
    expect(await refusal(g.check(new URL("http://mirror.internal:5000/b"), up, "redirected"))).toBe("followed");
    expect(await refusal(g.check(new URL("http://nowhere.example/b"), up, "redirected"))).toMatch(/does not resolve/);
    // Every spelling the URL parser turns into 127.0.10.9 is the listed host.
    for (const spelled of ["127.0.10.9", "2130709001", "0x7f000a09", "0177.0.10.9"]) {
      expect(await refusal(g.check(new URL(`http://${spelled}/token`), up, "token realm points"))).toBe("followed");
    }
    for (const spelled of ["127.0.10.5", "2130709000", "0x7f000a05", "127.2565", "[::ffff:127.0.10.5]", "[::7f00:a05]", "[64:ff9b::7f00:a05]", "[fec0::1]", "192.0.0.9"]) {
      expect(await refusal(g.check(new URL(`http://${spelled}/token`), up, "token realm points"))).toMatch(/an internal address, and not listed; .*tokenHosts/);
    }
  });

  test("upstreams: public: a client-named upstream is contacted only when every address it has is public", async () => {
    const g = createGuard({ policy: "public", listed: ["127.0.10.7:5000"], resolve });
    expect(await refusal(g.checkUpstream(new URL("https://cdn.example")))).toBe("followed");
    expect(await refusal(g.checkUpstream(new URL("https://[2606:4700::1111]")))).toBe("followed");
    expect(await refusal(g.checkUpstream(new URL("https://127.0.10.7:5000")))).toBe("followed");
    expect(await refusal(g.checkUpstream(new URL("https://2130709001:5000")))).toMatch(/127\.0\.10\.9:5000: an internal address.*registries.*upstreams: any/);
    expect(await refusal(g.checkUpstream(new URL("https://127.0.10.7:5001")))).toMatch(/internal/);
    expect(await refusal(g.checkUpstream(new URL("https://mixed.example")))).toMatch(/mixed\.example \(169\.254\.169\.254\)/);
    expect(await refusal(g.checkUpstream(new URL("https://nowhere.example")))).toMatch(/does not resolve/);
    const e = await g.checkUpstream(new URL("https://[::ffff:127.0.10.5]")).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(GuardRefusal);
    expect([(e as GuardRefusal).host, (e as GuardRefusal).address]).toEqual(["[::ffff:7f00:a05]", "127.0.10.5"]);
  });

  test("upstreams: listed: a client-named upstream must be listed, public or not", async () => {
    const g = createGuard({ policy: "listed", listed: ["ghcr.io"], resolve });
    expect(await refusal(g.checkUpstream(new URL("https://ghcr.io")))).toBe("followed");
    expect(await refusal(g.checkUpstream(new URL("https://cdn.example")))).toMatch(/not in this cache's registries list/);
  });

  test("addresses: literals as they are, in one spelling; names resolved once per 30 s, for at most 10,000 names", async () => {
    let now = 0;
    const asked: string[] = [];
    const g = createGuard({ policy: "public", listed: [], now: () => now, resolve: async (h) => (asked.push(h), h === "mapped.example" ? ["::ffff:127.0.0.60", "127.0.0.60"] : ["104.16.1.1"]) });
    expect(await g.addresses("[::ffff:127.0.0.60]")).toEqual(["127.0.0.60"]);
    expect(await g.addresses("127.0.0.60")).toEqual(["127.0.0.60"]);
    expect(await g.addresses("mapped.example")).toEqual(["127.0.0.60"]);
    await Promise.all([g.addresses("a.example"), g.addresses("A.example"), g.addresses("a.example")]);
    expect(asked).toEqual(["mapped.example", "a.example"]);
    now += 29_000;
    await g.addresses("a.example");
    expect(asked.length).toBe(2);
    now += 2_000;
    await g.addresses("a.example");
    expect(asked.length).toBe(3);
    for (let i = 0; i < 10_050; i++) await g.addresses(`n${i}.example`);
    asked.length = 0;
    await g.addresses("n10049.example");
    await g.addresses("n0.example");
    expect(asked).toEqual(["n0.example"]);
  });

  test("a failed lookup is not remembered", async () => {
    let fail = true;
    const g = createGuard({ policy: "public", listed: [], resolve: async () => {
      if (fail) throw new Error("SERVFAIL");
      return ["104.16.1.1"];
    } });
    expect(await refusal(g.checkUpstream(new URL("https://flaky.example")))).toMatch(/does not resolve: SERVFAIL/);
    fail = false;
    expect(await refusal(g.checkUpstream(new URL("https://flaky.example")))).toBe("followed");
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
